/**
 * The emulated agent's Port session over MGS: mode choice, smux server, TCP destinations,
 * pacing, keepalive, basic mode and backpressure (specs/ssm-protocol.md §8).
 */
import assert from "node:assert/strict";
import { flagPayload, MessageType, PayloadType } from "../../src/ssm/message.ts";
import { Cmd, encodeFrame } from "../../src/ssm/smux_frame.ts";
import {
  closedPort,
  dec,
  echoServer,
  enc,
  MuxClient,
  randomBytes,
  sleep,
  startEmulator,
  tcpServer,
} from "./harness.ts";

Deno.test("port: ClientVersion 1.2.764.0 gets mux, 1.0.0.0 and 1.1 get basic", async () => {
  const echo = echoServer();
  const env = startEmulator();
  const modes: string[] = [];
  for (const v of ["1.2.764.0", "1.1.70", "1.1.69.0", "1.0.0.0", "1.1"]) {
    const c = env.connect(env.start(echo.port));
    await c.handshake(v);
    await c.until(() => env.logs.some((l) => l.includes(`ClientVersion ${v},`)), 2000, "mode log");
    modes.push(env.logs.find((l) => l.includes(`ClientVersion ${v},`))!.split(", ")[1]);
  }
  assert.deepEqual(modes, ["mux mode", "mux mode", "basic mode", "basic mode", "basic mode"]);
  await env.close();
  await echo.close();
});

Deno.test("port: two concurrent smux streams echo byte-exact", async () => {
  const echo = echoServer();
  const env = startEmulator();
  const c = env.connect(env.start(echo.port));
  await c.handshake();
  const mux = new MuxClient(c);
  const a = mux.open();
  const b = mux.open();
  const da = randomBytes(100_000, 1);
  const db = randomBytes(70_001, 2);
  for (let o = 0; o < 100_000; o += 10_000) {
    mux.write(a, da.subarray(o, o + 10_000));
    mux.write(b, db.subarray(o, o + 10_000));
  }
  await c.until(
    () => mux.receivedLength(a) === da.length && mux.receivedLength(b) === db.length,
    10_000,
    "both echoes",
  );
  assert.deepEqual(mux.received(a), da);
  assert.deepEqual(mux.received(b), db);
  assert.equal(echo.accepted, 2);
  await env.close();
  await echo.close();
});

Deno.test("port: with pacing, Output payloads are 1024-byte reads of the smux pipe", async () => {
  const echo = echoServer();
  const env = startEmulator({ pacing: true });
  const c = env.connect(env.start(echo.port));
  await c.handshake();
  const mux = new MuxClient(c);
  const sid = mux.open();
  const data = randomBytes(20_000);
  mux.write(sid, data);
  await c.until(() => mux.receivedLength(sid) === data.length, 10_000, "paced echo");
  assert.deepEqual(mux.received(sid), data);
  assert.ok(mux.outputSizes.every((n) => n <= 1024));
  assert.ok(mux.outputSizes.filter((n) => n === 1024).length >= 15, `${mux.outputSizes}`);
  await env.close();
  await echo.close();
});

Deno.test("port: without pacing, Output payloads may be up to 32 KiB", async () => {
  const server = tcpServer(async (conn) => {
    const data = randomBytes(200_000);
    let o = 0;
    while (o < data.length) o += await conn.write(data.subarray(o));
    await conn.read(new Uint8Array(1));
  });
  const env = startEmulator({ pacing: false });
  const c = env.connect(env.start(server.port));
  await c.handshake();
  const mux = new MuxClient(c);
  const sid = mux.open();
  await c.until(() => mux.receivedLength(sid) === 200_000, 10_000, "burst");
  assert.ok(Math.max(...mux.outputSizes) > 1024);
  assert.ok(Math.max(...mux.outputSizes) <= 32 * 1024);
  await env.close();
  await server.close();
});

Deno.test("port: a refused dial sends ConnectToPortError and FINs the stream", async () => {
  const env = startEmulator();
  const c = env.connect(env.start(closedPort()));
  await c.handshake();
  const mux = new MuxClient(c);
  const sid = mux.open();
  const flag = await c.waitFor((m) => m.payloadType === PayloadType.Flag, { what: "flag" });
  assert.deepEqual([...flag.payload], [0, 0, 0, 3]);
  await c.until(() => mux.fins.has(sid), 2000, "FIN");
  await env.close();
});

Deno.test("port: FIN from the client closes TCP; the agent answers FIN", async () => {
  const eofs: number[] = [];
  const server = tcpServer(async (conn) => {
    const buf = new Uint8Array(1024);
    while ((await conn.read(buf)) !== null) { /* drain */ }
    eofs.push(Date.now());
  });
  const env = startEmulator();
  const c = env.connect(env.start(server.port));
  await c.handshake();
  const mux = new MuxClient(c);
  const sid = mux.open();
  mux.write(sid, enc.encode("bye"));
  mux.fin(sid);
  await c.until(() => eofs.length === 1 && mux.fins.has(sid), 3000, "EOF and FIN");
  await env.close();
  await server.close();
});

