/**
 * Scenarios for kernel_lab.ts beyond plain TCP transfers: HTTP with curl, IPv6, UDP and ICMP
 * refusals seen by real programs (python3, ping), DNS through the relay with dig, and the final
 * "nothing left" check. Each returns figures for kernel_test.ts, or throws.
 */
import { blobChunks, blobSha256 } from "../../scripts/lab/blob.ts";
import type { Records } from "../support/tcp_dns.ts";
import {
  command,
  echo,
  envNumber,
  type LabEnv,
  readExactly,
  REMOTE,
  REMOTE6,
  RESOLVER,
  type Scenario,
  serve,
  sleep,
  writeAll,
} from "./kernel_io.ts";

export const PAGE_MARKER = "ssm-proxy kernel lab";

/** What the lab's DNS server knows; every other name is NXDOMAIN. */
export const DNS_RECORDS: Record<string, Records> = {
  "a.lab.test": { a: ["10.1.2.3"] },
  "v6.lab.test": { aaaa: ["fd00::1234", "fd00::5678"] },
  // 30 × ~200 B: well over a UDP answer's 1232 (EDNS) or 512 bytes, so the relay truncates.
  "big.lab.test": {
    txt: Array.from({ length: 30 }, (_, i) => `record ${i} `.padEnd(200, String(i % 10))),
  },
};

/** An HTTP server on loopback: "/" is a short page, "/blob?size=N" deterministic bytes. */
async function withHttp<T>(port: number, fn: () => Promise<T>): Promise<T> {
  const stop = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    signal: stop.signal,
    onListen() {},
  }, (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/blob") {
      const it = blobChunks(Number(url.searchParams.get("size") ?? 0));
      return new Response(
        new ReadableStream<Uint8Array>({
          pull(c) {
            const n = it.next();
            if (n.done) c.close();
            else c.enqueue(n.value);
          },
        }),
      );
    }
    return new Response(`<!doctype html><title>${PAGE_MARKER}</title>\n`);
  });
  try {
    return await fn();
  } finally {
    stop.abort();
    await Promise.race([server.finished, sleep(3000)]);
  }
}

/**
 * Probes one UDP destination with python3: the error a connected socket's recv gets. Deno's UDP
 * (and node:dgram in Deno) never surfaces ICMP errors, so a Deno probe passes on silence.
 */
const UDP_PROBE = `
import errno, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.connect((host, port))
s.settimeout(3)
t0 = time.monotonic()
s.send(b"hello")
try:
    s.recv(100)
    r = "answered"
except socket.timeout:
    r = "timeout"
except OSError as e:
    r = errno.errorcode.get(e.errno, str(e.errno))
print(r, round((time.monotonic() - t0) * 1000, 1))
`;

interface DigResult {
  status?: string;
  /** Header flags, e.g. "qr aa rd ra" (+ "tc" for a truncated answer kept with +ignore). */
  flags?: string;
  answers: string[];
  truncatedRetry: boolean;
  server?: string;
  ms: number;
}

async function dig(args: string[]): Promise<DigResult> {
  const r = await command("dig", [`@${RESOLVER}`, "+tries=1", "+time=3", ...args], 15_000);
  const out = r.stdout;
  const section = /;; ANSWER SECTION:\n([\s\S]*?)(\n\n|$)/.exec(out)?.[1] ?? "";
  return {
    status: /status: (\w+)/.exec(out)?.[1] ?? `exit ${r.code}: ${(out + r.stderr).trim()}`,
    answers: section.split("\n").filter((l) => l.trim()).map((l) =>
      l.split(/\s+/).slice(3)
        .join(" ")
    ),
    flags: /;; flags: ([a-z ]*);/.exec(out)?.[1],
    truncatedRetry: out.includes("Truncated, retrying in TCP mode"),
    server: /;; SERVER: (.*)/.exec(out)?.[1],
    ms: r.ms,
  };
}

