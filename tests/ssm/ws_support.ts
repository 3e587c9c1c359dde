/** Peers for ws_client tests: Deno.serve echo, raw TCP upgrade servers, a CONNECT proxy, certs. */
import assert from "node:assert/strict";
import { concat } from "../../src/bytequeue.ts";

export async function accept101(key: string): Promise<string> {
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${await acceptFor(key)}\r\n\r\n`;
}

/** Read `count` client frames (masked) from a raw connection. */
export async function readFrames(conn: Deno.Conn, count: number) {
  const frames = [];
  let data: Uint8Array = new Uint8Array(0);
  const buf = new Uint8Array(65536);
  while (frames.length < count) {
    const f = readClientFrame(data);
    if (f) {
      frames.push(f);
      data = data.subarray(f.size);
      continue;
    }
    const n = await conn.read(buf);
    if (n === null) break;
    data = concat([data, buf.subarray(0, n)]);
  }
  return frames;
}

export async function rejects(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  cls: new (...args: any[]) => Error,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof cls, String(e));
    if (includes) assert(e.message.includes(includes), e.message);
    return e;
  }
  throw new assert.AssertionError({ message: "expected a rejection" });
}

export async function acceptFor(key: string): Promise<string> {
  const guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  const d = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + guid));
  return btoa(String.fromCharCode(...new Uint8Array(d)));
}

/** An unmasked (server) frame. */
export function serverFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? [n] : n < 65536 ? [126, n >> 8, n & 0xff] : [
    127,
    ...new Uint8Array(new BigUint64Array([BigInt(n)]).buffer).reverse(), // big-endian
  ];
  return concat([Uint8Array.of((fin ? 0x80 : 0) | opcode, ...head), payload]);
}

/** Decode one masked client frame at the start of `b`, or null if incomplete. */
export function readClientFrame(b: Uint8Array) {
  if (b.length < 2) return null;
  assert(b[1] & 0x80, "client frames are masked");
  let len = b[1] & 0x7f;
  let at = 2;
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  if (len === 126) {
    if (b.length < 4) return null;
    len = dv.getUint16(2);
    at = 4;
  } else if (len === 127) {
    if (b.length < 10) return null;
    len = Number(dv.getBigUint64(2));
    at = 10;
  }
  if (b.length < at + 4 + len) return null;
  const key = b.subarray(at, at + 4);
  const payload = b.slice(at + 4, at + 4 + len).map((x, i) => x ^ key[i & 3]);
  return { fin: (b[0] & 0x80) !== 0, opcode: b[0] & 0x0f, payload, size: at + 4 + len };
}

export async function readHead(conn: Deno.Conn): Promise<string> {
  let data: Uint8Array = new Uint8Array(0);
  const buf = new Uint8Array(4096);
  while (!new TextDecoder().decode(data).includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) break;
    data = concat([data, buf.subarray(0, n)]);
  }
  return new TextDecoder().decode(data);
}

export interface Certs {
  caPem: string;
  caFile: string;
  cert: string;
  key: string;
}

/** Deno.serve echoing every message; `onOpen` may replace that behaviour. */
export function echoServer(onOpen?: (s: WebSocket) => void, tls?: Certs) {
  let seen!: (r: { path: string; headers: string[] }) => void;
  const request = new Promise<{ path: string; headers: string[] }>((r) => (seen = r));
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {}, cert: tls?.cert, key: tls?.key },
    (req) => {
      const u = new URL(req.url);
      seen({ path: u.pathname + u.search, headers: [...req.headers.keys()] });
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.binaryType = "arraybuffer";
      socket.onmessage = (e) => socket.send(e.data);
      socket.onopen = () => onOpen?.(socket);
      return response;
    },
  );
  return { port: server.addr.port, request, close: () => server.shutdown() };
}

/** One-connection TCP server: answers the upgrade with `respond(key)` (null: never), then `then`. */
export function rawServer<T>(
  respond: (key: string) => string | null | Promise<string | null>,
  then?: (conn: Deno.Conn) => Promise<T>,
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let conn: Deno.Conn | undefined;
  const result = (async () => {
    conn = await listener.accept();
    const head = await readHead(conn);
    const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? "";
    const answer = await respond(key);
    if (answer === null) return [] as T;
    await conn.write(new TextEncoder().encode(answer));
    return then ? await then(conn) : ([] as T);
  })();
  return {
    port: listener.addr.port,
    result,
    close: async () => {
      listener.close();
      try {
        conn?.close();
      } catch { /* closed by the test */ }
      await result.catch(() => {});
    },
  };
}

/** A CONNECT-only proxy for one connection; `head` is the request it got. */
export function connectProxy() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  let gotHead!: (h: string) => void;
  const head = new Promise<string>((r) => (gotHead = r));
  const done = (async () => {
    const c = await listener.accept();
    conns.push(c);
    const h = await readHead(c);
    gotHead(h);
    const [host, port] = h.split(" ")[1].split(":");
    const up = await Deno.connect({ hostname: host, port: Number(port) });
    conns.push(up);
    await c.write(new TextEncoder().encode("HTTP/1.1 200 Connection established\r\n\r\n"));
    await Promise.allSettled([
      c.readable.pipeTo(up.writable),
      up.readable.pipeTo(c.writable),
    ]);
  })();
  return {
    port: listener.addr.port,
    head,
    close: async () => {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed by pipeTo */ }
      }
      await done.catch(() => {});
    },
  };
}

/** A CA and a localhost leaf signed by it, made by openssl in a temp dir. */
export async function makeCerts(): Promise<Certs> {
  const dir = await Deno.makeTempDir({ prefix: "ws_tls_" });
  const sh = `set -e; cd ${dir}
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca
    openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj /CN=localhost
    printf "subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n" > ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem \\
      -days 1 -extfile ext`;
  const out = await new Deno.Command("sh", { args: ["-c", sh], stdout: "null", stderr: "piped" })
    .output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  const read = (f: string) => Deno.readTextFile(`${dir}/${f}`);
  return {
    caPem: await read("ca.pem"),
    caFile: `${dir}/ca.pem`,
    cert: await read("leaf.pem"),
    key: await read("leaf.key"),
  };
}
