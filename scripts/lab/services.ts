/**
 * The "VPC" services, run as one process inside the lab's vpc namespace:
 *   HTTP :80   /  (a short page), /blob?size=N (deterministic bytes, x-sha256 header),
 *              /blob.sha256?size=N (the digest alone)
 *   DNS  :53   UDP and TCP, A records from --record name=address; NXDOMAIN otherwise
 *   echo :7    UDP, each datagram sent back as is
 *
 *   deno run -A scripts/lab/services.ts --addr 10.99.1.10 --record db.lab.internal=10.99.1.10
 *
 * Prints "ready" on stdout once every socket listens, so the lab can wait on one line.
 */
import dgram from "node:dgram";
import { blobChunks, blobSha256 } from "./blob.ts";
import { answerFor, decodeMessage, encodeResponse } from "./dns.ts";

export const PAGE_MARKER = "ssm-proxy lab";
/** Largest blob served: keeps a typo from making the server stream forever. */
const MAX_BLOB = 1 << 30;

function parseArgs(args: string[]): { addr: string; records: Record<string, string> } {
  let addr = "0.0.0.0";
  const records: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--addr") addr = args[++i];
    else if (args[i] === "--record") {
      const [name, ip] = args[++i].split("=");
      records[name.toLowerCase()] = ip;
    } else throw new Error(`unknown argument ${args[i]}`);
  }
  return { addr, records };
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

/** A UDP responder on addr:port; resolves with the bound socket once it listens. */
export function udp(
  addr: string,
  port: number,
  reply: (msg: Uint8Array) => Uint8Array | undefined,
): Promise<dgram.Socket> {
  const { promise, resolve, reject } = Promise.withResolvers<dgram.Socket>();
  const sock = dgram.createSocket("udp4");
  sock.on("error", reject);
  sock.on("message", (msg, rinfo) => {
    const out = reply(new Uint8Array(msg));
    if (out) sock.send(out, rinfo.port, rinfo.address);
  });
  sock.bind(port, addr, () => resolve(sock));
  return promise;
}

/**
 * DNS over TCP (RFC 1035 §4.2.2): 2-byte length-prefixed messages, answered in order. Returns the
 * listener (port 0 picks a free port: read it from `addr`).
 */
export function tcpDns(
  addr: string,
  port: number,
  reply: (msg: Uint8Array) => Uint8Array | undefined,
): Deno.TcpListener {
  const l = Deno.listen({ hostname: addr, port });
  (async () => {
    for await (const c of l) {
      (async () => {
        let buf = new Uint8Array(0);
        const chunk = new Uint8Array(4096);
        try {
          while (true) {
            const n = await c.read(chunk);
            if (n === null) break;
            const next = new Uint8Array(buf.length + n);
            next.set(buf);
            next.set(chunk.subarray(0, n), buf.length);
            buf = next;
            while (buf.length >= 2 && buf.length >= 2 + ((buf[0] << 8) | buf[1])) {
              const len = (buf[0] << 8) | buf[1];
              const out = reply(buf.slice(2, 2 + len));
              buf = buf.slice(2 + len);
              if (!out) continue;
              const framed = new Uint8Array(2 + out.length);
              framed[0] = out.length >> 8;
              framed[1] = out.length & 0xff;
              framed.set(out, 2);
              await c.write(framed);
            }
          }
        } catch { /* reset */ }
        try {
          c.close();
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {/* listener closed */});
  return l;
}

/** The DNS side: A records from `records` (lower-case names), NXDOMAIN otherwise. */
export function dnsResponder(
  records: Record<string, string>,
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

if (import.meta.main) {
  const { addr, records } = parseArgs(Deno.args);
  const served = Promise.withResolvers<void>();
  const dnsReply = dnsResponder(records);
  tcpDns(addr, 53, dnsReply);
  Deno.serve({ hostname: addr, port: 80, onListen: () => served.resolve() }, handle);
  await Promise.all([
    served.promise,
    udp(addr, 53, dnsReply),
    udp(addr, 7, (msg) => msg),
  ]);
  // Pre-compute digests of the sizes the demo and tests ask for, off the first request's path.
  for (const size of [5 << 20, 20 << 20]) digest(size);
  console.log("ready");
}