Deno.test("port: TCP close from the destination sends FIN after the data", async () => {
  const server = tcpServer(async (conn) => {
    await conn.write(enc.encode("hello-mux-1"));
  });
  const env = startEmulator();
  const c = env.connect(env.start(server.port));
  await c.handshake();
  const mux = new MuxClient(c);
  const sid = mux.open();
  await c.until(() => mux.fins.has(sid), 3000, "FIN");
  assert.equal(dec.decode(mux.received(sid)), "hello-mux-1");
  // The wire bytes of the PSH, as observed from the real agent.
  const psh = c.delivered.find((m) => m.payloadType === PayloadType.Output && m.payload[1] === 2)!;
  assert.deepEqual([...psh.payload.subarray(0, 8)], [1, 2, 11, 0, sid, 0, 0, 0]);
  await env.close();
  await server.close();
});

Deno.test("port: smux keepalive NOPs only for ClientVersion <= 1.2.331.0", async () => {
  const echo = echoServer();
  const env = startEmulator({
    agent: { smuxKeepAliveIntervalMs: 100, smuxKeepAliveTimeoutMs: 60_000 },
  });
  const old = env.connect(env.start(echo.port));
  const recent = env.connect(env.start(echo.port));
  await old.handshake("1.2.0.0");
  await recent.handshake("1.2.332.0");
  const oldMux = new MuxClient(old);
  const recentMux = new MuxClient(recent);
  await sleep(450);
  assert.ok(oldMux.nops.length >= 2, `${oldMux.nops.length} NOPs`);
  assert.equal(recentMux.nops.length, 0);
  const nop = old.delivered.find((m) => m.payloadType === PayloadType.Output)!;
  assert.deepEqual([...nop.payload.subarray(0, 8)], [1, 3, 0, 0, 0, 0, 0, 0]);
  await env.close();
  await echo.close();
});

Deno.test("port: the mux closes (session ends) after the keepalive timeout", async () => {
  const env = startEmulator({
    agent: { smuxKeepAliveIntervalMs: 50, smuxKeepAliveTimeoutMs: 200 },
  });
  const grant = env.start(closedPort());
  const c = env.connect(grant);
  await c.handshake("1.2.0.0"); // the source-built plugin: mux with keepalive
  const cc = await c.waitFor((m) => m.messageType === MessageType.ChannelClosed, {
    timeoutMs: 3000,
  });
  const { Output } = JSON.parse(dec.decode(cc.payload));
  assert.match(Output, /keepalive/);
  assert.equal(env.registry.get(grant.SessionId)?.state, "terminated");
  await env.close();
});

Deno.test("port: basic mode forwards raw bytes; DisconnectToPort closes and data re-dials", async () => {
  const echo = echoServer();
  const env = startEmulator();
  const c = env.connect(env.start(echo.port));
  await c.handshake("1.0.0.0");
  const got = () =>
    dec.decode(
      new Uint8Array(
        c.delivered.filter((m) => m.payloadType === PayloadType.Output).flatMap((m) => [
          ...m.payload,
        ]),
      ),
    );
  await c.until(() => echo.accepted === 1, 2000, "dial at session start");
  c.sendInput(PayloadType.Output, enc.encode("one "));
  await c.until(() => got() === "one ", 2000, "first echo");
  c.sendInput(PayloadType.Flag, flagPayload(1));
  await sleep(50);
  c.sendInput(PayloadType.Output, enc.encode("two"));
  await c.until(() => got() === "one two", 2000, "echo after re-dial");
  assert.equal(echo.accepted, 2);
  await env.close();
  await echo.close();
});

Deno.test("port: the agent stops reading TCP while too much output is unacked", async () => {
  const total = 8 * 1024 * 1024;
  let written = 0;
  const server = tcpServer(async (conn) => {
    const chunk = new Uint8Array(64 * 1024);
    while (written < total) written += await conn.write(chunk);
  });
  const cap = 256 * 1024;
  const env = startEmulator({ agent: { maxUnackedBytes: cap } });
  const c = env.connect(env.start(server.port), { autoAck: false });
  await c.handshake();
  // Handshake frames unacked too; ack them so only data counts.
  for (const m of c.all.filter((m) => m.messageType === MessageType.OutputStreamData)) c.ack(m);
  c.sendInput(PayloadType.Output, encodeFrame(Cmd.SYN, 3));
  await sleep(600);
  const distinct = new Map<bigint, number>();
  for (const m of c.all) {
    if (m.payloadType === PayloadType.Output) distinct.set(m.sequenceNumber, m.payload.length);
  }
  const bytes = [...distinct.values()].reduce((a, b) => a + b, 0);
  assert.ok(bytes > 0);
  assert.ok(bytes <= cap + 32 * 1024, `${bytes} bytes sent unacked`);
  assert.ok(written < total, "the destination is blocked, not drained into memory");
  await env.close();
  await server.close();
});
