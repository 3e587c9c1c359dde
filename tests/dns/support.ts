/**
 * Real DNS servers and clients on loopback for the forwarder tests: a server answering A records
 * from a table over UDP and TCP (the lab's codec and sockets), with knobs for what the tests need
 * (truncate over UDP, stay silent, count who was asked), and one-shot UDP/TCP clients.
 */
import dgram from "node:dgram";
import { decodeMessage, encodeQuery, encodeResponse, type Message } from "../../scripts/lab/dns.ts";
import { type DnsTcpServer, tcpDns, udp } from "../../scripts/lab/services.ts";
import { frame, FrameReader } from "../../src/netstack/dns_framing.ts";

export interface ServerOptions {
  /** Names answered with many A records (so the answer exceeds 512 bytes). */
  big?: string[];
  /** Answer these names over UDP with TC set and no records (the whole answer is on TCP). */
  truncateUdp?: boolean;
  /** Receive but never answer (a black hole). */
  silent?: boolean;
}

export interface TestDnsServer {
  host: string;
  port: number;
  /** Query names seen, per transport. */
  seen: { udp: string[]; tcp: string[] };
  close(): Promise<void>;
}

/** Forty A records: an answer of about 680 bytes, over the classic 512-byte UDP limit. */
export const BIG_ADDRESSES = Array.from({ length: 40 }, (_, i) => `10.77.0.${i + 1}`);

export async function dnsServer(
  host: string,
  records: Record<string, string>,
  o: ServerOptions = {},
  port = 0,
): Promise<TestDnsServer> {
  const seen = { udp: [] as string[], tcp: [] as string[] };
  const answer = (msg: Uint8Array, via: "udp" | "tcp"): Uint8Array | undefined => {
    let q: Message;
    try {
      q = decodeMessage(msg);
    } catch {
      return undefined;
    }
    const name = q.questions[0]?.name ?? "";
    seen[via].push(name);
    if (o.silent) return undefined;
    if (o.big?.includes(name)) {
      const full = encodeResponse(q, 0, BIG_ADDRESSES);
      if (via === "tcp" || !o.truncateUdp) return full;
      const tc = encodeResponse(q, 0, []);
      tc[2] |= 0x02;
      return tc;
    }
    const a = records[name];
    return encodeResponse(q, a ? 0 : 3, a ? [a] : []);
  };
  const u = await udp(host, port, (m) => answer(m, "udp"));
  const bound = u.address().port;
  let t: DnsTcpServer;
  try {
    t = tcpDns(host, bound, (m) => answer(m, "tcp"));
  } catch (e) {
    u.close();
    throw e;
  }
  return {
    host,
    port: bound,
    seen,
    async close() {
      u.close();
      await t.close();
    },
  };
}

/** An EDNS0 OPT record advertising `size` bytes over UDP, appended to a query. */
export function withEdns(query: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(query.length + 11);
  out.set(query);
  out.set([0, 0, 41, size >> 8, size & 0xff, 0, 0, 0, 0, 0, 0], query.length);
  out[11] = 1; // ARCOUNT
  return out;
}

export function query(id: number, name: string): Uint8Array {
  return encodeQuery(id, name);
}

/** Send one datagram and wait for the first reply, or undefined after `timeoutMs`. */
export function udpAsk(
  host: string,
  port: number,
  msg: Uint8Array,
  timeoutMs = 3000,
): Promise<Uint8Array | undefined> {
  const { promise, resolve } = Promise.withResolvers<Uint8Array | undefined>();
  const sock = dgram.createSocket("udp4");
  const done = (r: Uint8Array | undefined) => {
    clearTimeout(timer);
    sock.close();
    resolve(r);
  };
  const timer = setTimeout(() => done(undefined), timeoutMs);
  sock.on("message", (m) => done(new Uint8Array(m)));
  sock.send(msg, port, host);
  return promise;
}

/** Send datagrams that expect no answer (garbage). */
export async function udpSend(host: string, port: number, msgs: Uint8Array[]): Promise<void> {
  const sock = dgram.createSocket("udp4");
  for (const m of msgs) {
    await new Promise<void>((r) => sock.send(m, port, host, () => r()));
  }
  sock.close();
}

/** Over one TCP connection: write `before` raw, then each query framed; collect `want` answers. */
export async function tcpAsk(
  host: string,
  port: number,
  queries: Uint8Array[],
  o: { before?: Uint8Array; want?: number; timeoutMs?: number } = {},
): Promise<Uint8Array[]> {
  const c = await Deno.connect({ hostname: host, port });
  const timer = setTimeout(() => c.close(), o.timeoutMs ?? 3000);
  const out: Uint8Array[] = [];
  try {
    if (o.before) await c.write(o.before);
    for (const q of queries) await c.write(frame(q));
    const frames = new FrameReader();
    const buf = new Uint8Array(4096);
    const want = o.want ?? queries.length;
    while (out.length < want) {
      const n = await c.read(buf).catch(() => null);
      if (n === null) break;
      out.push(...frames.push(buf.subarray(0, n)));
    }
  } finally {
    clearTimeout(timer);
    try {
      c.close();
    } catch { /* closed by the timer */ }
  }
  return out;
}

export const decode = decodeMessage;