export const NET_SCENARIOS: Record<string, Scenario> = {
  /** curl fetches a page, then LAB_HTTP_SIZE (100 MB) of blob hashed by sha256sum. */
  async http() {
    const n = envNumber("LAB_HTTP_SIZE", 100 << 20);
    return await withHttp(8080, async () => {
      const page = await command("curl", ["-sS", "--max-time", "10", `http://${REMOTE}:8080/`]);
      if (page.code !== 0 || !page.stdout.includes(PAGE_MARKER)) {
        throw new Error(`curl /: exit ${page.code}: ${page.stderr.trim() || page.stdout}`);
      }
      const expected = blobSha256(n);
      const url = `http://${REMOTE}:8080/blob?size=${n}`;
      const blob = await command("bash", [
        "-c",
        'set -o pipefail; curl -sS --fail --max-time 60 "$1" | sha256sum',
        "_",
        url,
      ], 70_000);
      const sha256 = blob.stdout.split(" ")[0];
      if (blob.code !== 0 || sha256 !== expected) {
        throw new Error(`curl /blob: exit ${blob.code} ${blob.stderr.trim()} sha256 ${sha256}`);
      }
      return { pageMs: page.ms, bytes: n, ms: blob.ms, mbps: n / 1e6 / (blob.ms / 1000) };
    });
  },

  /** An echo over IPv6, 200 kB byte-exact. */
  async ipv6() {
    return await serve(9013, echo, async () => {
      const t0 = performance.now();
      const c = await Deno.connect({ hostname: REMOTE6, port: 9013 });
      const connectMs = performance.now() - t0;
      try {
        const data = new Uint8Array(200_000).map((_, j) => j * 13);
        const [got] = await Promise.all([readExactly(c, data.length), writeAll(c, data)]);
        if (got.length !== data.length || !got.every((b, i) => b === data[i])) {
          throw new Error(`echo over IPv6: ${got.length} of ${data.length} bytes, or different`);
        }
        return { bytes: got.length, connectMs };
      } finally {
        c.close();
      }
    }, "::1");
  },

  /** UDP anywhere but resolver:53 gets ICMP admin-prohibited: the app's recv fails at once. */
  async udp() {
    const out: Record<string, unknown> = {};
    for (const [host, port] of [[REMOTE, 9999], [RESOLVER, 123], [REMOTE6, 9999]] as const) {
      const r = await command("python3", ["-c", UDP_PROBE, host, String(port)], 10_000);
      const [error, ms] = r.stdout.trim().split(" ");
      if (r.code !== 0) throw new Error(`python3 probe: ${r.stderr.trim()}`);
      out[`${host}:${port}`] = { error, ms: Number(ms) };
    }
    return out;
  },

  /** ICMP echo is refused, never answered: ping prints "Packet filtered". */
  async ping() {
    const out: Record<string, unknown> = {};
    for (const host of [REMOTE, REMOTE6]) {
      const r = await command("ping", ["-c", "1", "-W", "2", host], 10_000);
      out[host] = {
        code: r.code,
        output: (r.stdout + r.stderr).trim().split("\n").slice(0, 2).join(" | "),
      };
    }
    return out;
  },

  /** dig through the relay: A, AAAA, NXDOMAIN, a TXT answer too big for UDP, and +tcp. */
  async dns({ dns }) {
    const before = dns.stats.queries;
    return {
      a: await dig(["a.lab.test", "A"]),
      aaaa: await dig(["v6.lab.test", "AAAA"]),
      nodata: await dig(["a.lab.test", "AAAA"]),
      nxdomain: await dig(["nothing.lab.test", "A"]),
      big: await dig(["big.lab.test", "TXT"]),
      bigUdpOnly: await dig(["+ignore", "big.lab.test", "TXT"]),
      bigNoEdns: await dig(["+noedns", "big.lab.test", "TXT"]),
      tcp: await dig(["+tcp", "a.lab.test", "A"]),
      serverQueries: dns.stats.queries - before,
    };
  },

  /**
   * Nothing left once every connection has closed and TIME-WAIT has passed: no netstack
   * connection, no stream but the DNS relay's pooled one, no kernel socket to the lab's
   * addresses outside TIME-WAIT.
   */
  async drained({ driver, transport }: LabEnv) {
    const deadline = Date.now() + envNumber("LAB_DRAIN_MS", 12_000);
    const t0 = performance.now();
    let why = "";
    while (Date.now() < deadline) {
      const streams = [...transport.liveTo].filter(([k]) => k !== `${RESOLVER}|53`);
      const sockets = await kernelLeftovers();
      if (driver.stack.connectionCount === 0 && streams.length === 0 && sockets.length === 0) {
        return { ms: Math.round(performance.now() - t0), relayStreams: transport.live };
      }
      why = `${driver.stack.connectionCount} connections ${
        JSON.stringify(driver.stack.stats().connections)
      }, streams ${JSON.stringify(streams)}, kernel sockets ${JSON.stringify(sockets)}`;
      await sleep(250);
    }
    throw new Error(`left after ${Math.round(performance.now() - t0)} ms: ${why}`);
  },
};

/** Kernel TCP sockets that are neither listening nor in TIME-WAIT (the relay's aside). */
async function kernelLeftovers(): Promise<string[]> {
  const r = await command("ss", ["-tanH"]);
  return r.stdout.split("\n").map((l) => l.trim().split(/\s+/)).filter((f) =>
    f.length >= 5 && f[0] !== "LISTEN" && f[0] !== "TIME-WAIT" &&
    !f.slice(3, 5).includes("127.0.0.1:53")
  ).map((f) => `${f[0]} ${f[3]} ${f[4]}`);
}
