/**
 * One network check, run inside a lab namespace (a process cannot switch namespaces safely, so
 * the lab runs this with `ip netns exec`). Prints one JSON line, a ProbeResult, and exits 0 even
 * when the check fails: the caller decides what a failure means (e.g. "refused" is the expected
 * outcome of the metadata check).
 *
 *   probe.ts http URL MARKER          GET, 200 and body contains MARKER
 *   probe.ts blob URL                 GET a /blob, SHA-256 of the body must equal x-sha256
 *   probe.ts dns SERVER NAME [AAAA]   A (or AAAA) query over UDP; detail lists addresses or rcode
 *   probe.ts udp HOST PORT [SRC]      a datagram must come back unchanged (SRC: bind address)
 *   probe.ts tcp HOST PORT            connect only: "connected", "refused", "unreachable"
 *                                     (ICMP unreachable or prohibited: EHOSTUNREACH) or "timeout"
 */
import dgram from "node:dgram";
import { createHash } from "node:crypto";
import { decodeMessage, encodeQuery, RCODE_NOERROR, TYPE_A, TYPE_AAAA } from "./dns.ts";

export interface ProbeResult {
  ok: boolean;
  ms: number;
  detail: string;
  /** Kind-specific facts: bytes, addresses, outcome. */
  data?: Record<string, unknown>;
}

const TIMEOUT_MS = Number(Deno.env.get("PROBE_TIMEOUT_MS") ?? "5000");

async function http(url: string, marker: string): Promise<ProbeResult> {
  const t0 = performance.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  const body = await res.text();
  const ok = res.status === 200 && body.includes(marker);
  return {
    ok,
    ms: performance.now() - t0,
    detail: ok
      ? `HTTP ${res.status}, ${body.length} bytes`
      : `HTTP ${res.status}: ${body.slice(0, 80)}`,
  };
}

async function blob(url: string): Promise<ProbeResult> {
  const t0 = performance.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS * 12) });
  const want = res.headers.get("x-sha256") ?? "";
  const h = createHash("sha256");
  let bytes = 0;
  for await (const c of res.body!) {
    h.update(c);
    bytes += c.length;
  }
  const got = h.digest("hex");
  const ms = performance.now() - t0;
  const ok = res.status === 200 && want !== "" && got === want;
  const rate = `${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`;
  return {
    ok,
    ms,
    detail: ok
      ? `${bytes} bytes, SHA-256 ${got.slice(0, 12)}… matches, ${rate}`
      : `HTTP ${res.status}, ${bytes} bytes, SHA-256 ${got.slice(0, 12)}… expected ${
        want.slice(0, 12)
      }…`,
    data: { bytes, sha256: got },
  };
}

/** Send `payload` from a UDP socket and wait for the first reply (retrying twice, as resolvers do). */
function udpExchange(
  host: string,
  port: number,
  payload: Uint8Array,
  bindAddr?: string,
): Promise<Uint8Array | undefined> {
  const { promise, resolve } = Promise.withResolvers<Uint8Array | undefined>();
  const sock = dgram.createSocket("udp4");
  const timers: ReturnType<typeof setTimeout>[] = [];
  const finish = (v: Uint8Array | undefined) => {
    timers.forEach(clearTimeout);
    sock.close();
    resolve(v);
  };
  sock.on("message", (msg) => finish(new Uint8Array(msg)));
  sock.on("error", () => finish(undefined));
  sock.bind(0, bindAddr ?? "0.0.0.0", () => {
    for (let i = 0; i < 3; i++) {
      timers.push(setTimeout(() => sock.send(payload, port, host), (i * TIMEOUT_MS) / 3));
    }
    timers.push(setTimeout(() => finish(undefined), TIMEOUT_MS));
  });
  return promise;
}

async function dns(server: string, name: string, type?: string): Promise<ProbeResult> {
  const t0 = performance.now();
  const id = crypto.getRandomValues(new Uint16Array(1))[0];
  const query = encodeQuery(id, name, type === "AAAA" ? TYPE_AAAA : TYPE_A);
  const reply = await udpExchange(server, 53, query);
  const ms = performance.now() - t0;
  if (!reply) return { ok: false, ms, detail: `no answer from ${server} in ${TIMEOUT_MS} ms` };
  const m = decodeMessage(reply);
  const addresses = m.answers.flatMap((a) => a.address ? [a.address] : []);
  if (m.id !== id) return { ok: false, ms, detail: `answer id ${m.id} does not match query ${id}` };
  const ok = m.rcode === RCODE_NOERROR && addresses.length > 0;
  return {
    ok,
    ms,
    detail: ok ? `${name} → ${addresses.join(", ")}` : `${name}: rcode ${m.rcode}`,
    data: { rcode: m.rcode, addresses },
  };
}

async function udpEcho(host: string, port: number, src?: string): Promise<ProbeResult> {
  const t0 = performance.now();
  const payload = crypto.getRandomValues(new Uint8Array(512));
  const reply = await udpExchange(host, port, payload, src);
  const ms = performance.now() - t0;
  if (!reply) return { ok: false, ms, detail: `no echo in ${TIMEOUT_MS} ms` };
  const ok = reply.length === payload.length && reply.every((b, i) => b === payload[i]);
  return {
    ok,
    ms,
    detail: ok ? `${payload.length} bytes echoed` : "echo differs from what was sent",
  };
}

async function tcp(host: string, port: number): Promise<ProbeResult> {
  const t0 = performance.now();
  let outcome: "connected" | "refused" | "unreachable" | "timeout" | string;
  try {
    const conn = await Deno.connect({
      hostname: host,
      port,
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    conn.close();
    outcome = "connected";
  } catch (e) {
    if (e instanceof Deno.errors.ConnectionRefused) outcome = "refused";
    else if (/os error 113\b/.test((e as Error).message)) outcome = "unreachable";
    else if ((e as Error).name === "TimeoutError" || e instanceof Deno.errors.TimedOut) {
      outcome = "timeout";
    } else outcome = (e as Error).message;
  }
  return {
    ok: outcome === "connected",
    ms: performance.now() - t0,
    detail: outcome,
    data: { outcome },
  };
}

export function runProbe(args: string[]): Promise<ProbeResult> {
  const [kind, a, b, c] = args;
  switch (kind) {
    case "http":
      return http(a, b ?? "");
    case "blob":
      return blob(a);
    case "dns":
      return dns(a, b, c);
    case "udp":
      return udpEcho(a, Number(b), c);
    case "tcp":
      return tcp(a, Number(b));
    default:
      throw new Error(`unknown probe ${kind}`);
  }
}

if (import.meta.main) {
  let r: ProbeResult;
  try {
    r = await runProbe(Deno.args);
  } catch (e) {
    r = { ok: false, ms: 0, detail: (e as Error).message };
  }
  console.log(JSON.stringify(r));
  Deno.exit(0);
}
