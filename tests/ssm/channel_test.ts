import assert from "node:assert/strict";
import fc from "fast-check";
import { DataChannel } from "../../src/ssm/channel.ts";
import {
  type ClientMessage,
  decodeMessage,
  encodeMessage,
  jsonBytes,
  parseAck,
  PayloadType,
} from "../../src/ssm/message.ts";

/**
 * A minimal agent for these tests, written from spec §5/§6 (not from channel.ts): it sends
 * output_stream_data with its own counter, resends the oldest unacked message after a timeout,
 * and acks input_stream_data in order, re-acking duplicates.
 */
class TestAgent {
  seq = 0n;
  expected = 0n;
  unacked = new Map<bigint, { frame: Uint8Array; at: number }>();
  buffered = new Map<bigint, ClientMessage>();
  received: ClientMessage[] = [];
  out: Uint8Array[] = [];

  frame(type: string, seq: bigint, payloadType: number, payload: Uint8Array, flags = 0n) {
    return encodeMessage({
      messageType: type,
      schemaVersion: 1,
      createdDate: 1,
      sequenceNumber: seq,
      flags,
      messageId: crypto.randomUUID(),
      payloadType,
      payload,
    });
  }
  send(payloadType: number, payload: Uint8Array, now: number) {
    const s = this.seq++;
    const f = this.frame("output_stream_data", s, payloadType, payload, s === 0n ? 1n : 0n);
    this.unacked.set(s, { frame: f, at: now });
    this.out.push(f);
  }
  handshake(now: number) {
    this.send(
      PayloadType.HandshakeRequest,
      jsonBytes({
        AgentVersion: "3.3.0.0",
        RequestedClientActions: [{
          ActionType: "SessionType",
          ActionParameters: {
            SessionType: "Port",
            Properties: { portNumber: "80", type: "LocalPortForwarding" },
          },
        }],
      }),
      now,
    );
  }
  receive(bytes: Uint8Array, _now: number) {
    const m = decodeMessage(bytes, { verifyDigest: false });
    if (m.messageType === "acknowledge") {
      this.unacked.delete(BigInt(parseAck(m.payload).AcknowledgedMessageSequenceNumber));
      return;
    }
    const ack = () =>
      this.out.push(this.frame(
        "acknowledge",
        0n,
        0,
        jsonBytes({
          AcknowledgedMessageType: m.messageType,
          AcknowledgedMessageId: m.messageId,
          AcknowledgedMessageSequenceNumber: Number(m.sequenceNumber),
          IsSequentialMessage: true,
        }),
        3n,
      ));
    if (m.sequenceNumber < this.expected) return ack();
    if (m.sequenceNumber > this.expected) {
      this.buffered.set(m.sequenceNumber, m);
      return ack();
    }
    ack();
    this.received.push(m);
    this.expected++;
    for (let n = this.buffered.get(this.expected); n; n = this.buffered.get(this.expected)) {
      this.buffered.delete(this.expected++);
      this.received.push(n);
    }
  }
  tick(now: number) {
    const oldest = this.unacked.entries().next().value;
    if (oldest && now - oldest[1].at > 200) {
      oldest[1].at = now;
      this.out.push(oldest[1].frame);
    }
  }
}

/** A lossy, duplicating, reordering link, driven by fast-check's random choices. */
function lossyDeliver(
  frames: Uint8Array[],
  rnd: () => number,
  p: { loss: number; dup: number; swap: number },
) {
  const out: Uint8Array[] = [];
  for (const f of frames) {
    if (rnd() < p.loss) continue;
    out.push(f);
    if (rnd() < p.dup) out.push(f);
  }
  for (let i = 0; i + 1 < out.length; i++) {
    if (rnd() < p.swap) [out[i], out[i + 1]] = [out[i + 1], out[i]];
  }
  return out;
}

