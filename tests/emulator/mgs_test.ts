/**
 * MGS over a real WebSocket: OpenDataChannel and tokens, the handshake on the wire,
 * channel_closed, resume on a new socket, and robustness against malformed client frames.
 */
import assert from "node:assert/strict";
import { CloseCode, IDLE_TIMEOUT_OUTPUT } from "../../src/emulator/mgs.ts";
import { flagPayload, MessageType, PayloadType } from "../../src/ssm/message.ts";
import { Cmd, encodeFrame } from "../../src/ssm/smux_frame.ts";
import {
  dec,
  echoServer,
  enc,
  handshakeResponse,
  inputMessage,
  json,
  MuxClient,
  sleep,
  startEmulator,
  TestClient,
} from "./harness.ts";
import { encodeMessage } from "../../src/ssm/message.ts";

Deno.test("mgs: handshake on the wire: SYN on seq 0, 4-part AgentVersion, Port properties", async () => {
  const env = startEmulator();
  const grant = env.start(9999);
  const c = env.connect(grant);
  const { request, complete } = await c.handshake();
  assert.equal(request.sequenceNumber, 0n);
  assert.equal(request.flags, 1n);
  const body = json(request.payload);
  assert.match(body.AgentVersion as string, /^\d+\.\d+\.\d+\.\d+$/);
  assert.deepEqual(body.RequestedClientActions, [{
    ActionType: "SessionType",
    ActionParameters: {
      SessionType: "Port",
      Properties: { localPortNumber: "0", portNumber: "9999", type: "LocalPortForwarding" },
    },
  }]);
  assert.equal(complete.sequenceNumber, 1n);
  assert.equal(typeof json(complete.payload).HandshakeTimeToComplete, "number");
  // The agent acked our HandshakeResponse (seq 0).
  const ack = await c.waitFor((m) => m.messageType === MessageType.Acknowledge);
  assert.equal(ack.flags, 3n);
  assert.equal(json(ack.payload).AcknowledgedMessageSequenceNumber, 0);
  // agent_session_state is not forwarded by default.
  assert.equal(c.all.some((m) => m.messageType === MessageType.AgentSessionState), false);
  await env.close();
});

Deno.test("mgs: RemoteHost document puts host in the properties", async () => {
  const env = startEmulator({ forwardAgentSessionState: true });
  const grant = env.start(80, "AWS-StartPortForwardingSessionToRemoteHost", {
    host: ["127.0.0.1"],
    localPortNumber: ["17001"],
  });
  const c = env.connect(grant);
  const { request } = await c.handshake();
  const params = (json(request.payload).RequestedClientActions as Record<string, unknown>[])[0]
    .ActionParameters as Record<string, unknown>;
  assert.deepEqual(params.Properties, {
    host: "127.0.0.1",
    localPortNumber: "17001",
    portNumber: "80",
    type: "LocalPortForwarding",
  });
  const state = c.all.find((m) => m.messageType === MessageType.AgentSessionState)!;
  assert.equal(json(state.payload).SessionState, "Connected");
  await env.close();
});

Deno.test("mgs: a bad token, a reused token and a non-JSON first frame are refused with 1008", async () => {
  const env = startEmulator();
  const grant = env.start(9999);
  const bad = env.connect({ ...grant, TokenValue: "nope" });
  const ev = await bad.closed;
  assert.equal(ev.code, CloseCode.Rejected);
  assert.match(ev.reason, /token/);
  const good = env.connect(grant);
  await good.handshake();
  const reused = env.connect(grant);
  assert.equal((await reused.closed).code, CloseCode.Rejected);
  const garbage = new TestClient(grant.StreamUrl, "", {}, "not json");
  assert.equal((await garbage.closed).code, CloseCode.Rejected);
  const other = env.start(9999);
  const crossed = env.connect({ ...other, StreamUrl: grant.StreamUrl });
  assert.equal((await crossed.closed).code, CloseCode.Rejected, "token of another session");
  // The good session is unaffected.
  assert.equal(good.ws.readyState, WebSocket.OPEN);
  await env.close();
});

