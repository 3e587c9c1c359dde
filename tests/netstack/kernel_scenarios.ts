/**
 * Scenarios for kernel_lab.ts: real kernel sockets as the app, services on loopback as the
 * destinations. Each returns figures for the test to assert on, or throws.
 */
import { createHash } from "node:crypto";
import dgram from "node:dgram";
import { blobChunks, blobSha256 } from "../../scripts/lab/blob.ts";
import type { LabEnv } from "./kernel_lab.ts";
import { REMOTE, REMOTE6 } from "./kernel_lab.ts";

type Scenario = (env: LabEnv) => Promise<Record<string, unknown>>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A loopback service for the length of `fn`. */
async function serve<T>(
  port: number,
  handle: (c: Deno.TcpConn) => Promise<void>,
  fn: () => Promise<T>,
  hostname = "127.0.0.1",
): Promise<T> {
  const l = Deno.listen({ hostname, port });
  const conns = new Set<Promise<void>>();
  const accepting = (async () => {
    try {
      for await (const c of l) {
        const p = handle(c).catch(() => {}).finally(() => {
          try {
            c.close();
          } catch { /* closed */ }
          conns.delete(p);
        });
        conns.add(p);
      }
    } catch { /* listener closed */ }
  })();
  try {
    return await fn();
  } finally {
    l.close();
    await accepting;
    await Promise.race([Promise.all(conns), sleep(2000)]);
  }
}

async function echo(c: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  while (true) {
    const n = await c.read(buf);
    if (n === null) return;
    let o = 0;
    while (o < n) o += await c.write(buf.subarray(o, n));
  }
}

/** Reads a decimal size and a newline, then sends that many blob bytes and closes. */
async function source(c: Deno.TcpConn): Promise<void> {
  const line = await readLine(c);
  for (const chunk of blobChunks(Number(line))) {
    let o = 0;
    while (o < chunk.length) o += await c.write(chunk.subarray(o));
  }
}

/** Reads everything until EOF… which smux never delivers; so reads a size line, then that many. */
async function sink(c: Deno.TcpConn): Promise<void> {
  const size = Number(await readLine(c));
  const h = createHash("sha256");
  const buf = new Uint8Array(64 * 1024);
  let got = 0;
  while (got < size) {
    const n = await c.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
    got += n;
  }
  await c.write(new TextEncoder().encode(`${got} ${h.digest("hex")}\n`));
}

async function readLine(c: Deno.Conn): Promise<string> {
  const one = new Uint8Array(1);
  let s = "";
  while (true) {
    const n = await c.read(one);
    if (n === null || one[0] === 10) return s;
    s += String.fromCharCode(one[0]);
  }
}

async function writeAll(c: Deno.Conn, data: Uint8Array): Promise<void> {
  let o = 0;
  while (o < data.length) o += await c.write(data.subarray(o));
}

async function download(host: string, port: number, size: number, readDelayMs = 0) {
  const c = await Deno.connect({ hostname: host, port });
  await writeAll(c, new TextEncoder().encode(`${size}\n`));
  const h = createHash("sha256");
  const buf = new Uint8Array(64 * 1024);
  let got = 0;
  while (true) {
    const n = await c.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
    got += n;
    if (readDelayMs) await sleep(readDelayMs);
  }
  c.close();
  return { bytes: got, sha256: h.digest("hex"), expected: blobSha256(size) };
}

async function upload(host: string, port: number, size: number) {
  const c = await Deno.connect({ hostname: host, port });
  await writeAll(c, new TextEncoder().encode(`${size}\n`));
  for (const chunk of blobChunks(size)) await writeAll(c, chunk);
  const reply = await readLine(c);
  c.close();
  const [bytes, sha256] = reply.split(" ");
  return { bytes: Number(bytes), sha256, expected: blobSha256(size) };
}

function check(r: { bytes: number; sha256: string; expected: string }, size: number) {
  if (r.bytes !== size || r.sha256 !== r.expected) {
    throw new Error(`got ${r.bytes} of ${size} bytes, sha256 ${r.sha256} (want ${r.expected})`);
  }
}

