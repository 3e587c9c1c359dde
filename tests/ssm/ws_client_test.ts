import assert from "node:assert/strict";
import { concat } from "../../src/bytequeue.ts";
import { proxyFor, WsClient, WsConnectError } from "../../src/ssm/ws_client.ts";
import { encodeFrame, FrameParser, Opcode } from "../../src/ssm/ws_frame.ts";
import { pattern } from "../support/net.ts";
import {
  accept101,
  connectProxy,
  echoServer,
  makeCerts,
  rawServer,
  readClientFrame,
  readFrames,
  rejects,
  serverFrame,
} from "./ws_support.ts";

const url = (port: number, path = "/") => `ws://127.0.0.1:${port}${path}`;
const noProxy = { proxy: null, timeoutMs: 5000 };

function nextMessage(ws: WsClient): Promise<Uint8Array | string> {
  return new Promise((r) => (ws.onmessage = r));
}

// ---- framing (pure) --------------------------------------------------------------------------

Deno.test("ws_frame: encoded frames unmask to the payload for 7/16/64-bit lengths", () => {
  for (const n of [0, 1, 5, 125, 126, 65535, 65536]) {
    const p = pattern(n, n + 1);
    const f = encodeFrame(Opcode.Binary, p);
    const { opcode, payload, fin } = readClientFrame(f)!;
    assert.deepEqual([opcode, fin, payload.length], [Opcode.Binary, true, n]);
    assert.deepEqual(payload, p);
  }
});

Deno.test("ws_frame: parser is indifferent to chunking", () => {
  const stream = concat([
    serverFrame(Opcode.Binary, pattern(70000)),
    serverFrame(Opcode.Text, new TextEncoder().encode("hi")),
    serverFrame(Opcode.Ping, new Uint8Array([1, 2])),
  ]);
  for (const step of [13, 4096, stream.length]) {
    const p = new FrameParser();
    const got: number[] = [];
    for (let i = 0; i < stream.length; i += step) {
      p.push(stream.slice(i, i + step));
      for (let f; (f = p.next());) got.push(f.opcode, f.payload.length);
    }
    assert.deepEqual(got, [Opcode.Binary, 70000, Opcode.Text, 2, Opcode.Ping, 2]);
  }
});

// ---- against Deno.serve -----------------------------------------------------------------------

Deno.test("ws_client: handshake sends only the upgrade headers and the path verbatim", async () => {
  const srv = echoServer();
  const ws = await WsClient.connect(
    url(srv.port, "/data-channel/s-1?role=publish_subscribe&x=%2F"),
    noProxy,
  );
  const req = await srv.request;
  assert.deepEqual(req.path, "/data-channel/s-1?role=publish_subscribe&x=%2F");
  assert.deepEqual(req.headers.sort(), [
    "connection",
    "host",
    "sec-websocket-key",
    "sec-websocket-version",
    "upgrade",
  ]);
  assert(ws.open);
  ws.close();
  assert.deepEqual((await ws.closed).code, 1000);
  await srv.close();
});

Deno.test("ws_client: binary and text both ways, 0 B to 1 MiB", async () => {
  const srv = echoServer();
  const ws = await WsClient.connect(url(srv.port), noProxy);
  for (const n of [0, 1, 125, 126, 65535, 65536, 1 << 20]) {
    const data = pattern(n, n + 3);
    const got = nextMessage(ws);
    ws.send(data);
    assert.deepEqual(await got, data);
    const text = "é".repeat(n >> 1);
    const gotText = nextMessage(ws);
    ws.send(text);
    assert.deepEqual(await gotText, text);
  }
  ws.close();
  await ws.closed;
  await srv.close();
});

Deno.test("ws_client: queued sends are coalesced and bufferedAmount drains", async () => {
  const srv = echoServer();
  const ws = await WsClient.connect(url(srv.port), noProxy);
  const got: number[] = [];
  const all = new Promise<void>((r) =>
    ws.onmessage = (d) => {
      got.push((d as Uint8Array)[0]);
      if (got.length === 100) r();
    }
  );
  for (let i = 0; i < 100; i++) ws.send(new Uint8Array(1000).fill(i));
  assert(ws.bufferedAmount > 50_000, `bufferedAmount ${ws.bufferedAmount}`);
  await all;
  assert.deepEqual(got, [...Array(100).keys()]);
  assert.deepEqual(ws.bufferedAmount, 0);
  ws.close();
  await ws.closed;
  await srv.close();
});