function mulberry32(a: number) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function runLink(
  seed: number,
  p: { loss: number; dup: number; swap: number },
  up: Uint8Array[],
  down: Uint8Array[],
) {
  const rnd = mulberry32(seed);
  const client = new DataChannel({ window: 64 });
  const agent = new TestAgent();
  let now = 1;
  agent.handshake(now);
  const got: Uint8Array[] = [];
  let downIdx = 0;
  for (const u of up) client.send(PayloadType.Output, u, now);
  for (let step = 0; step < 20000; step++) {
    now += 10;
    for (const f of lossyDeliver(agent.out.splice(0), rnd, p)) client.receive(f, now);
    for (const e of client.takeEvents()) {
      if (e.type === "data") got.push(e.payload);
    }
    for (const f of lossyDeliver(client.takeOutgoing(), rnd, p)) agent.receive(f, now);
    const handshakeDone = agent.received.some((m) =>
      m.payloadType === PayloadType.HandshakeResponse
    );
    if (handshakeDone && agent.seq === 1n) {
      agent.send(PayloadType.HandshakeComplete, jsonBytes({}), now);
    }
    if (agent.seq >= 2n && downIdx < down.length && agent.unacked.size < 32) {
      agent.send(PayloadType.Output, down[downIdx++], now);
    }
    agent.tick(now);
    client.tick(now);
    const upDone = agent.received.filter((m) =>
      m.payloadType === PayloadType.Output
    ).length === up.length;
    if (
      upDone && downIdx === down.length && got.length === down.length && agent.unacked.size === 0
    ) break;
  }
  return {
    got,
    agentGot: agent.received.filter((m) => m.payloadType === PayloadType.Output),
    client,
  };
}

Deno.test("channel: handshake, then data both ways on a clean link", () => {
  const up = [new Uint8Array([1, 2, 3]), new Uint8Array([4])];
  const down = [new Uint8Array([9]), new Uint8Array([8, 7])];
  const r = runLink(1, { loss: 0, dup: 0, swap: 0 }, up, down);
  assert.deepEqual(r.got, down);
  assert.deepEqual(r.agentGot.map((m) => m.payload), up);
  assert.equal(r.client.stats.retransmits, 0);
});

Deno.test("channel property: exactly once, in order, under loss, duplication and reordering", () => {
  fc.assert(
    fc.property(
      fc.integer(),
      fc.record({
        loss: fc.double({ min: 0, max: 0.3, noNaN: true }),
        dup: fc.double({ min: 0, max: 0.3, noNaN: true }),
        swap: fc.double({ min: 0, max: 0.3, noNaN: true }),
      }),
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 40 }),
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 40 }),
      (seed, p, up, down) => {
        const r = runLink(seed, p, up, down);
        assert.deepEqual(r.got, down);
        assert.deepEqual(r.agentGot.map((m) => m.payload), up);
      },
    ),
    { numRuns: 150 },
  );
});

Deno.test("channel: data is held until HandshakeComplete; HandshakeResponse is seq 0", () => {
  const c = new DataChannel();
  const a = new TestAgent();
  c.send(PayloadType.Output, new Uint8Array([1]), 1);
  assert.equal(c.takeOutgoing().length, 0);
  a.handshake(1);
  c.receive(a.out.shift()!, 2);
  const out = c.takeOutgoing().map((f) => decodeMessage(f));
  assert.deepEqual(out.map((m) => m.messageType), ["acknowledge", "input_stream_data"]);
  assert.equal(out[1].sequenceNumber, 0n);
  assert.equal(out[1].payloadType, PayloadType.HandshakeResponse);
  const resp = JSON.parse(new TextDecoder().decode(out[1].payload));
  assert.equal(resp.ClientVersion, "1.2.764.0");
  assert.deepEqual(resp.ProcessedClientActions, [
    { ActionType: "SessionType", ActionStatus: 1, ActionResult: null, Error: "" },
  ]);
  assert.equal(resp.Errors, null);
  a.send(
    PayloadType.HandshakeComplete,
    jsonBytes({ HandshakeTimeToComplete: 5, CustomerMessage: "" }),
    3,
  );
  c.receive(a.out.shift()!, 3);
  const after = c.takeOutgoing().map((f) => decodeMessage(f));
  assert.equal(after[1].sequenceNumber, 1n);
  assert.deepEqual(after[1].payload, new Uint8Array([1]));
});

