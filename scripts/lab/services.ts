/**
 * The "VPC" services, run as one process inside the lab's vpc namespace, on each --addr (IPv4
 * or IPv6; repeat it for a dual-stack host):
 *   HTTP :80   /  (a short page), /blob?size=N (deterministic bytes, x-sha256 header),
 *              /blob.sha256?size=N (the digest alone)
 *   DNS  :53   UDP and TCP, A and AAAA records from --record name=address (repeatable per
 *              name); NXDOMAIN otherwise
 *   echo :7    UDP, each datagram sent back as is
 * and on each --whoami address (the lab's IPv6-only host):
 *   HTTP :80   any GET: the client's source address as seen here, one line of plain text
 *   echo :7    UDP, as above
 *
 *   deno run -A scripts/lab/services.ts --addr 10.99.1.10 --record db.lab.internal=10.99.1.10
 *
 * Prints "ready" on stdout once every socket listens, so the lab can wait on one line.
 */
import dgram from "node:dgram";
import type { Lab, LabProcess } from "../lab.ts";
import { frame, FrameReader } from "../../src/netstack/dns_framing.ts";
import { blobChunks, blobSha256 } from "./blob.ts";
import { answerFor, decodeMessage, encodeResponse } from "./dns.ts";

export const PAGE_MARKER = "ssm-proxy lab";
/** Largest blob served: keeps a typo from making the server stream forever. */
const MAX_BLOB = 1 << 30;

interface Args {
  addrs: string[];
  whoami: string[];
  records: Record<string, string[]>;
}

function parseArgs(args: string[]): Args {
  const out: Args = { addrs: [], whoami: [], records: {} };
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--addr") out.addrs.push(args[++i]);
    else if (args[i] === "--whoami") out.whoami.push(args[++i]);
    else if (args[i] === "--record") {
      const [name, ip] = args[++i].split("=");
      (out.records[name.toLowerCase()] ??= []).push(ip);
    } else throw new Error(`unknown argument ${args[i]}`);
  }
  if (out.addrs.length === 0 && out.whoami.length === 0) out.addrs.push("0.0.0.0");
  return out;
}

const digests = new Map<number, string>();
function digest(size: number): string {
  let d = digests.get(size);
  if (!d) digests.set(size, d = blobSha256(size));
  return d;
}

function blobSize(url: URL): number | undefined {
  const n = Number(url.searchParams.get("size") ?? "0");
  return Number.isInteger(n) && n >= 0 && n <= MAX_BLOB ? n : undefined;
}

/** The HTTP side: `/` and `/blob`; exported so scripts/agentless_smoke.ts serves the same. */
export function handle(req: Request): Response {
  const url = new URL(req.url);
  if (url.pathname === "/") {
    return new Response(
      `<!doctype html><title>${PAGE_MARKER}</title><p>${PAGE_MARKER}: hello from the VPC</p>\n`,
      {
        headers: { "content-type": "text/html" },
      },
    );
  }
  if (url.pathname === "/blob" || url.pathname === "/blob.sha256") {
    const size = blobSize(url);
    if (size === undefined) return new Response("bad size\n", { status: 400 });
    if (url.pathname === "/blob.sha256") return new Response(digest(size) + "\n");
    const chunks = blobChunks(size);
    const body = new ReadableStream<Uint8Array>({
      pull(ctl) {
        const r = chunks.next();
        if (r.done) ctl.close();
        else ctl.enqueue(r.value);
      },
    });
    return new Response(body, {
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(size),
        "x-sha256": digest(size),
      },
    });
  }
  return new Response("not found\n", { status: 404 });
}

/** The whoami answer: who the client is, as this host sees it. */
export function whoami(remote: Deno.Addr): Response {
  const who = remote.transport === "tcp" || remote.transport === "udp" ? remote.hostname : "?";
  return new Response(`${who}\n`, { headers: { "content-type": "text/plain" } });
}

/** HTTP on addr:80; resolves once it listens. */
export function http(addr: string, handler: Deno.ServeHandler): Promise<void> {
  const served = Promise.withResolvers<void>();
  Deno.serve({ hostname: addr, port: 80, onListen: () => served.resolve() }, handler);
  return served.promise;
}

/** Each datagram back as is. */
export const echo = (msg: Uint8Array): Uint8Array => msg;

