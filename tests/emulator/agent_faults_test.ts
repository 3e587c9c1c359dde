/**
 * Faults injected between the client socket and the emulated agent (src/emulator/faults.ts).
 */
import assert from "node:assert/strict";
import { FaultController } from "../../src/emulator/faults.ts";
import { IDLE_TIMEOUT_OUTPUT, MAX_DURATION_OUTPUT } from "../../src/emulator/mgs.ts";
import { type ClientMessage, MessageType, PayloadType } from "../../src/ssm/message.ts";
import { Cmd, encodeFrame } from "../../src/ssm/smux_frame.ts";
import {
  echoServer,
  enc,
  json,
  MuxClient,
  randomBytes,
  sleep,
  startEmulator,
  tcpServer,
} from "./harness.ts";

async function echoSession(opts: Parameters<typeof startEmulator>[0] = {}) {
  const echo = echoServer();
  const env = startEmulator(opts);
  const grant = env.start(echo.port);
  const c = env.connect(grant);
  await c.handshake();
  const mux = new MuxClient(c);
  return {
    echo,
    env,
    grant,
    c,
    mux,
    async close() {
      await env.close();
      await echo.close();
    },
  };
}

const NOP = encodeFrame(Cmd.NOP, 0);
const isAckOf = (seq: number) => (m: ClientMessage) =>
  m.messageType === MessageType.Acknowledge &&
  json(m.payload).AcknowledgedMessageSequenceNumber === seq;

Deno.test("faults: the PRNG is seeded, so duplicate/reorder patterns are reproducible", () => {
  const pattern = (seed: number) => {
    const ctl = new FaultController(seed);
    ctl.duplicate(0.3);
    const out: number[] = [];
    const link = ctl.link("s", (f) => out.push(f[0]));
    for (let i = 0; i < 50; i++) link.push(new Uint8Array([i]));
    link.close();
    return out;
  };
  assert.deepEqual(pattern(42), pattern(42));
  assert.notDeepEqual(pattern(42), pattern(43));
  assert.ok(pattern(42).length > 50);
});

Deno.test("faults: reorder swaps adjacent frames and loses none", async () => {
  const ctl = new FaultController(3);
  ctl.reorder(0.5);
  const out: number[] = [];
  const link = ctl.link("s", (f) => out.push(f[0]));
  for (let i = 0; i < 40; i++) link.push(new Uint8Array([i]));
  await link.drained();
  link.close();
  assert.notDeepEqual(out, [...Array(40).keys()]);
  assert.deepEqual([...out].sort((a, b) => a - b), [...Array(40).keys()]);
  for (let i = 0; i < 40; i++) assert.ok(Math.abs(out.indexOf(i) - i) <= 1);
});

Deno.test("faults: dropWebSocket closes uncleanly; the session resumes on a new socket", async () => {
  const s = await echoSession();
  const sid = s.mux.open();
  s.mux.write(sid, enc.encode("one"));
  await s.c.until(() => s.mux.receivedLength(sid) === 3, 3000, "first echo");
  assert.deepEqual(s.env.mgs.faults.dropWebSocket(), [s.grant.SessionId]);
  const ev = await s.c.closed;
  assert.equal(ev.wasClean, false);
  assert.notEqual(ev.code, 1000);
  assert.equal(s.env.registry.get(s.grant.SessionId)?.state, "open");
  const c2 = s.env.connect(s.env.registry.resume(s.grant.SessionId)!);
  await c2.opened;
  c2.adopt(s.c);
  const mux2 = new MuxClient(c2);
  mux2.write(sid, enc.encode("two"));
  await c2.until(() => mux2.receivedLength(sid) === 3, 3000, "echo after resume");
  await s.close();
});

Deno.test("faults: stall holds traffic both ways without closing", async () => {
  const s = await echoSession();
  s.env.mgs.faults.stall(400);
  const t0 = Date.now();
  const m = s.c.sendInput(PayloadType.Output, NOP);
  await sleep(200);
  assert.equal(s.c.all.some(isAckOf(Number(m.sequenceNumber))), false);
  assert.equal(s.c.ws.readyState, WebSocket.OPEN);
  await s.c.waitFor(isAckOf(Number(m.sequenceNumber)), { timeoutMs: 3000 });
  assert.ok(Date.now() - t0 >= 380);
  await s.close();
});

Deno.test("faults: duplicate delivers frames twice; data stays exact", async () => {
  const s = await echoSession({ seed: 5 });
  s.env.mgs.faults.duplicate(1);
  const sid = s.mux.open();
  const data = randomBytes(30_000);
  s.mux.write(sid, data);
  await s.c.until(() => s.mux.receivedLength(sid) === data.length, 5000, "echo");
  assert.deepEqual(s.mux.received(sid), data);
  const out = s.c.all.filter((m) => m.payloadType === PayloadType.Output);
  assert.ok(out.length >= 2 * new Set(out.map((m) => m.sequenceNumber)).size);
  await s.close();
});

