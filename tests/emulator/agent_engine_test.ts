/**
 * The emulated agent's sans-IO engine against specs/ssm-protocol.md §5-§6, with injected time.
 */
import assert from "node:assert/strict";
import {
  AgentEngine,
  ENGINE_DEFAULTS,
  HANDSHAKE_TIMEOUT_MESSAGE,
} from "../../src/emulator/agent/engine.ts";
import { RttEstimator } from "../../src/emulator/agent/rtt.ts";
import {
  type ClientMessage,
  decodeMessage,
  encodeMessage,
  Flags,
  jsonBytes,
  MessageType,
  PayloadType,
} from "../../src/ssm/message.ts";
import { enc, handshakeResponse, inputMessage, json } from "./harness.ts";

const T0 = 1_700_000_000_000;

function setup(opts: { ready?: () => boolean; properties?: Record<string, string> } = {}) {
  const sent: ClientMessage[] = [];
  const inputs: { pt: number; payload: Uint8Array }[] = [];
  const events: string[] = [];
  const engine = new AgentEngine(
    {
      agentVersion: "3.3.0.0",
      sessionType: "Port",
      properties: opts.properties ??
        { localPortNumber: "0", portNumber: "9999", type: "LocalPortForwarding" },
      handshakeTimeoutMs: ENGINE_DEFAULTS.handshakeTimeoutMs,
      outgoingCapacity: 100_000,
      incomingCapacity: 100_000,
    },
    {
      send: (f) => sent.push(decodeMessage(f)),
      input: (pt, payload) => {
        if (opts.ready && !opts.ready()) return false;
        inputs.push({ pt, payload });
        return true;
      },
      handshakeComplete: (v) => events.push(`complete ${v}`),
      fail: (r) => events.push(`fail ${r}`),
      log: () => {},
    },
    T0,
  );
  const feed = (m: ClientMessage, at = T0) => engine.receive(encodeMessage(m), at);
  const acks = () =>
    sent.filter((m) => m.messageType === MessageType.Acknowledge).map((m) =>
      json(m.payload).AcknowledgedMessageSequenceNumber
    );
  return { engine, sent, inputs, events, feed, acks };
}

function ackOf(seq: number): ClientMessage {
  return {
    messageType: MessageType.Acknowledge,
    schemaVersion: 1,
    createdDate: T0,
    sequenceNumber: 0n,
    flags: Flags.Ack,
    messageId: crypto.randomUUID(),
    payloadType: 0,
    payload: jsonBytes({
      AcknowledgedMessageType: "output_stream_data",
      AcknowledgedMessageId: crypto.randomUUID(),
      AcknowledgedMessageSequenceNumber: seq,
      IsSequentialMessage: true,
    }),
  };
}

function handshaken(version = "1.2.764.0") {
  const s = setup();
  s.engine.start(T0);
  s.feed(inputMessage(0, PayloadType.HandshakeResponse, handshakeResponse(version)), T0 + 5);
  return s;
}

Deno.test("engine: HandshakeRequest is seq 0 with SYN and the Port session type", () => {
  const { engine, sent } = setup();
  engine.start(T0);
  assert.equal(sent.length, 1);
  const m = sent[0];
  assert.equal(m.messageType, "output_stream_data");
  assert.equal(m.sequenceNumber, 0n);
  assert.equal(m.flags, 1n);
  assert.equal(m.payloadType, PayloadType.HandshakeRequest);
  assert.equal(
    new TextDecoder().decode(m.payload),
    '{"AgentVersion":"3.3.0.0","RequestedClientActions":[{"ActionType":"SessionType",' +
      '"ActionParameters":{"SessionType":"Port","Properties":{"localPortNumber":"0",' +
      '"portNumber":"9999","type":"LocalPortForwarding"}}}]}',
  );
});

Deno.test("engine: HandshakeResponse is acked, then HandshakeComplete (ns) with flags 0", () => {
  const { sent, events, acks } = handshaken("1.2.0.0");
  assert.deepEqual(acks(), [0]);
  const done = sent.find((m) => m.payloadType === PayloadType.HandshakeComplete)!;
  assert.equal(done.sequenceNumber, 1n);
  assert.equal(done.flags, 0n);
  assert.deepEqual(json(done.payload), { HandshakeTimeToComplete: 5_000_000, CustomerMessage: "" });
  assert.deepEqual(events, ["complete 1.2.0.0"]);
});

Deno.test("engine: ActionStatus other than 1 fails the session after acking", () => {
  const s = setup();
  s.engine.start(T0);
  s.feed(inputMessage(0, PayloadType.HandshakeResponse, handshakeResponse("1.2.764.0", 2)));
  assert.deepEqual(s.acks(), [0]);
  assert.equal(s.events.length, 1);
  assert.match(s.events[0], /^fail SessionType failed on client with status 2/);
  assert.equal(s.sent.some((m) => m.payloadType === PayloadType.HandshakeComplete), false);
});

Deno.test("engine: a non-JSON HandshakeResponse is not acked; a resend then succeeds", () => {
  const s = setup();
  s.engine.start(T0);
  s.feed(inputMessage(0, PayloadType.HandshakeResponse, enc.encode("{not json")));
  assert.deepEqual(s.acks(), []);
  assert.equal(s.engine.expectedSequenceNumber, 0);
  s.feed(inputMessage(0, PayloadType.HandshakeResponse, handshakeResponse("1.2.764.0")));
  assert.deepEqual(s.acks(), [0]);
  assert.deepEqual(s.events, ["complete 1.2.764.0"]);
});

