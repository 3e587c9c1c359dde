/**
 * The two ends of bench/agentless.ts, each run inside a lab namespace (`ip netns exec`):
 *
 *   agentless_peer.ts serve ADDR BASE NEW   in vpc: TCP services on ADDR, prints "ready"
 *     BASE+0  source: reads a decimal size and a newline, sends that many bytes, closes
 *     BASE+1  sink: reads a size line, then that many bytes, answers "N\n"
 *     BASE+2  ping: answers every read with one byte (a request/response service)
 *     BASE+3  hold: sends one byte on accept, then keeps the connection open until the peer ends
 *     BASE+10 … BASE+10+NEW-1: more ping ports, one per "new destination" (no pooled session)
 *   agentless_peer.ts download HOST PORT SIZE      prints {bytes, secs, mbps}
 *   agentless_peer.ts upload HOST PORT SIZE        prints {bytes, secs, mbps}
 *   agentless_peer.ts latency HOST:PORT...         one try per argument, in order: prints
 *                                                  [{connectMs, ttfbMs}, …]
 *   agentless_peer.ts hold HOST PORT N [BATCH]     opens N connections, BATCH (100) at a time,
 *                                                  reads each one's byte, prints {opened, ms,
 *                                                  maxConnectMs, slowConnects}, then holds them
 *                                                  until SIGINT or SIGTERM
 *
 * The load is a fixed buffer sent again and again, so the load generator costs next to no CPU
 * on this 2-core box (the e2e tests check content; this only counts bytes).
 */

const CHUNK = 64 * 1024;
const PAYLOAD = crypto.getRandomValues(new Uint8Array(CHUNK));

async function writeAll(c: Deno.Conn, data: Uint8Array): Promise<void> {
  let o = 0;
  while (o < data.length) o += await c.write(data.subarray(o));
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

function close(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* closed */ }
}

function listen(hostname: string, port: number, handle: (c: Deno.TcpConn) => Promise<void>) {
  const l = Deno.listen({ hostname, port, transport: "tcp" });
  (async () => {
    for await (const c of l) {
      c.setNoDelay(true);
      handle(c).catch(() => {}).finally(() => close(c));
    }
  })();
}

async function source(c: Deno.TcpConn): Promise<void> {
  let left = Number(await readLine(c));
  while (left > 0) {
    const n = Math.min(left, CHUNK);
    await writeAll(c, PAYLOAD.subarray(0, n));
    left -= n;
  }
}

async function sink(c: Deno.TcpConn): Promise<void> {
  const size = Number(await readLine(c));
  const buf = new Uint8Array(CHUNK);
  let got = 0;
  while (got < size) {
    const n = await c.read(buf);
    if (n === null) break;
    got += n;
  }
  await writeAll(c, new TextEncoder().encode(`${got}\n`));
}

async function ping(c: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(1024);
  while ((await c.read(buf)) !== null) await writeAll(c, buf.subarray(0, 1));
}

async function hold(c: Deno.TcpConn): Promise<void> {
  await writeAll(c, new Uint8Array([104]));
  const buf = new Uint8Array(1024);
  while ((await c.read(buf)) !== null) { /* idle until the peer ends */ }
}

function serve(addr: string, base: number, fresh: number): void {
  listen(addr, base, source);
  listen(addr, base + 1, sink);
  listen(addr, base + 2, ping);
  listen(addr, base + 3, hold);
  for (let i = 0; i < fresh; i++) listen(addr, base + 10 + i, ping);
  console.log("ready");
}

async function download(hostname: string, port: number, size: number) {
  const c = await Deno.connect({ hostname, port });
  const t0 = performance.now();
  await writeAll(c, new TextEncoder().encode(`${size}\n`));
  const buf = new Uint8Array(CHUNK);
  let bytes = 0;
  while (true) {
    const n = await c.read(buf);
    if (n === null) break;
    bytes += n;
  }
  const secs = (performance.now() - t0) / 1000;
  close(c);
  if (bytes !== size) throw new Error(`download got ${bytes} of ${size} bytes`);
  return { bytes, secs, mbps: bytes / secs / 1e6 };
}