Deno.test("faults: reorder over the wire; data stays exact", async () => {
  const s = await echoSession({ seed: 11 });
  s.env.mgs.faults.reorder(0.4);
  const sid = s.mux.open();
  const data = randomBytes(60_000);
  s.mux.write(sid, data);
  await s.c.until(() => s.mux.receivedLength(sid) === data.length, 5000, "echo");
  assert.deepEqual(s.mux.received(sid), data);
  const seqs = s.c.all.filter((m) => m.messageType === MessageType.OutputStreamData)
    .map((m) => Number(m.sequenceNumber));
  assert.ok(seqs.some((q, i) => i > 0 && q < seqs[i - 1]), "some output arrived out of order");
  await s.close();
});

Deno.test("faults: delay applies per frame in both directions", async () => {
  const s = await echoSession();
  s.env.mgs.faults.delay(150);
  const t0 = Date.now();
  const m = s.c.sendInput(PayloadType.Output, NOP);
  await s.c.waitFor(isAckOf(Number(m.sequenceNumber)), { timeoutMs: 3000 });
  assert.ok(Date.now() - t0 >= 290, `${Date.now() - t0} ms`);
  s.env.mgs.faults.reset();
  const t1 = Date.now();
  const m2 = s.c.sendInput(PayloadType.Output, NOP);
  await s.c.waitFor(isAckOf(Number(m2.sequenceNumber)), { timeoutMs: 3000 });
  assert.ok(Date.now() - t1 < 150);
  await s.close();
});

Deno.test("faults: pausePublication stops the agent's output until start_publication", async () => {
  const server = tcpServer(async (conn) => {
    await sleep(100);
    await conn.write(enc.encode("late news"));
    await conn.read(new Uint8Array(1));
  });
  const env = startEmulator();
  const grant = env.start(server.port);
  const c = env.connect(grant);
  await c.handshake();
  const mux = new MuxClient(c);
  const sid = mux.open();
  await c.waitFor(isAckOf(1));
  const t0 = Date.now();
  env.mgs.faults.pausePublication(500);
  await c.waitFor((m) => m.messageType === MessageType.PausePublication);
  await c.waitFor((m) => m.messageType === MessageType.StartPublication, { timeoutMs: 2000 });
  await c.until(() => mux.receivedLength(sid) === 9, 2000, "data after start_publication");
  const idx = (pred: (m: ClientMessage) => boolean) => c.all.findIndex(pred);
  assert.ok(
    idx((m) => m.payloadType === PayloadType.Output) >
      idx((m) => m.messageType === MessageType.StartPublication),
    "nothing while paused",
  );
  assert.ok(Date.now() - t0 >= 480);
  await env.close();
  await server.close();
});

Deno.test("faults: channelClosed ends the session with the given Output", async () => {
  const s = await echoSession();
  s.env.mgs.faults.channelClosed(s.grant.SessionId, "Agent restarted.");
  const cc = await s.c.waitFor((m) => m.messageType === MessageType.ChannelClosed);
  assert.equal(json(cc.payload).Output, "Agent restarted.");
  assert.equal(s.env.registry.get(s.grant.SessionId)?.state, "terminated");
  await s.close();
});

Deno.test("faults: idleTimeout ends a silent session; acks do not count, data does", async () => {
  const s = await echoSession();
  const other = s.env.connect(s.env.start(s.echo.port));
  await other.handshake();
  const otherMux = new MuxClient(other);
  const sid = otherMux.open();
  s.env.mgs.faults.idleTimeout(400);
  const stop = Date.now() + 900;
  while (Date.now() < stop) {
    // The idle session only acks; the other keeps sending stream data.
    s.c.ack(s.c.delivered[0]);
    otherMux.write(sid, enc.encode("."));
    await sleep(100);
  }
  const cc = await s.c.waitFor((m) => m.messageType === MessageType.ChannelClosed);
  assert.equal(json(cc.payload).Output, IDLE_TIMEOUT_OUTPUT);
  assert.equal(other.all.some((m) => m.messageType === MessageType.ChannelClosed), false);
  await s.close();
});

Deno.test("faults: maxSessionDuration ends the session", async () => {
  const s = await echoSession();
  s.env.mgs.faults.maxSessionDuration(300);
  const cc = await s.c.waitFor((m) => m.messageType === MessageType.ChannelClosed, {
    timeoutMs: 3000,
  });
  assert.equal(json(cc.payload).Output, MAX_DURATION_OUTPUT);
  await s.close();
});

Deno.test("faults: reset turns everything off", () => {
  const ctl = new FaultController(9, { idleTimeoutMs: 1000 });
  ctl.duplicate(0.5);
  ctl.reorder(0.5);
  ctl.delay(10);
  ctl.idleTimeout(5);
  ctl.maxSessionDuration(5);
  ctl.reset();
  const st = ctl.state();
  assert.deepEqual(
    [st.duplicate, st.reorder, st.delayMs, st.idleTimeoutMs, st.maxSessionDurationMs],
    [0, 0, 0, 1000, null],
  );
  assert.throws(() => ctl.dropWebSocket(), /not bound/);
});