Deno.test("ws_client: ping is answered with a pong carrying the payload", async () => {
  const srv = echoServer();
  const ws = await WsClient.connect(url(srv.port), noProxy);
  const pong = new Promise<Uint8Array>((r) => (ws.onpong = r));
  ws.ping(new Uint8Array([1, 2, 3]));
  assert.deepEqual(await pong, new Uint8Array([1, 2, 3]));
  ws.close();
  await ws.closed;
  await srv.close();
});

Deno.test("ws_client: server close reaches onclose with its code and reason", async () => {
  const srv = echoServer((s) => s.close(4001, "bye"));
  const ws = await WsClient.connect(url(srv.port), noProxy);
  const closed = new Promise<[number, string]>((r) => (ws.onclose = (c, why) => r([c, why])));
  assert.deepEqual(await closed, [4001, "bye"]);
  assert(!ws.open);
  await srv.close();
});

Deno.test("ws_client: non-101 response is rejected with the status line", async () => {
  const srv = rawServer(() => "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
  const e = await rejects(() => WsClient.connect(url(srv.port), noProxy), WsConnectError);
  assert(e.message.includes("HTTP/1.1 403 Forbidden"), e.message);
  await srv.close();
});

Deno.test("ws_client: wrong Sec-WebSocket-Accept is rejected", async () => {
  const srv = rawServer(() =>
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
  );
  const e = await rejects(() => WsClient.connect(url(srv.port), noProxy), WsConnectError);
  assert(e.message.includes("Sec-WebSocket-Accept"), e.message);
  await srv.close();
});

Deno.test("ws_client: a server that never answers times out", async () => {
  const srv = rawServer(() => null);
  const e = await rejects(
    () => WsClient.connect(url(srv.port), { proxy: null, timeoutMs: 200 }),
    WsConnectError,
  );
  assert(e.message.includes("timed out"), e.message);
  await srv.close();
});

// ---- raw servers: fragments, death, violations ---------------------------------------------

Deno.test("ws_client: fragmented server message with a ping in between", async () => {
  const srv = rawServer((key) => accept101(key), async (conn) => {
    await conn.write(concat([
      serverFrame(Opcode.Text, new TextEncoder().encode("hel"), false),
      serverFrame(Opcode.Ping, new Uint8Array([7])),
      serverFrame(Opcode.Continuation, new TextEncoder().encode("lo "), false),
      serverFrame(Opcode.Continuation, new TextEncoder().encode("wörld"), true),
      serverFrame(Opcode.Binary, new Uint8Array([1]), false),
      serverFrame(Opcode.Continuation, new Uint8Array([2, 3]), true),
    ]));
    return await readFrames(conn, 1);
  });
  const ws = await WsClient.connect(url(srv.port), noProxy);
  const got: (string | Uint8Array)[] = [];
  const two = new Promise<void>((r) => (ws.onmessage = (d) => got.push(d) === 2 && r()));
  await two;
  assert.deepEqual(got, ["hello wörld", new Uint8Array([1, 2, 3])]);
  const [pong] = await srv.result;
  assert.deepEqual([pong.opcode, [...pong.payload]], [Opcode.Pong, [7]]);
  ws.close();
  await ws.closed;
  await srv.close();
});

Deno.test("ws_client: abrupt server death is a 1006 closure", async () => {
  const srv = rawServer((key) => accept101(key), (conn) => Promise.resolve(conn.close()));
  const ws = await WsClient.connect(url(srv.port), noProxy);
  assert.deepEqual((await ws.closed).code, 1006);
  assert(!ws.open);
  assert(!ws.send(new Uint8Array(1)));
  await srv.close();
});

const violations: [string, Uint8Array][] = [
  ["RSV1 bit", Uint8Array.of(0xc2, 0x00)],
  ["unknown opcode 3", Uint8Array.of(0x83, 0x00)],
  ["masked server frame", Uint8Array.of(0x82, 0x81, 1, 2, 3, 4, 5)],
  ["126-byte ping", concat([Uint8Array.of(0x89, 126, 0, 126), new Uint8Array(126)])],
  ["fragmented ping", Uint8Array.of(0x09, 0x00)],
  ["stray continuation", Uint8Array.of(0x80, 0x00)],
];
for (const [what, bytes] of violations) {
  Deno.test(`ws_client: protocol violation (${what}) closes with 1002`, async () => {
    const srv = rawServer((key) => accept101(key), async (conn) => {
      await conn.write(bytes);
      return await readFrames(conn, 1);
    });
    const ws = await WsClient.connect(url(srv.port), noProxy);
    const info = await ws.closed;
    assert.deepEqual(info.code, 1002, info.reason);
    const [close] = await srv.result;
    assert.deepEqual([close.opcode, (close.payload[0] << 8) | close.payload[1]], [
      Opcode.Close,
      1002,
    ]);
    await srv.close();
  });
}

// ---- proxy and TLS ---------------------------------------------------------------------------

Deno.test("ws_client: proxyFor honours HTTPS_PROXY, HTTP_PROXY and NO_PROXY", () => {
  const env = (vars: Record<string, string>) => (k: string) => vars[k];
  const p = "http://proxy:3128";
  assert.deepEqual(proxyFor("wss://a.example/", env({ HTTPS_PROXY: p })), p);
  assert.deepEqual(proxyFor("wss://a.example/", env({ https_proxy: p })), p);
  assert.deepEqual(proxyFor("ws://a.example/", env({ HTTPS_PROXY: p })), null);
  assert.deepEqual(proxyFor("ws://a.example/", env({ HTTP_PROXY: p })), p);
  const no = (list: string) =>
    proxyFor("wss://ssm.eu-west-1.amazonaws.com/", env({ HTTPS_PROXY: p, NO_PROXY: list }));
  assert.deepEqual(no("localhost, .amazonaws.com"), null);
  assert.deepEqual(no("amazonaws.com:443"), null);
  assert.deepEqual(no("*"), null);
  assert.deepEqual(no("example.com,mazonaws.com"), p);
});

Deno.test("ws_client: tunnels through an http CONNECT proxy with basic auth", async () => {
  const srv = echoServer();
  const proxy = connectProxy();
  const ws = await WsClient.connect(url(srv.port, "/x"), {
    proxy: `http://us%40er:p%3Ass@127.0.0.1:${proxy.port}`,
  });
  const got = nextMessage(ws);
  ws.send("through the proxy");
  assert.deepEqual(await got, "through the proxy");
  const head = await proxy.head;
  assert(head.startsWith(`CONNECT 127.0.0.1:${srv.port} HTTP/1.1\r\n`), head);
  assert(head.includes(`Proxy-Authorization: Basic ${btoa("us@er:p:ss")}\r\n`), head);
  ws.close();
  await ws.closed;
  await proxy.close();
  await srv.close();
});

Deno.test("ws_client: wss with an extra CA, and with DENO_CERT in a child process", async () => {
  const certs = await makeCerts();
  const srv = echoServer(undefined, certs);
  const wss = `wss://localhost:${srv.port}/tls`;
  const ws = await WsClient.connect(wss, { proxy: null, caCerts: [certs.caPem] });
  const got = nextMessage(ws);
  ws.send(new Uint8Array([42]));
  assert.deepEqual(await got, new Uint8Array([42]));
  ws.close();
  await ws.closed;
  // Without help the CA is unknown; DENO_CERT alone is enough (Deno.startTls reads it itself).
  await rejects(() => WsClient.connect(wss, noProxy), WsConnectError, "UnknownIssuer");
  const script = `import { WsClient } from "${new URL(
    "../../src/ssm/ws_client.ts",
    import.meta.url,
  )}";
    const ws = await WsClient.connect("${wss}", { proxy: null, timeoutMs: 5000 });
    ws.close(); await ws.closed; console.log("ok");`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    env: { DENO_CERT: certs.caFile },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.deepEqual(text.trim(), "ok");
  await srv.close();
});

// ---- the reason this client exists --------------------------------------------------------

Deno.test("ws_client: write-write-read round trips are not held by Nagle", async () => {
  const srv = echoServer((s) =>
    s.onmessage = (e) => {
      if (new Uint8Array(e.data)[0] === 2) s.send(new Uint8Array([9]));
    }
  );
  const ws = await WsClient.connect(url(srv.port), noProxy);
  let resolve = () => {};
  ws.onmessage = () => {
    ws.send(new Uint8Array([7])); // an ack-like write before the next round
    resolve();
  };
  const times: number[] = [];
  for (let i = 0; i < 50; i++) {
    const reply = new Promise<void>((r) => (resolve = r));
    const t = performance.now();
    ws.send(new Uint8Array([1]));
    ws.send(new Uint8Array([2]));
    await reply;
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  console.log(`write-write-read median ${times[25].toFixed(3)} ms, p90 ${times[45].toFixed(3)} ms`);
  assert(times[25] < 20, `median ${times[25]} ms: Nagle is back (44 ms is the failure mode)`);
  ws.close();
  await ws.closed;
  await srv.close();
});