Deno.test("channel: unsupported requested actions (KMS) are answered Unsupported", () => {
  const c = new DataChannel();
  const a = new TestAgent();
  a.send(
    PayloadType.HandshakeRequest,
    jsonBytes({
      AgentVersion: "3.3.0.0",
      RequestedClientActions: [
        { ActionType: "SessionType", ActionParameters: { SessionType: "Port", Properties: {} } },
        { ActionType: "KMSEncryption", ActionParameters: { KMSKeyId: "k", Challenge: "YQ==" } },
      ],
    }),
    1,
  );
  c.receive(a.out.shift()!, 1);
  const resp = JSON.parse(new TextDecoder().decode(decodeMessage(c.takeOutgoing()[1]).payload));
  assert.equal(resp.ProcessedClientActions[1].ActionStatus, 3);
});

Deno.test("channel: duplicates are re-acked, not delivered twice", () => {
  const c = new DataChannel();
  const a = new TestAgent();
  a.handshake(1);
  const f = a.out.shift()!;
  c.receive(f, 1);
  c.receive(f, 2);
  const acks = c.takeOutgoing().map((x) => decodeMessage(x)).filter((m) =>
    m.messageType === "acknowledge"
  );
  assert.equal(acks.length, 2);
  assert.equal(c.takeEvents().filter((e) => e.type === "handshake").length, 1);
  assert.equal(c.stats.duplicates, 1);
});

Deno.test("channel: an ack is built only when taken, after the data was handed up, in order", () => {
  let ids = 0;
  const c = new DataChannel({
    uuid: () => `00000000-0000-4000-8000-${String(++ids).padStart(12, "0")}`,
  });
  const a = new TestAgent();
  a.handshake(1);
  c.receive(a.out.shift()!, 1); // HandshakeRequest: acked, answered with HandshakeResponse
  const idsAfterReceive = ids;
  assert.equal(c.takeEvents()[0].type, "handshake");
  const frames = c.takeOutgoing().map((x) => decodeMessage(x));
  // The response was built at once (one id); the ack that precedes it only now.
  assert.equal(idsAfterReceive, 1);
  assert.equal(ids, 2);
  assert.deepEqual(frames.map((m) => m.messageType), ["acknowledge", "input_stream_data"]);
  assert.equal(parseAck(frames[0].payload).AcknowledgedMessageSequenceNumber, 0);
  assert.equal(frames[1].payloadType, PayloadType.HandshakeResponse);
  assert.equal(c.stats.framesOut, 2);
});

Deno.test("channel: resends the oldest unacked after the RTO, and the RTT estimate moves", () => {
  const c = new DataChannel();
  const a = new TestAgent();
  a.handshake(0);
  c.receive(a.out.shift()!, 0);
  c.takeOutgoing();
  c.tick(150);
  assert.equal(c.takeOutgoing().length, 0, "not before the 200 ms initial RTO");
  c.tick(250);
  const resent = c.takeOutgoing().map((f) => decodeMessage(f));
  assert.equal(resent.length, 1);
  assert.equal(resent[0].sequenceNumber, 0n);
  // Ack 40 ms after the resend: RTT moves toward 40 from 100.
  a.receive(encodeMessage({ ...resent[0] }), 260);
  c.receive(a.out.pop()!, 290);
  assert.ok(c.rtt.rtt < 100 && c.rtt.rtt > 40, String(c.rtt.rtt));
  assert.equal(c.unacked, 0);
});