/** A UDP responder on addr:port (IPv4 or IPv6); resolves with the bound socket once it listens. */
export function udp(
  addr: string,
  port: number,
  reply: (msg: Uint8Array) => Uint8Array | undefined,
): Promise<dgram.Socket> {
  const { promise, resolve, reject } = Promise.withResolvers<dgram.Socket>();
  const sock = dgram.createSocket(addr.includes(":") ? "udp6" : "udp4");
  sock.on("error", reject);
  sock.on("message", (msg, rinfo) => {
    const out = reply(new Uint8Array(msg));
    if (out) sock.send(out, rinfo.port, rinfo.address);
  });
  sock.bind(port, addr, () => resolve(sock));
  return promise;
}

/** A DNS-over-TCP server; `addr` says the port when 0 was asked for. */
export interface DnsTcpServer {
  readonly addr: Deno.NetAddr;
  /** Stop listening and drop every connection. */
  close(): Promise<void>;
}

/**
 * DNS over TCP (RFC 1035 §4.2.2, RFC 7766: many queries per connection, answered in order),
 * framed by the netstack's own codec. `onConnection` counts accepted connections.
 */
export function tcpDns(
  addr: string,
  port: number,
  reply: (msg: Uint8Array) => Uint8Array | undefined,
  onConnection?: () => void,
): DnsTcpServer {
  const l = Deno.listen({ hostname: addr, port });
  const conns = new Set<Deno.Conn>();
  const drop = (c: Deno.Conn) => {
    conns.delete(c);
    try {
      c.close();
    } catch { /* closed */ }
  };
  const accepting = (async () => {
    try {
      for await (const c of l) {
        onConnection?.();
        conns.add(c);
        serveDns(c, reply).finally(() => drop(c));
      }
    } catch { /* listener closed */ }
  })();
  return {
    addr: l.addr,
    async close() {
      l.close();
      for (const c of [...conns]) drop(c);
      await accepting;
    },
  };
}

async function serveDns(c: Deno.Conn, reply: (msg: Uint8Array) => Uint8Array | undefined) {
  const frames = new FrameReader();
  const chunk = new Uint8Array(4096);
  try {
    let n: number | null;
    while ((n = await c.read(chunk)) !== null) {
      for (const msg of frames.push(chunk.slice(0, n))) {
        const out = reply(msg);
        if (!out) continue;
        const framed = frame(out);
        for (let o = 0; o < framed.length;) o += await c.write(framed.subarray(o));
      }
    }
  } catch { /* reset */ }
}

/** The DNS side: A and AAAA records from `records` (lower-case names), NXDOMAIN otherwise. */
export function dnsResponder(
  records: Record<string, string | string[]>,
): (msg: Uint8Array) => Uint8Array | undefined {
  return (msg) => {
    try {
      const q = decodeMessage(msg);
      const a = answerFor(records, q);
      return encodeResponse(q, a.rcode, a.addresses);
    } catch {
      return undefined; // not DNS: stay silent, like a resolver facing garbage
    }
  };
}

/** Start the services in the lab's vpc (both families with `ipv6`); resolves once they listen. */
export async function startServices(lab: Lab): Promise<LabProcess> {
  const records = [...Object.entries(lab.dnsTable), ...Object.entries(lab.dnsTable6)]
    .flatMap(([n, a]) => ["--record", `${n}=${a}`]);
  const v6 = lab.serviceAddress6 && lab.ipv6OnlyAddress
    ? ["--addr", lab.serviceAddress6, "--whoami", lab.ipv6OnlyAddress]
    : [];
  const self = new URL(import.meta.url).pathname;
  const p = lab.spawn(
    "vpc",
    [Deno.execPath(), "run", "-A", self, "--addr", lab.serviceAddress, ...v6, ...records],
    {},
    "vpc services",
  );
  await p.waitForLine(/^ready$/, 20_000);
  return p;
}

if (import.meta.main) {
  const { addrs, whoami: whoamiAddrs, records } = parseArgs(Deno.args);
  const dnsReply = dnsResponder(records);
  await Promise.all([
    ...addrs.flatMap((addr) => {
      tcpDns(addr, 53, dnsReply);
      return [http(addr, handle), udp(addr, 53, dnsReply), udp(addr, 7, echo)];
    }),
    ...whoamiAddrs.flatMap((addr) => [
      http(addr, (_req, info) => whoami(info.remoteAddr)),
      udp(addr, 7, echo),
    ]),
  ]);
  // Pre-compute digests of the sizes the demo and tests ask for, off the first request's path.
  for (const size of [5 << 20, 20 << 20]) digest(size);
  console.log("ready");
}
