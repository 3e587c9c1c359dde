/**
 * One query to one DNS server, over UDP or TCP, with a deadline: the answer, or undefined when the
 * server did not answer in time (or the connection failed). The query goes out unchanged, so the
 * answer carries the client's id and can be relayed as is.
 */
import dgram from "node:dgram";
import { frame, FrameReader } from "../netstack/dns_framing.ts";
import { answers } from "./query.ts";

export interface Server {
  host: string;
  port: number;
}

export const serverText = (s: Server) =>
  s.host.includes(":") ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;

/**
 * Over UDP from a fresh socket per query: a random source port (the answer cannot be spoofed by
 * guessing a shared one) and no id bookkeeping between clients that picked the same id.
 */
export function exchangeUdp(
  server: Server,
  query: Uint8Array,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Uint8Array | undefined> {
  const { promise, resolve } = Promise.withResolvers<Uint8Array | undefined>();
  const sock = dgram.createSocket(server.host.includes(":") ? "udp6" : "udp4");
  let done = false;
  const finish = (answer: Uint8Array | undefined) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    signal?.removeEventListener("abort", abort);
    try {
      sock.close();
    } catch { /* closed */ }
    resolve(answer);
  };
  const abort = () => finish(undefined);
  const timer = setTimeout(abort, timeoutMs);
  signal?.addEventListener("abort", abort);
  sock.on("error", abort);
  sock.on("message", (msg, rinfo) => {
    // Only the server we asked, answering this query; anything else is ignored, not fatal.
    if (rinfo.port !== server.port || !sameHost(rinfo.address, server.host)) return;
    const answer = new Uint8Array(msg);
    if (answers(query, answer)) finish(answer);
  });
  if (signal?.aborted) finish(undefined);
  else sock.send(query, server.port, server.host, (err) => err && abort());
  return promise;
}

function sameHost(a: string, b: string): boolean {
  const strip = (s: string) => s.replace(/%.*$/, "").replace(/^::ffff:/, "").toLowerCase();
  return strip(a) === strip(b);
}

/** Over TCP (RFC 1035 §4.2.2 framing), one connection per query. */
export async function exchangeTcp(
  server: Server,
  query: Uint8Array,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Uint8Array | undefined> {
  const deadline = AbortSignal.timeout(timeoutMs);
  const stop = signal ? AbortSignal.any([signal, deadline]) : deadline;
  let conn: Deno.TcpConn | undefined;
  const close = () => {
    try {
      conn?.close();
    } catch { /* closed */ }
  };
  stop.addEventListener("abort", close);
  try {
    conn = await Deno.connect({ hostname: server.host, port: server.port, signal: stop });
    if (stop.aborted) return undefined;
    const framed = frame(query);
    for (let o = 0; o < framed.length;) o += await conn.write(framed.subarray(o));
    const frames = new FrameReader();
    const buf = new Uint8Array(4096);
    while (!stop.aborted) {
      const n = await conn.read(buf);
      if (n === null) return undefined;
      for (const answer of frames.push(buf.subarray(0, n))) {
        if (answers(query, answer)) return answer;
      }
    }
    return undefined;
  } catch {
    return undefined; // refused, reset, closed by the deadline: no answer from this server
  } finally {
    stop.removeEventListener("abort", close);
    close();
  }
}