const size = (name: string, dflt: number) => Number(Deno.env.get(name) ?? dflt);

export const SCENARIOS: Record<string, Scenario> = {
  async download() {
    const n = size("LAB_SIZE", 100 << 20);
    return await serve(9002, source, async () => {
      const t0 = performance.now();
      const r = await download(REMOTE, 9002, n);
      check(r, n);
      return { bytes: r.bytes, mbps: n / 1e6 / ((performance.now() - t0) / 1000) };
    });
  },

  async upload() {
    const n = size("LAB_SIZE", 100 << 20);
    return await serve(9003, sink, async () => {
      const t0 = performance.now();
      const r = await upload(REMOTE, 9003, n);
      check(r, n);
      return { bytes: r.bytes, mbps: n / 1e6 / ((performance.now() - t0) / 1000) };
    });
  },

  async both() {
    const n = size("LAB_SIZE", 20 << 20);
    return await serve(9002, source, () =>
      serve(9003, sink, async () => {
        const [d, u] = await Promise.all([download(REMOTE, 9002, n), upload(REMOTE, 9003, n)]);
        check(d, n);
        check(u, n);
        return { down: d.bytes, up: u.bytes };
      }));
  },

  async concurrent() {
    const count = size("LAB_CONNS", 200);
    const each = size("LAB_SIZE", 256 << 10);
    return await serve(9001, echo, async () => {
      const results = await Promise.all(Array.from({ length: count }, async (_, i) => {
        const c = await Deno.connect({ hostname: REMOTE, port: 9001 });
        const data = new Uint8Array(each).map((_, j) => (i * 7 + j) & 0xff);
        const reading = (async () => {
          const got = new Uint8Array(each);
          let o = 0;
          while (o < each) {
            const n = await c.read(got.subarray(o));
            if (n === null) break;
            o += n;
          }
          return o === each && got.every((b, j) => b === data[j]);
        })();
        await writeAll(c, data);
        const ok = await reading;
        c.close();
        return ok;
      }));
      const bad = results.filter((r) => !r).length;
      if (bad) throw new Error(`${bad} of ${count} connections did not echo byte-exact`);
      return { connections: count };
    });
  },

  async refused() {
    try {
      const c = await Deno.connect({ hostname: REMOTE, port: 9099 });
      c.close();
    } catch (e) {
      if (e instanceof Deno.errors.ConnectionRefused) return { refused: true };
      throw e;
    }
    throw new Error("connect to a port nobody listens on succeeded");
  },

  /** The client shuts its write side and still reads the whole reply (§3.6 linger). */
  async halfclose() {
    const reply = new Uint8Array(1 << 20).map((_, i) => i & 0xff);
    return await serve(9004, async (c) => {
      await readLine(c);
      await writeAll(c, reply);
    }, async () => {
      const c = await Deno.connect({ hostname: REMOTE, port: 9004 });
      await writeAll(c, new TextEncoder().encode("hello\n"));
      await c.closeWrite();
      const got: Uint8Array[] = [];
      const buf = new Uint8Array(65536);
      let n: number | null;
      let total = 0;
      while ((n = await c.read(buf)) !== null) {
        got.push(buf.slice(0, n));
        total += n;
      }
      c.close();
      if (total !== reply.length) throw new Error(`reply ${total} of ${reply.length} bytes`);
      return { bytes: total };
    });
  },

  /** The app closes with unread data (the kernel sends RST): the destination learns at once. */
  async clientrst({ transport }) {
    let ended = 0;
    const done = Promise.withResolvers<void>();
    return await serve(9005, async (c) => {
      try {
        for (const chunk of blobChunks(50 << 20)) await writeAll(c, chunk);
      } catch { /* reset: what we want */ }
      ended = performance.now();
      done.resolve();
    }, async () => {
      const c = await Deno.connect({ hostname: REMOTE, port: 9005 });
      await c.read(new Uint8Array(1000));
      await sleep(100);
      const t0 = performance.now();
      c.close(); // unread data: the kernel resets
      await Promise.race([done.promise, sleep(5000)]);
      if (!ended) throw new Error("the destination never learned of the reset");
      return { ms: Math.round(ended - t0), live: transport.live };
    });
  },

  /** The destination goes away mid-transfer: the app's read ends (reset or EOF), not hangs. */
  async serverrst() {
    return await serve(9006, async (c) => {
      await writeAll(c, new Uint8Array(300_000));
      c.close();
    }, async () => {
      const c = await Deno.connect({ hostname: REMOTE, port: 9006 });
      const buf = new Uint8Array(65536);
      let total = 0;
      try {
        let n: number | null;
        while ((n = await c.read(buf)) !== null) total += n;
      } catch (e) {
        return { bytes: total, ended: (e as Error).name };
      } finally {
        c.close();
      }
      return { bytes: total, ended: "eof" };
    });
  },

  /** A slow reader and a fast server: our buffers stay bounded (§5.4). */
  async slowreader({ driver }) {
    const n = 8 << 20;
    let maxQueued = 0;
    const watch = setInterval(() => {
      const q = driver.stack.maxSendQueued();
      if (q > maxQueued) maxQueued = q;
    }, 20);
    try {
      return await serve(9002, source, async () => {
        const r = await download(REMOTE, 9002, n, 3);
        check(r, n);
        return { bytes: r.bytes, maxQueued };
      });
    } finally {
      clearInterval(watch);
    }
  },

  /** UDP to anything but the resolver gets ICMP admin-prohibited: the app fails at once. */
  async udp() {
    const s = dgram.createSocket("udp4");
    const t0 = performance.now();
    const err = await new Promise<string>((resolve) => {
      s.on("error", (e) => resolve((e as NodeJS.ErrnoException).code ?? String(e)));
      s.connect(9999, REMOTE, () => {
        s.send(new Uint8Array([1, 2, 3]));
        setTimeout(() => s.send(new Uint8Array([4])), 100);
        setTimeout(() => resolve("no error"), 3000);
      });
      s.on("message", () => resolve("answered"));
    });
    s.close();
    return { error: err, ms: Math.round(performance.now() - t0) };
  },

  async ping() {
    const r = await new Deno.Command("ping", {
      args: ["-c", "1", "-W", "2", REMOTE],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
    return { code: r.code, output: out.trim().split("\n").slice(0, 3).join(" | ") };
  },

  async v6connect() {
    return await serve(9001, echo, async () => {
      const t0 = performance.now();
      const c = await Deno.connect({ hostname: REMOTE6, port: 9001 });
      const ms = performance.now() - t0;
      c.close();
      return { ms };
    }, "::1");
  },

  async ipv6() {
    return await serve(9001, echo, async () => {
      const c = await Deno.connect({ hostname: REMOTE6, port: 9001 });
      const data = new Uint8Array(200_000).map((_, j) => j * 13);
      const reading = (async () => {
        const got = new Uint8Array(data.length);
        let o = 0;
        while (o < data.length) {
          const n = await c.read(got.subarray(o));
          if (n === null) break;
          o += n;
        }
        return got.subarray(0, o);
      })();
      await writeAll(c, data);
      const got = await reading;
      c.close();
      if (got.length !== data.length || !got.every((b, i) => b === data[i])) {
        throw new Error(`echo over IPv6: ${got.length} of ${data.length} bytes, or different`);
      }
      return { bytes: got.length };
    }, "::1");
  },

  /** Nothing left once every connection has closed and TIME-WAIT has passed. */
  async drained({ driver, transport }) {
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline) {
      if (driver.stack.connectionCount === 0 && transport.live === 0) {
        return { connections: 0, streams: 0 };
      }
      await sleep(200);
    }
    throw new Error(
      `${driver.stack.connectionCount} connections (${
        JSON.stringify(driver.stack.stats().connections)
      }) and ${transport.live} streams left`,
    );
  },
};