Deno.test("channel: reconnected() resends every unacked message", () => {
  const c = new DataChannel();
  const a = new TestAgent();
  a.handshake(0);
  c.receive(a.out.shift()!, 0);
  a.send(PayloadType.HandshakeComplete, jsonBytes({}), 0);
  c.receive(a.out.pop()!, 0);
  c.takeOutgoing();
  for (let i = 0; i < 5; i++) c.send(PayloadType.Output, new Uint8Array([i]), 1);
  assert.equal(c.takeOutgoing().length, 5);
  c.reconnected(2);
  const seqs = c.takeOutgoing().map((f) => decodeMessage(f).sequenceNumber);
  assert.deepEqual(seqs, [0n, 1n, 2n, 3n, 4n, 5n]);
});

Deno.test("channel: the window bounds messages in flight", () => {
  const c = new DataChannel({ window: 4, maxPayload: 2 });
  const a = new TestAgent();
  a.handshake(0);
  c.receive(a.out.shift()!, 0);
  a.send(PayloadType.HandshakeComplete, jsonBytes({}), 0);
  c.receive(a.out.pop()!, 0);
  c.takeOutgoing();
  c.send(PayloadType.Output, new Uint8Array(20), 1); // 10 messages of 2 bytes
  // HandshakeResponse is still unacked: 3 more fit in a window of 4.
  assert.equal(c.takeOutgoing().length, 3);
  assert.equal(c.writable, false);
});

Deno.test("channel: pause_publication holds data until start_publication", () => {
  const c = new DataChannel();
  const a = new TestAgent();
  a.handshake(0);
  c.receive(a.out.shift()!, 0);
  a.send(PayloadType.HandshakeComplete, jsonBytes({}), 0);
  c.receive(a.out.pop()!, 0);
  c.takeOutgoing();
  c.receive(a.frame("pause_publication", 0n, 0, new Uint8Array([1])), 1);
  c.send(PayloadType.Output, new Uint8Array([7]), 1);
  assert.equal(c.takeOutgoing().length, 0);
  c.receive(a.frame("start_publication", 0n, 0, new Uint8Array([1])), 2);
  assert.equal(c.takeOutgoing().length, 1);
  assert.deepEqual(c.takeEvents().map((e) => e.type).slice(-2), ["paused", "resumed"]);
});

Deno.test("channel: channel_closed surfaces its Output text", () => {
  const c = new DataChannel();
  const a = new TestAgent();
  c.receive(
    a.frame(
      "channel_closed",
      0n,
      0,
      jsonBytes({
        MessageId: crypto.randomUUID(),
        CreatedDate: "1",
        DestinationId: "i-1",
        SessionId: "s-1",
        MessageType: "channel_closed",
        SchemaVersion: 1,
        Output: "Your session timed out due to inactivity and has been terminated.",
      }),
    ),
    1,
  );
  const e = c.takeEvents()[0];
  assert.deepEqual(e, {
    type: "closed",
    sessionId: "s-1",
    output: "Your session timed out due to inactivity and has been terminated.",
  });
  assert.equal(c.closed, true);
});

Deno.test("channel property: garbage frames produce bad-frame events, never exceptions", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), (frames) => {
      const c = new DataChannel();
      for (const f of frames) c.receive(f, 1);
      for (const e of c.takeEvents()) assert.equal(e.type, "bad-frame");
    }),
  );
});

Deno.test("channel: a malformed JSON payload on a valid frame is a bad frame, not a crash", () => {
  const c = new DataChannel();
  const a = new TestAgent();
  a.send(PayloadType.HandshakeRequest, new TextEncoder().encode("{not json"), 0);
  c.receive(a.out.shift()!, 0);
  assert.equal(c.takeEvents()[0].type, "bad-frame");
  const ack = c.takeOutgoing().map((f) => decodeMessage(f));
  assert.equal(ack[0].messageType, "acknowledge");
});
