/**
 * Socket helpers shared by the kernel lab's scenarios: loopback services (echo, a blob source, a
 * hashing sink), clients for them, and running a command with a deadline.
 */
import { createHash } from "node:crypto";
import { blobChunks, blobSha256 } from "../../scripts/lab/blob.ts";
import type { Tun } from "../../src/net/types.ts";
import type { NetStackDriver } from "../../src/netstack/driver.ts";
import type { DirectTransport } from "../support/direct_transport.ts";
import type { TcpDnsServer } from "../support/tcp_dns.ts";

/** The destinations the apps dial (routed to the TUN) and the resolver the stack relays for. */
export const REMOTE = "10.200.0.5";
export const REMOTE6 = "fd00:200::5";
export const RESOLVER = "10.200.0.53";

/** What a scenario gets from kernel_lab.ts. */
export interface LabEnv {
  driver: NetStackDriver;
  transport: DirectTransport;
  tun: Tun;
  /** The DNS-over-TCP server on 127.0.0.1:53 behind RESOLVER. */
  dns: TcpDnsServer;
}

export type Scenario = (env: LabEnv) => Promise<Record<string, unknown>>;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `p`, or an error saying `explain()` if it is not settled within `ms`. */
export async function withDeadline<T>(
  p: Promise<T>,
  ms: number,
  explain: () => string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(explain())), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A size from the environment (bytes, counts), or the default. */
export const envNumber = (name: string, dflt: number) => Number(Deno.env.get(name) ?? dflt);

/** A loopback service while `fn` runs; its open connections live on until their streams end. */
export async function serve<T>(
  port: number,
  handle: (c: Deno.TcpConn) => Promise<void>,
  fn: () => Promise<T>,
  hostname = "127.0.0.1",
): Promise<T> {
  const l = Deno.listen({ hostname, port });
  const accepting = (async () => {
    try {
      for await (const c of l) {
        handle(c).catch(() => {}).finally(() => {
          try {
            c.close();
          } catch { /* closed */ }
        });
      }
    } catch { /* listener closed */ }
  })();
  try {
    return await fn();
  } finally {
    // Connections still open end with their streams (after the FIN linger); "drained" checks.
    l.close();
    await accepting;
  }
}

export async function readLine(c: Deno.Conn): Promise<string> {
  const one = new Uint8Array(1);
  let s = "";
  while (true) {
    const n = await c.read(one);
    if (n === null || one[0] === 10) return s;
    s += String.fromCharCode(one[0]);
  }
}

export async function writeAll(c: Deno.Conn, data: Uint8Array): Promise<void> {
  let o = 0;
  while (o < data.length) o += await c.write(data.subarray(o));
}

/** Reads until `size` bytes or EOF into a fresh buffer; returns what arrived. */
export async function readExactly(c: Deno.Conn, size: number): Promise<Uint8Array> {
  const got = new Uint8Array(size);
  let o = 0;
  while (o < size) {
    const n = await c.read(got.subarray(o));
    if (n === null) break;
    o += n;
  }
  return got.subarray(0, o);
}

export async function echo(c: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  while (true) {
    const n = await c.read(buf);
    if (n === null) return;
    await writeAll(c, buf.subarray(0, n));
  }
}

/** Reads a decimal size and a newline, then sends that many blob bytes and closes. */
export async function source(c: Deno.TcpConn): Promise<void> {
  const line = await readLine(c);
  for (const chunk of blobChunks(Number(line))) await writeAll(c, chunk);
}

/** Reads a size line, then that many bytes (the mux never delivers EOF), and replies with a hash. */
export async function sink(c: Deno.TcpConn): Promise<void> {
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
  await writeAll(c, new TextEncoder().encode(`${got} ${h.digest("hex")}\n`));
}

export interface Transfer {
  bytes: number;
  sha256: string;
  expected: string;
}

/** How far a transfer has come, for explaining one that does not finish. */
export interface Progress {
  bytes: number;
  doneMs?: number;
}

/** Asks a `source` for `size` bytes and hashes them; `pace` runs after every read. */
export async function download(
  host: string,
  port: number,
  size: number,
  o: { pace?: () => Promise<void>; readSize?: number; progress?: Progress } = {},
): Promise<Transfer> {
  const { pace, readSize = 64 * 1024, progress } = o;
  const c = await Deno.connect({ hostname: host, port });
  try {
    await writeAll(c, new TextEncoder().encode(`${size}\n`));
    const h = createHash("sha256");
    const buf = new Uint8Array(readSize);
    let got = 0;
    while (true) {
      const n = await c.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
      got += n;
      if (progress) progress.bytes = got;
      if (pace) await pace();
    }
    return { bytes: got, sha256: h.digest("hex"), expected: blobSha256(size) };
  } finally {
    c.close();
  }
}

/** Sends `size` blob bytes to a `sink` and returns its count and hash. */
export async function upload(
  host: string,
  port: number,
  size: number,
  progress?: Progress,
): Promise<Transfer> {
  const c = await Deno.connect({ hostname: host, port });
  try {
    await writeAll(c, new TextEncoder().encode(`${size}\n`));
    for (const chunk of blobChunks(size)) {
      await writeAll(c, chunk);
      if (progress) progress.bytes += chunk.length;
    }
    const [bytes, sha256] = (await readLine(c)).split(" ");
    return { bytes: Number(bytes), sha256, expected: blobSha256(size) };
  } finally {
    c.close();
  }
}

export function check(r: Transfer, size: number): void {
  if (r.bytes !== size || r.sha256 !== r.expected) {
    throw new Error(`got ${r.bytes} of ${size} bytes, sha256 ${r.sha256} (want ${r.expected})`);
  }
}

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a program to completion (killed after `timeoutMs`). */
export async function command(
  cmd: string,
  args: string[],
  timeoutMs = 20_000,
  stdin?: string,
): Promise<CmdResult> {
  const t0 = performance.now();
  const p = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const timer = setTimeout(() => {
    try {
      p.kill("SIGKILL");
    } catch { /* gone */ }
  }, timeoutMs);
  try {
    const o = await p.output();
    const dec = new TextDecoder();
    return {
      code: o.code,
      stdout: dec.decode(o.stdout),
      stderr: dec.decode(o.stderr),
      ms: Math.round(performance.now() - t0),
    };
  } finally {
    clearTimeout(timer);
  }
}