Deno.test("engine: handshake times out after 15 s", () => {
  const s = setup();
  s.engine.start(T0);
  s.engine.tick(T0 + 15_000);
  assert.deepEqual(s.events, []);
  s.engine.tick(T0 + 15_001);
  assert.deepEqual(s.events, [`fail ${HANDSHAKE_TIMEOUT_MESSAGE}`]);
});

Deno.test("engine: in-order data before HandshakeComplete is acked and discarded", () => {
  const s = setup();
  s.engine.start(T0);
  s.feed(inputMessage(0, PayloadType.Output, enc.encode("early")));
  assert.deepEqual(s.acks(), [0]);
  s.feed(inputMessage(1, PayloadType.HandshakeResponse, handshakeResponse("1.2.764.0")));
  s.feed(inputMessage(2, PayloadType.Output, enc.encode("late")));
  assert.deepEqual(s.acks(), [0, 1, 2]);
  assert.deepEqual(s.inputs.map((i) => new TextDecoder().decode(i.payload)), ["late"]);
});

Deno.test("engine: duplicates are re-acked and not delivered twice", () => {
  const s = handshaken();
  const m = inputMessage(1, PayloadType.Output, enc.encode("x"));
  s.feed(m);
  s.feed(m);
  s.feed(m);
  assert.deepEqual(s.acks(), [0, 1, 1, 1]);
  assert.equal(s.inputs.length, 1);
});

Deno.test("engine: out-of-order input is acked, buffered and delivered in order", () => {
  const s = handshaken();
  for (const seq of [3, 2, 4]) s.feed(inputMessage(seq, PayloadType.Output, enc.encode(`m${seq}`)));
  assert.equal(s.inputs.length, 0);
  assert.deepEqual(s.acks(), [0, 3, 2, 4]);
  s.feed(inputMessage(1, PayloadType.Output, enc.encode("m1")));
  assert.deepEqual(s.inputs.map((i) => new TextDecoder().decode(i.payload)), [
    "m1",
    "m2",
    "m3",
    "m4",
  ]);
  assert.equal(s.engine.expectedSequenceNumber, 5);
});

Deno.test("engine: a not-ready handler gets no ack and no expected++", () => {
  let ready = false;
  const s = setup({ ready: () => ready });
  s.engine.start(T0);
  s.feed(inputMessage(0, PayloadType.HandshakeResponse, handshakeResponse("1.2.764.0")));
  s.feed(inputMessage(1, PayloadType.Output, enc.encode("a")));
  assert.deepEqual(s.acks(), [0]);
  ready = true;
  s.feed(inputMessage(1, PayloadType.Output, enc.encode("a")));
  assert.deepEqual(s.acks(), [0, 1]);
  assert.equal(s.inputs.length, 1);
});

Deno.test("engine: the oldest unacked message is resent every RTO until acked", () => {
  const s = setup();
  s.engine.start(T0);
  const count = () => s.sent.filter((m) => m.payloadType === PayloadType.HandshakeRequest).length;
  s.engine.tick(T0 + 100);
  s.engine.tick(T0 + 200);
  assert.equal(count(), 1, "not before RTO (200 ms) has passed");
  s.engine.tick(T0 + 300);
  assert.equal(count(), 2);
  s.engine.tick(T0 + 400);
  assert.equal(count(), 2, "lastSent was updated, so the next resend waits a full RTO");
  s.engine.tick(T0 + 600);
  assert.equal(count(), 3);
  const resent = s.sent.filter((m) => m.payloadType === PayloadType.HandshakeRequest);
  assert.equal(resent[0].messageId, resent[2].messageId, "resends reuse the same frame");
  s.feed(ackOf(0), T0 + 650);
  assert.equal(s.engine.unackedCount, 0);
  s.engine.tick(T0 + 5000);
  assert.equal(count(), 3);
});

Deno.test("engine: RTT estimator follows the agent's formulas", () => {
  const r = new RttEstimator();
  assert.equal(r.rto, 200);
  r.sample(300);
  assert.equal(r.rttv, 50);
  assert.equal(r.rtt, 125);
  assert.equal(r.rto, 325);
  for (let i = 0; i < 50; i++) r.sample(5000);
  assert.equal(r.rto, 1000);
});

Deno.test("engine: pause holds new messages and resends; input unpauses", () => {
  const s = handshaken();
  s.feed(ackOf(0));
  s.feed(ackOf(1));
  s.engine.pause();
  const before = s.sent.length;
  s.engine.send(PayloadType.Output, enc.encode("held"), T0 + 10);
  s.engine.tick(T0 + 5000);
  assert.equal(s.sent.length, before, "nothing goes out while paused");
  s.feed(inputMessage(1, PayloadType.Output, enc.encode("x")), T0 + 5001);
  const out = s.sent.filter((m) => m.payloadType === PayloadType.Output);
  assert.equal(out.length, 1);
  assert.equal(new TextDecoder().decode(out[0].payload), "held");
});

Deno.test("engine: reattach resends every unacked message at once", () => {
  const s = handshaken();
  s.feed(ackOf(0));
  for (const t of ["a", "b", "c"]) s.engine.send(PayloadType.Output, enc.encode(t), T0 + 10);
  s.feed(ackOf(3));
  const n = s.sent.length;
  s.engine.reattach(T0 + 20);
  assert.deepEqual(s.sent.slice(n).map((m) => m.sequenceNumber), [1n, 2n, 4n]);
});

Deno.test("engine: malformed frames and unknown types are dropped", () => {
  const s = handshaken();
  const n = s.sent.length;
  s.engine.receive(new Uint8Array(10), T0);
  s.engine.receive(crypto.getRandomValues(new Uint8Array(300)), T0);
  s.feed({ ...inputMessage(5, 1, enc.encode("x")), messageType: "something_else" });
  assert.equal(s.sent.length, n);
  assert.equal(s.events.length, 1);
});