async function upload(hostname: string, port: number, size: number) {
  const c = await Deno.connect({ hostname, port });
  const t0 = performance.now();
  await writeAll(c, new TextEncoder().encode(`${size}\n`));
  let left = size;
  while (left > 0) {
    const n = Math.min(left, CHUNK);
    await writeAll(c, PAYLOAD.subarray(0, n));
    left -= n;
  }
  const reply = Number(await readLine(c));
  const secs = (performance.now() - t0) / 1000;
  close(c);
  if (reply !== size) throw new Error(`upload: the sink got ${reply} of ${size} bytes`);
  return { bytes: size, secs, mbps: size / secs / 1e6 };
}

/** Connect (SYN to SYN-ACK as the app sees it), then one byte out and the first byte back. */
async function latency(targets: string[]) {
  const out: { connectMs: number; ttfbMs: number }[] = [];
  const one = new Uint8Array(1);
  for (const t of targets) {
    const i = t.lastIndexOf(":");
    const t0 = performance.now();
    const c = await Deno.connect({ hostname: t.slice(0, i), port: Number(t.slice(i + 1)) });
    const t1 = performance.now();
    c.setNoDelay(true);
    await writeAll(c, new Uint8Array([112]));
    if ((await c.read(one)) === null) throw new Error(`${t}: no answer`);
    const t2 = performance.now();
    close(c);
    out.push({ connectMs: t1 - t0, ttfbMs: t2 - t0 });
  }
  return out;
}

async function holdOpen(hostname: string, port: number, count: number, batch: number) {
  const conns: Deno.Conn[] = [];
  const connectMs: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    conns.push(
      ...await Promise.all(Array.from({ length: n }, async () => {
        const t = performance.now();
        const c = await Deno.connect({ hostname, port });
        connectMs.push(performance.now() - t);
        const b = new Uint8Array(1);
        if ((await c.read(b)) === null) throw new Error("a held connection ended at once");
        return c;
      })),
    );
  }
  console.log(JSON.stringify({
    opened: conns.length,
    ms: performance.now() - t0,
    maxConnectMs: Math.max(...connectMs),
    // A SYN the stack did not answer is retransmitted by the kernel after 1 s.
    slowConnects: connectMs.filter((x) => x >= 900).length,
  }));
  const done = Promise.withResolvers<void>();
  for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, () => done.resolve());
  await done.promise;
  for (const c of conns) close(c);
  Deno.exit(0);
}

/** The one-shot client commands: each prints one JSON line. */
function oneShot(cmd: string, a: string[]): Promise<unknown> | undefined {
  switch (cmd) {
    case "download":
      return download(a[0], Number(a[1]), Number(a[2]));
    case "upload":
      return upload(a[0], Number(a[1]), Number(a[2]));
    case "latency":
      return latency(a);
  }
  return undefined;
}

if (import.meta.main) {
  const [cmd, ...a] = Deno.args;
  const job = oneShot(cmd, a);
  if (job) {
    // A stalled transfer is a failure to report, not a bench that never ends.
    const limit = Number(Deno.env.get("PEER_TIMEOUT_MS") ?? 60_000);
    const timer = setTimeout(() => {
      console.error(`agentless_peer ${cmd}: no result after ${limit} ms`);
      Deno.exit(3);
    }, limit);
    console.log(JSON.stringify(await job));
    clearTimeout(timer);
  } else if (cmd === "serve") {
    serve(a[0], Number(a[1]), Number(a[2] ?? 0));
  } else if (cmd === "hold") {
    await holdOpen(a[0], Number(a[1]), Number(a[2]), Number(a[3] ?? 100));
  } else {
    console.error("usage: agentless_peer.ts serve|download|upload|latency|hold …");
    Deno.exit(2);
  }
}
