/** Loopback peers for integration tests: a sink that hashes what it receives, a source that sends. */
import { createHash } from "node:crypto";

export interface Peer {
  port: number;
  close(): Promise<void>;
}

/** Deterministic pseudo-random bytes, so both ends can compute the expected digest. */
export function pattern(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x;
    out[i + 1] = x >>> 8;
    out[i + 2] = x >>> 16;
    out[i + 3] = x >>> 24;
  }
  return out;
}

export function sha256hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * A destination server on 127.0.0.1. Each connection: first 1 byte selects the mode.
 * 'U' + 4-byte big-endian size = upload: reads that many bytes, replies with their SHA-256 hex.
 * 'D' + 4-byte big-endian size = download: sends pattern(size) and closes.
 * 'E' = echo until EOF.
 */
export function startDestination(): Peer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const c of listener) {
      conns.add(c);
      handle(c).catch(() => {}).finally(() => {
        conns.delete(c);
        try {
          c.close();
        } catch { /* closed */ }
      });
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await serving;
    },
  };
}

async function readExactly(c: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let o = 0;
  while (o < n) {
    const k = await c.read(out.subarray(o));
    if (k === null) throw new Error("EOF");
    o += k;
  }
  return out;
}

async function handle(c: Deno.Conn): Promise<void> {
  const [mode] = await readExactly(c, 1);
  const buf = new Uint8Array(64 * 1024);
  if (mode === 0x55) { // U + 4-byte size: smux has no half-close, so the size marks the end
    const size = new DataView((await readExactly(c, 4)).buffer).getUint32(0);
    const h = createHash("sha256");
    let total = 0;
    while (total < size) {
      const n = await c.read(buf.subarray(0, Math.min(buf.length, size - total)));
      if (n === null) break;
      total += n;
      h.update(buf.subarray(0, n));
    }
    await c.write(new TextEncoder().encode(h.digest("hex")));
  } else if (mode === 0x44) { // D
    const size = new DataView((await readExactly(c, 4)).buffer).getUint32(0);
    const data = pattern(size, size);
    for (let o = 0; o < size; o += 256 * 1024) {
      const part = data.subarray(o, Math.min(size, o + 256 * 1024));
      let w = 0;
      while (w < part.length) w += await c.write(part.subarray(w));
    }
  } else if (mode === 0x45) { // E
    while (true) {
      const n = await c.read(buf);
      if (n === null) break;
      let w = 0;
      while (w < n) w += await c.write(buf.subarray(w, n));
    }
  }
}

/** Upload `data` through a forwarded port; returns the destination's digest of what arrived. */
export async function upload(port: number, data: Uint8Array): Promise<string> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const head = new Uint8Array(5);
    head[0] = 0x55;
    new DataView(head.buffer).setUint32(1, data.length);
    await writeAll(c, head);
    await writeAll(c, data);
    const got = await readAll(c, 64);
    return new TextDecoder().decode(got);
  } finally {
    c.close();
  }
}

/** Download `size` bytes through a forwarded port. */
export async function download(port: number, size: number): Promise<Uint8Array> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const head = new Uint8Array(5);
    head[0] = 0x44;
    new DataView(head.buffer).setUint32(1, size);
    await writeAll(c, head);
    return await readAll(c, size);
  } finally {
    c.close();
  }
}

export async function writeAll(c: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await c.write(data.subarray(o, o + 256 * 1024));
}

/** Read until `size` bytes or EOF. */
export async function readAll(c: Deno.Conn, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let o = 0;
  while (o < size) {
    const n = await c.read(out.subarray(o));
    if (n === null) break;
    o += n;
  }
  return out.subarray(0, o);
}