Deno.test("mgs: a GET without upgrade gets 426; other paths are not MGS's", async () => {
  const env = startEmulator();
  const r = await fetch(`http://127.0.0.1:${env.port}/v1/data-channel/x`);
  assert.equal(r.status, 426);
  await r.body?.cancel();
  assert.equal(env.mgs.handle(new Request("http://x/other")), undefined);
  await env.close();
});

Deno.test("mgs: Flag TerminateSession ends the session with channel_closed", async () => {
  const env = startEmulator();
  const grant = env.start(9999);
  const c = env.connect(grant);
  await c.handshake();
  c.sendInput(PayloadType.Flag, flagPayload(2));
  const cc = await c.waitFor((m) => m.messageType === MessageType.ChannelClosed);
  assert.equal(cc.sequenceNumber, 0n);
  const body = json(cc.payload);
  assert.deepEqual(Object.keys(body), [
    "MessageId",
    "CreatedDate",
    "DestinationId",
    "SessionId",
    "MessageType",
    "SchemaVersion",
    "Output",
  ]);
  assert.equal(body.SessionId, grant.SessionId);
  assert.equal(body.DestinationId, "i-0123456789abcdef0");
  assert.equal(typeof body.CreatedDate, "string");
  assert.equal(body.Output, "");
  assert.equal((await c.closed).code, CloseCode.Normal);
  assert.equal(env.registry.get(grant.SessionId)?.state, "terminated");
  assert.equal(env.registry.resume(grant.SessionId)?.TokenValue, "");
  await env.close();
});

Deno.test("mgs: registry.terminate sends channel_closed, with a 112-byte header if asked", async () => {
  const env = startEmulator({ channelClosedHeaderLength: 112 });
  const grant = env.start(9999);
  const c = env.connect(grant);
  await c.handshake();
  const raw = Promise.withResolvers<Uint8Array>();
  c.ws.addEventListener("message", (e) => {
    const b = new Uint8Array(e.data as ArrayBuffer);
    if (dec.decode(b.subarray(4, 18)) === "channel_closed") raw.resolve(b);
  });
  env.registry.terminate(grant.SessionId, "Stopped by the test.");
  const bytes = await raw.promise;
  assert.equal(new DataView(bytes.buffer).getUint32(0), 112);
  assert.equal(new DataView(bytes.buffer).getUint32(112), bytes.length - 116);
  const cc = await c.waitFor((m) => m.messageType === MessageType.ChannelClosed);
  assert.equal(json(cc.payload).Output, "Stopped by the test.");
  await env.close();
});

Deno.test("mgs: resume on a new socket keeps sequence numbers and retransmits unacked output", async () => {
  const echo = echoServer();
  const env = startEmulator();
  const grant = env.start(echo.port);
  const c1 = env.connect(grant);
  await c1.handshake();
  const mux = new MuxClient(c1);
  const sid = mux.open();
  mux.write(sid, enc.encode("before"));
  await c1.until(() => mux.receivedLength(sid) === 6, 5000, "echo before");
  await c1.close();

  // While no socket is attached, the echo of this goes into the agent's unacked buffer.
  const resumed = env.registry.resume(grant.SessionId)!;
  const c2 = env.connect(resumed, { autoAck: false });
  await c2.opened;
  // The agent carries on: our next input seq is the old counter.
  c2.nextSeq = c1.nextSeq;
  c2.sendInput(PayloadType.Output, encodeFrame(Cmd.PSH, sid, enc.encode("after")));
  const out = await c2.waitFor((m) => m.messageType === MessageType.OutputStreamData, {
    what: "output on the new socket",
  });
  assert.ok(out.sequenceNumber >= 2n, "the agent's counter survived the socket");
  const ack = await c2.waitFor((m) => m.messageType === MessageType.Acknowledge);
  assert.equal(json(ack.payload).AcknowledgedMessageSequenceNumber, c1.nextSeq);
  // Unacked, so it comes again after about an RTO (200 ms)...
  const sameSeq = (m: { messageType: string; sequenceNumber: bigint }) =>
    m.messageType === MessageType.OutputStreamData && m.sequenceNumber === out.sequenceNumber;
  const t0 = Date.now();
  const again = await c2.waitFor(sameSeq, {
    from: c2.all.indexOf(out) + 1,
    what: "retransmission",
  });
  assert.ok(Date.now() - t0 >= 150, "not before the RTO");
  assert.equal(again.messageId, out.messageId);
  // ...and stops once acked.
  c2.ack(out);
  await sleep(100);
  const seen = c2.all.filter(sameSeq).length;
  await sleep(700);
  assert.equal(c2.all.filter(sameSeq).length, seen);
  await env.close();
  await echo.close();
});

Deno.test("mgs: a second socket replaces the first", async () => {
  const env = startEmulator();
  const grant = env.start(9999);
  const c1 = env.connect(grant, { autoAck: false });
  await c1.handshake();
  const c2 = env.connect(env.registry.resume(grant.SessionId)!);
  const ev = await c1.closed;
  assert.equal(ev.code, CloseCode.Replaced);
  // What c1 never acked is retransmitted to c2, same frames.
  const again = await c2.waitFor((m) => m.payloadType === PayloadType.HandshakeComplete);
  const orig = c1.all.find((m) => m.payloadType === PayloadType.HandshakeComplete)!;
  assert.equal(again.messageId, orig.messageId);
  assert.ok(c2.all.some((m) => m.payloadType === PayloadType.HandshakeRequest));
  await env.close();
});

Deno.test("mgs: malformed client frames are dropped without harming another session", async () => {
  const echo = echoServer();
  const env = startEmulator();
  const victim = env.connect(env.start(echo.port));
  const bystander = env.connect(env.start(echo.port));
  await victim.handshake();
  await bystander.handshake();
  const valid = encodeMessage(inputMessage(5, PayloadType.Output, enc.encode("x")));
  const badHl = valid.slice();
  new DataView(badHl.buffer).setUint32(0, 9999);
  const zeroDate = valid.slice();
  zeroDate.fill(0, 40, 48);
  for (
    const junk of [
      crypto.getRandomValues(new Uint8Array(500)),
      valid.subarray(0, 60),
      badHl,
      zeroDate,
      new Uint8Array(0),
    ]
  ) victim.sendRaw(junk);
  victim.ws.send("a stray text frame");
  // A non-JSON handshake response on a fresh session is not acked and does not crash anything.
  const fresh = env.connect(env.start(echo.port));
  await fresh.waitFor((m) => m.payloadType === PayloadType.HandshakeRequest);
  fresh.sendInput(PayloadType.HandshakeResponse, enc.encode("<xml/>"), 0);
  await sleep(100);
  assert.equal(fresh.all.some((m) => m.messageType === MessageType.Acknowledge), false);
  fresh.sendInput(PayloadType.HandshakeResponse, handshakeResponse("1.2.764.0"), 0);
  await fresh.waitFor((m) => m.payloadType === PayloadType.HandshakeComplete);

  const mux = new MuxClient(bystander);
  const sid = mux.open();
  mux.write(sid, enc.encode("still fine"));
  await bystander.until(() => mux.receivedLength(sid) === 10, 5000, "bystander echo");
  assert.equal(dec.decode(mux.received(sid)), "still fine");
  assert.equal(victim.ws.readyState, WebSocket.OPEN);
  assert.ok(env.logs.some((l) => l.includes("malformed")));
  await env.close();
  await echo.close();
});

Deno.test("mgs: fault control over HTTP", async () => {
  const env = startEmulator();
  const url = `http://127.0.0.1:${env.port}/_emulator/faults`;
  const post = async (body: unknown) =>
    await (await fetch(url, { method: "POST", body: JSON.stringify(body) })).json();
  const r = await post({ action: "delay", ms: 5 });
  assert.equal(r.ok, true);
  assert.equal(r.state.delayMs, 5);
  assert.equal((await post({ action: "idleTimeout", ms: null })).state.idleTimeoutMs, null);
  const bad = await post({ action: "explode" });
  assert.equal(bad.ok, false);
  assert.match(bad.error, /unknown action/);
  assert.equal((await post({ action: "duplicate", probability: 2 })).ok, false);
  assert.equal((await post({ action: "reset" })).state.delayMs, 0);
  const state = await (await fetch(url)).json();
  assert.equal(state.ok, true);
  assert.equal(IDLE_TIMEOUT_OUTPUT.length > 0, true);
  await env.close();
});
