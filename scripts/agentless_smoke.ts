/**
 * Agentless mode end to end through a REAL utun (macOS) or TUN (Linux), real routes and, on
 * macOS, a real /etc/resolver file. Everything AWS is the emulator on loopback, so no account is
 * needed. Prints PASS/FAIL per step (like scripts/macos_smoke.ts) and exits non-zero on any FAIL:
 *
 *   sudo deno task smoke:agentless          (macOS: sudo env "PATH=$PATH" deno task ...)
 *
 * What runs, all on 127.0.0.1 and all from this source tree:
 * - the "VPC" services in this process: scripts/lab/services.ts' HTTP handler (page, /blob with
 *   x-sha256) and its DNS responder over UDP and TCP answering web.lab.internal → 10.99.0.10;
 * - the emulator (`main.ts emulator --no-pacing`) with fixtures that make the emulated SSM agent
 *   dial 10.99.0.10:80 → the HTTP port and 127.0.0.53:53 (the instance's stub resolver) → the
 *   DNS port. The agent refuses the VPC resolver 10.99.0.2 itself (a reserved VPC address), so
 *   DNS also proves the client's fallback to the stub resolver;
 * - `ssm-proxy start --mode agentless --target name:bastion --cidr 10.99.0.0/24 --name smoke`
 *   (+ `--dns-domain lab.internal` on macOS, where /etc/resolver files work; Linux would need
 *   systemd-resolved, which a network namespace does not have), in the foreground so that its
 *   pid is ours to stop whatever happens, its log where `-d` puts it: <state dir>/smoke.log.
 *   If this machine's own network covers 10.99.0.10 (a CI LAN of 10.0.0.0/8), `--force` is
 *   added: the /24 is more specific, and the check it skips is tested elsewhere.
 *
 * Checks: status up; the route and interface; the page by IP (curl, else fetch); DNS for
 * web.lab.internal at 10.99.0.2 over UDP; the page by private name (macOS: the system resolver
 * through /etc/resolver; Linux: the name pinned with curl --resolve to the DNS answer); a 50 MB
 * /blob with its SHA-256; then `ssm-proxy stop smoke` and nothing left behind: no new interface,
 * no route for 10.99.0.0/24, no /etc/resolver/lab.internal, no state file.
 *
 * Cleanup always runs (stop the tunnel, kill the emulator), on failure, timeout and Ctrl-C too.
 * Destinations that are not mapped must never be used: the emulator would dial them for real,
 * through our own route, into our own tunnel.
 *
 * Environment (all optional): SSM_PROXY_STATE_DIR (default: a fresh temp dir; CI sets it to
 * find the tunnel's log), SMOKE_BLOB_MB (default 50), SMOKE_TIMEOUT_S (whole run, default 420),
 * SMOKE_HTTP=fetch (use fetch even where curl exists).
 */
import dgram from "node:dgram";
import { createHash } from "node:crypto";
import { blobSha256 } from "./lab/blob.ts";
import { decodeMessage, encodeQuery, type Message, RCODE_NXDOMAIN } from "./lab/dns.ts";
import {
  ipRouteLines,
  netstatLines,
  parseCidr,
  parseIfconfigList,
  parseIpLinkNames,
  parseIpRouteGet,
  parseRouteGet,
  scutilDomains,
} from "./lab/host_net.ts";
import { LabProcess } from "./lab/proc.ts";
import { dnsResponder, handle, PAGE_MARKER, tcpDns, udp } from "./lab/services.ts";
import { V8_FLAGS } from "../src/runtime.ts";
import { alive } from "../src/tunnel/state.ts";

const NAME = "smoke";
const CIDR = "10.99.0.0/24";
/** The default fixtures' instance: bastion in VPC 10.99.0.0/16. */
const TARGET = "name:bastion";
const WEB_IP = "10.99.0.10";
/** VPC base+2, what the product finds through EC2 and apps query. */
const VPC_RESOLVER = "10.99.0.2";
const DOMAIN = "lab.internal";
const WEB_NAME = `web.${DOMAIN}`;
const RESOLVER_FILE = `/etc/resolver/${DOMAIN}`;
const BLOB = Number(Deno.env.get("SMOKE_BLOB_MB") ?? "50") * (1 << 20);
const TIMEOUT_S = Number(Deno.env.get("SMOKE_TIMEOUT_S") ?? "420");
const MAIN = decodeURIComponent(new URL("../main.ts", import.meta.url).pathname);
const OS = Deno.build.os;
const MAC = OS === "darwin";

// macOS tools by absolute path: sudo may hand us a PATH without /sbin and /usr/sbin.
const T = MAC
  ? {
    ifconfig: "/sbin/ifconfig",
    route: "/sbin/route",
    netstat: "/usr/sbin/netstat",
    scutil: "/usr/sbin/scutil",
    dscacheutil: "/usr/bin/dscacheutil",
    curl: "/usr/bin/curl",
  }
  : { ip: "ip", curl: "curl" };

let failed = 0;
let passed = 0;
/** Set once the run is being torn down (timeout, signal): later step results mean nothing. */
let finishing = false;

// ---- output and process helpers ---------------------------------------------------------------

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function ensure(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what}: no result within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** One step: PASS/FAIL line; never throws. */
async function step(
  name: string,
  f: () => unknown | Promise<unknown>,
  timeoutMs = 60_000,
): Promise<boolean> {
  if (finishing) return false;
  try {
    const info = await withTimeout(Promise.resolve().then(f), timeoutMs, name);
    if (finishing) return false;
    passed++;
    console.log(`PASS ${name}${info === undefined ? "" : `: ${info}`}`);
    return true;
  } catch (e) {
    if (finishing) return false;
    failed++;
    console.log(`FAIL ${name}: ${errText(e)}`);
    return false;
  }
}

function skip(name: string, why: string): void {
  console.log(`SKIP ${name}: ${why}`);
}

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** Commands still running: a cleanup after a timeout or Ctrl-C kills them (a curl mid-blob). */
const running = new Set<Deno.ChildProcess>();

/** Run a command to completion, killed after `timeoutMs`. A missing program is code 127. */
async function run(
  cmd: string,
  args: string[],
  o: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Out> {
  const ms = o.timeoutMs ?? 30_000;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, {
      args,
      env: o.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(ms),
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return { code: 127, stdout: "", stderr: `${cmd}: not found` };
    }
    throw e;
  }
  running.add(child);
  let out: Deno.CommandOutput;
  try {
    out = await child.output();
  } finally {
    running.delete(child);
  }
  const dec = new TextDecoder();
  const r = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  if (out.signal) r.stderr += `\n(${cmd} ended by ${out.signal}; time limit ${ms / 1000} s)`;
  return r;
}

function both(r: Out): string {
  return `${r.stdout}${r.stderr}`.trim();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** Retry `f` until it returns a value (not undefined) or `ms` passes; the last error is kept. */
async function until<T>(ms: number, f: () => Promise<T | undefined>, every = 500): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (true) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(last ? errText(last) : `not within ${ms / 1000} s`);
    }
    await sleep(every);
  }
}

// ---- the machine's network state (OS tools, read only) ----------------------------------------

async function interfaces(): Promise<string[]> {
  const r = MAC ? await run(T.ifconfig!, ["-l"]) : await run(T.ip!, ["-o", "link", "show"]);
  ensure(r.code === 0, `listing interfaces: ${both(r)}`);
  return MAC ? parseIfconfigList(r.stdout) : parseIpLinkNames(r.stdout);
}

/** The IPv4 routing table as the OS prints it. */
async function routeTable(): Promise<string> {
  const r = MAC
    ? await run(T.netstat!, ["-rn", "-f", "inet"])
    : await run(T.ip!, ["-4", "route", "show", "table", "all"]);
  ensure(r.code === 0, `route table: ${both(r)}`);
  return r.stdout;
}

/**
 * Lines of the table inside our CIDR or naming `ifname`. BSD netstat abbreviates networks
 * (10.99.0.0/24 prints as "10.99/24"): host_net.ts reads both formats.
 */
function ourRoutes(table: string, ifname?: string): string[] {
  const cidr = parseCidr(CIDR);
  return MAC ? netstatLines(table, cidr, ifname) : ipRouteLines(table, cidr, ifname);
}

/** The kernel's route for `address`: its interface and gateway (none: nothing routes it). */
async function routeFor(address: string): Promise<{ interface?: string; gateway?: string }> {
  if (MAC) {
    const r = await run(T.route!, ["-n", "get", address]);
    return r.code === 0 ? parseRouteGet(r.stdout) : {};
  }
  const r = await run(T.ip!, ["-4", "route", "get", address]);
  return r.code === 0 ? parseIpRouteGet(r.stdout) : {};
}

async function routeInterface(address: string): Promise<string | undefined> {
  return (await routeFor(address)).interface;
}

/**
 * The interface of a network directly attached here (no gateway) that covers `address`, if any:
 * a CI machine whose LAN is, say, 10.0.0.0/8. `start` refuses such a CIDR unless --force.
 */
async function attachedNetwork(address: string): Promise<string | undefined> {
  const r = await routeFor(address);
  if (!r.interface || r.gateway) return undefined;
  return /^(lo|utun|ssmp)/.test(r.interface) ? undefined : r.interface;
}

async function scutilLists(domain: string): Promise<boolean> {
  const r = await run(T.scutil!, ["--dns"]);
  return r.code === 0 && scutilDomains(r.stdout).includes(domain);
}

// ---- HTTP and DNS clients ----------------------------------------------------------------------

let haveCurl = false;

/** GET `url` as text: curl (what users run), else fetch. `pin` = curl --resolve host:80:ip. */
async function getText(url: string, pin?: string): Promise<string> {
  if (haveCurl) {
    const args = ["-sS", "--fail", "--noproxy", "*", "--connect-timeout", "10", "-m", "30"];
    if (pin) args.push("--resolve", `${new URL(url).hostname}:80:${pin}`);
    const r = await run(T.curl, [...args, url], { timeoutMs: 40_000 });
    ensure(r.code === 0, `curl ${url} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }
  const target = pin ? url.replace(new URL(url).hostname, pin) : url;
  const res = await fetch(target, { signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  ensure(res.ok, `GET ${target}: HTTP ${res.status}`);
  return text;
}

/** GET a blob into a file (curl) or a hash (fetch): its size, SHA-256 and x-sha256 header. */
async function getBlob(
  url: string,
  dir: string,
): Promise<{ bytes: number; sha256: string; header?: string; ms: number }> {
  const t0 = performance.now();
  if (haveCurl) {
    const file = `${dir}/blob.bin`, headers = `${dir}/blob.headers`;
    const r = await run(T.curl, [
      "-sS",
      "--fail",
      "--noproxy",
      "*",
      "--connect-timeout",
      "10",
      "-m",
      "240",
      "-D",
      headers,
      "-o",
      file,
      url,
    ], { timeoutMs: 250_000 });
    ensure(r.code === 0, `curl ${url} exited ${r.code}: ${r.stderr.trim()}`);
    const ms = performance.now() - t0;
    const h = createHash("sha256");
    let bytes = 0;
    const f = await Deno.open(file); // its readable closes it at the end
    for await (const chunk of f.readable) {
      h.update(chunk);
      bytes += chunk.length;
    }
    const header = /^x-sha256:\s*([0-9a-f]+)\s*$/im.exec(await Deno.readTextFile(headers))?.[1];
    await Deno.remove(file).catch(() => {});
    return { bytes, sha256: h.digest("hex"), header, ms };
  }
  const res = await fetch(url, { signal: AbortSignal.timeout(240_000) });
  ensure(res.ok && res.body, `GET ${url}: HTTP ${res.status}`);
  const h = createHash("sha256");
  let bytes = 0;
  for await (const chunk of res.body) {
    h.update(chunk);
    bytes += chunk.length;
  }
  return {
    bytes,
    sha256: h.digest("hex"),
    header: res.headers.get("x-sha256") ?? undefined,
    ms: performance.now() - t0,
  };
}

/** One A query over UDP to server:port, retried; the decoded answer. */
async function dnsQuery(server: string, name: string, port = 53): Promise<Message> {
  const sock = dgram.createSocket("udp4");
  try {
    for (let attempt = 0; attempt < 4; attempt++) {
      const id = Math.floor(Math.random() * 0xffff);
      const got = new Promise<Message | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 3000);
        sock.on("message", (msg: Uint8Array) => {
          try {
            const m = decodeMessage(new Uint8Array(msg));
            if (m.id === id && m.response) {
              clearTimeout(timer);
              resolve(m);
            }
          } catch { /* not for us */ }
        });
      });
      await new Promise<void>((res, rej) =>
        sock.send(encodeQuery(id, name), port, server, (e: Error | null) => (e ? rej(e) : res()))
      );
      const m = await got;
      sock.removeAllListeners("message");
      if (m) return m;
    }
    throw new Error(`no answer from ${server}:${port} for ${name} (4 tries, 3 s each)`);
  } finally {
    sock.close();
  }
}

/** One A query as DNS over TCP (2-byte length prefix). */
async function dnsQueryTcp(server: string, port: number, name: string): Promise<Message> {
  using conn = await Deno.connect({ hostname: server, port });
  const q = encodeQuery(7, name);
  const framed = new Uint8Array(2 + q.length);
  framed.set([q.length >> 8, q.length & 0xff]);
  framed.set(q, 2);
  await conn.write(framed);
  let buf = new Uint8Array(0);
  const chunk = new Uint8Array(4096);
  while (buf.length < 2 || buf.length < 2 + ((buf[0] << 8) | buf[1])) {
    const n = await conn.read(chunk);
    if (n === null) throw new Error(`${server}:${port} closed before answering`);
    const next = new Uint8Array(buf.length + n);
    next.set(buf);
    next.set(chunk.subarray(0, n), buf.length);
    buf = next;
  }
  return decodeMessage(buf.subarray(2, 2 + ((buf[0] << 8) | buf[1])));
}

// ---- the product, from the source tree ---------------------------------------------------------

interface Status {
  name: string;
  pid: number;
  status: string;
  mode?: string;
  interface: string;
  routes: string[];
  dns: { kind: string; items: string[] };
  agentless?: { connections: number; dnsQueries: number; dnsUpstream?: string; sessions: number };
}

let clientEnv: Record<string, string> = {};

function ssmProxy(args: string[], timeoutMs = 60_000): Promise<Out> {
  return run(Deno.execPath(), ["run", "-A", `--v8-flags=${V8_FLAGS}`, MAIN, ...args], {
    env: clientEnv,
    timeoutMs,
  });
}

async function status(): Promise<Status | undefined> {
  const r = await ssmProxy(["status", NAME, "--json"], 30_000);
  try {
    return (JSON.parse(r.stdout) as { tunnels?: Status[] }).tunnels?.find((t) => t.name === NAME);
  } catch {
    return undefined;
  }
}

// ---- the run -----------------------------------------------------------------------------------

console.log(`ssm-proxy agentless smoke test (${Deno.build.target}, deno ${Deno.version.deno})`);
if (OS !== "darwin" && OS !== "linux") {
  console.log(`FAIL this smoke test runs on macOS and Linux, not ${OS}`);
  Deno.exit(1);
}
if (Deno.uid() !== 0) {
  console.log(
    `FAIL run as root: sudo ${
      MAC ? 'env "PATH=$PATH" ' : ""
    }deno task smoke:agentless (it creates an interface, routes${
      MAC ? " and /etc/resolver/" + DOMAIN : ""
    })`,
  );
  Deno.exit(1);
}

const work = await Deno.makeTempDir({ prefix: "ssm-proxy-agentless-smoke-" });
const stateDir = Deno.env.get("SSM_PROXY_STATE_DIR") || `${work}/state`;
/** The tunnel's log: where `start -d` would write it, so CI finds it in the same place. */
const tunnelLog = `${stateDir}/${NAME}.log`;
let emulator: LabProcess | undefined;
/** `ssm-proxy start` in the foreground: its pid is ours to stop whatever happens. */
let tunnel: LabProcess | undefined;
let cleaned: Promise<void> | undefined;

/**
 * Stop the tunnel if its process runs: `ssm-proxy stop`, then SIGTERM and SIGKILL, then
 * `ssm-proxy status` (as root it cleans up after a dead tunnel). Never throws.
 */
async function stopTunnelQuietly(): Promise<void> {
  if (!tunnel || tunnel.exited) return;
  const r = await ssmProxy(["stop", NAME], 30_000).catch((e) => ({
    code: -1,
    stdout: "",
    stderr: errText(e),
  }));
  if (r.code !== 0 && !/no tunnel named/.test(r.stderr)) {
    console.log(`cleanup: ssm-proxy stop ${NAME} exited ${r.code}: ${both(r)}`);
  }
  if (!(await Promise.race([tunnel.status.then(() => true), sleep(5000)]))) {
    console.log(`cleanup: the tunnel (pid ${tunnel.pid}) still runs: SIGTERM, then SIGKILL`);
    await tunnel.stop(10_000);
    await ssmProxy(["status"], 30_000).catch(() => {});
  }
}

/** Stop the tunnel and the emulator; idempotent, bounded in time, never throws. */
function cleanup(): Promise<void> {
  cleaned ??= (async () => {
    for (const c of running) {
      try {
        c.kill("SIGKILL");
      } catch { /* gone */ }
    }
    await stopTunnelQuietly();
    if (emulator && !emulator.exited) {
      try {
        emulator.kill("SIGTERM");
      } catch { /* gone */ }
      const done = await Promise.race([emulator.status.then(() => true), sleep(3000)]);
      if (!done) {
        try {
          emulator.kill("SIGKILL");
        } catch { /* gone */ }
      }
    }
  })();
  return cleaned;
}

async function printLogs(): Promise<void> {
  const log = await Deno.readTextFile(tunnelLog).catch(() => undefined);
  if (log !== undefined) {
    console.log(`---- tunnel log ${tunnelLog} (last 60 lines)`);
    console.log(log.trimEnd().split("\n").slice(-60).join("\n"));
  }
  if (tunnel?.output().trim()) {
    console.log("---- tunnel process output (last 30 lines)");
    console.log(tunnel.tail(30));
  }
  if (emulator) {
    console.log("---- emulator output (last 60 lines)");
    console.log(emulator.tail(60));
  }
  console.log("----");
}

async function finish(code: number): Promise<never> {
  finishing = true;
  await cleanup();
  if (failed) await printLogs();
  if (failed || code) console.log(`work dir kept for inspection: ${work}`);
  else await Deno.remove(work, { recursive: true }).catch(() => {});
  console.log(
    failed ? `${failed} step(s) FAILED, ${passed} passed` : `all steps PASSED (${passed})`,
  );
  Deno.exit(failed || code ? 1 : 0);
}

setTimeout(() => {
  failed++;
  console.log(`FAIL the whole run took longer than ${TIMEOUT_S} s (SMOKE_TIMEOUT_S)`);
  finish(1);
}, TIMEOUT_S * 1000);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(sig, () => {
    failed++;
    console.log(`FAIL interrupted (${sig})`);
    finish(130);
  });
}

let before: string[] = [];
/** Set when this machine's own network covers the "VPC" (then start needs --force). */
let lan: string | undefined;
const ready = await step(
  "preflight: tools, and nothing of ours left from an earlier run",
  async () => {
    const c = await run(T.curl, ["--version"]);
    haveCurl = c.code === 0 && Deno.env.get("SMOKE_HTTP") !== "fetch";
    before = await interfaces();
    const stale = ourRoutes(await routeTable());
    ensure(stale.length === 0, `a route for ${CIDR} exists already:\n${stale.join("\n")}`);
    const old = await Deno.readTextFile(`${stateDir}/${NAME}.json`).then(
      (t) => JSON.parse(t) as { pid: number },
      () => undefined,
    );
    ensure(
      !old || !alive(old.pid),
      `a tunnel "${NAME}" runs already (pid ${old?.pid}): SSM_PROXY_STATE_DIR=${stateDir} ssm-proxy stop ${NAME}`,
    );
    lan = await attachedNetwork(WEB_IP);
    if (MAC && await exists(RESOLVER_FILE)) {
      const text = await Deno.readTextFile(RESOLVER_FILE).catch(() => "");
      // A file of a dead ssm-proxy run is the product's to clean up; anything else is in the way.
      ensure(
        text.startsWith("# Added by ssm-proxy"),
        `${RESOLVER_FILE} exists and is not ssm-proxy's: remove it first`,
      );
    }
    return [
      haveCurl ? "curl" : "no curl: fetch instead",
      `${before.length} interfaces`,
      `state ${stateDir}`,
      ...(lan ? [`NOTE ${WEB_IP} is on ${lan}'s own network here: start gets --force`] : []),
    ].join("; ");
  },
);
if (!ready) await finish(1);

let httpPort = 0, dnsPort = 0;
const servicesUp = await step("services on 127.0.0.1: HTTP, DNS over UDP and TCP", async () => {
  // onListen given only to keep Deno.serve from printing its own line.
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handle);
  httpPort = http.addr.port;
  const reply = dnsResponder({ [WEB_NAME]: WEB_IP });
  dnsPort = tcpDns("127.0.0.1", 0, reply).addr.port;
  await udp("127.0.0.1", dnsPort, reply);
  const viaUdp = await dnsQuery("127.0.0.1", WEB_NAME, dnsPort);
  ensure(viaUdp.answers[0]?.address === WEB_IP, `UDP answer ${JSON.stringify(viaUdp.answers)}`);
  const viaTcp = await dnsQueryTcp("127.0.0.1", dnsPort, WEB_NAME);
  ensure(viaTcp.answers[0]?.address === WEB_IP, `TCP answer ${JSON.stringify(viaTcp.answers)}`);
  return `HTTP :${httpPort}, DNS :${dnsPort} (${WEB_NAME} → ${WEB_IP})`;
});

const emulatorUp = servicesUp && await step("emulator on 127.0.0.1 (no pacing)", async () => {
  const fixtures = `${work}/fixtures.yaml`;
  await Deno.writeTextFile(
    fixtures,
    [
      "# The default world (bastion in vpc 10.99.0.0/16), with the agent's dials sent home.",
      "destinations:",
      `  "${WEB_IP}:80": "127.0.0.1:${httpPort}"`,
      `  "127.0.0.53:53": "127.0.0.1:${dnsPort}"`,
      "",
    ].join("\n"),
  );
  emulator = new LabProcess(
    "emulator",
    [
      Deno.execPath(),
      "run",
      "-A",
      `--v8-flags=${V8_FLAGS}`,
      MAIN,
      "emulator",
      "--listen",
      "127.0.0.1:0",
      "--no-pacing",
      "--fixtures",
      fixtures,
    ],
    { NO_COLOR: "1" },
  );
  const m = await Promise.race([
    emulator.waitForLine(/emulator listening on (http:\/\/\S+)/, 60_000),
    emulator.status.then((s) => {
      throw new Error(`the emulator exited (${s.code}):\n${emulator!.tail()}`);
    }),
  ]);
  const url = m[1];
  clientEnv = {
    AWS_ENDPOINT_URL: url,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "AKIDSMOKE",
    AWS_SECRET_ACCESS_KEY: "smoke-secret",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_CONFIG_FILE: "/nonexistent/aws-config",
    AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/aws-credentials",
    AWS_PROFILE: "",
    SSM_PROXY_STATE_DIR: stateDir,
    NO_COLOR: "1",
  };
  return url;
}, 90_000);

let st: Status | undefined;
const startArgs = ["start", "--mode", "agentless", "--target", TARGET, "--cidr", CIDR];
startArgs.push("--name", NAME);
if (MAC) startArgs.push("--dns-domain", DOMAIN);
// The /24 is more specific than a LAN around it, so the tunnel still gets 10.99.0.x.
if (lan) startArgs.push("--force");
const up = emulatorUp &&
  await step(`ssm-proxy ${startArgs.join(" ")}: status --json up`, async () => {
    await Deno.mkdir(stateDir, { recursive: true });
    await Deno.remove(tunnelLog).catch(() => {});
    // In the foreground (what -d runs detached), its log where -d puts it.
    tunnel = new LabProcess(
      "tunnel",
      [Deno.execPath(), "run", "-A", `--v8-flags=${V8_FLAGS}`, MAIN, ...startArgs],
      { ...clientEnv, SSM_PROXY_LOG: tunnelLog },
    );
    const t0 = Date.now();
    while (true) {
      const s = await status();
      if (s?.status === "up") {
        st = s;
        break;
      }
      if (tunnel.exited) {
        const log = await Deno.readTextFile(tunnelLog).catch(() => "");
        throw new Error(
          `exited (${(await tunnel.status).code}) before up:\n${log.trim() || tunnel.tail()}`,
        );
      }
      if (Date.now() - t0 > 90_000) throw new Error(`not up after 90 s (status ${s?.status})`);
      await sleep(300);
    }
    return `after ${Date.now() - t0} ms`;
  }, 100_000);

if (up && st) {
  await step("status --json: agentless, its route and interface", () => {
    st = st!;
    ensure(st.pid === tunnel!.pid, `pid ${st.pid}, started ${tunnel!.pid}`);
    ensure(st.mode === "agentless", `mode ${st.mode}`);
    ensure(st.routes.includes(CIDR), `routes ${JSON.stringify(st.routes)}`);
    if (MAC) {
      ensure(st.interface.startsWith("utun"), `interface ${st.interface}`);
      ensure(
        st.dns.kind === "resolver-files" && st.dns.items.includes(RESOLVER_FILE),
        `dns ${JSON.stringify(st.dns)}`,
      );
    }
    return `${st.interface}, pid ${st.pid}, routes ${st.routes.join(" ")}`;
  });
}

const routed = up && st !== undefined && await step(
  `the kernel routes ${WEB_IP} and ${VPC_RESOLVER} to the tunnel's interface`,
  async () => {
    const ifs = await interfaces();
    ensure(ifs.includes(st!.interface), `${st!.interface} is not in ${ifs.join(" ")}`);
    for (const a of [WEB_IP, VPC_RESOLVER]) {
      const via = await routeInterface(a);
      ensure(via === st!.interface, `${a} goes via ${via ?? "nothing"}, not ${st!.interface}`);
    }
    const lines = ourRoutes(await routeTable(), st!.interface);
    return lines.map((l) => l.trim().replace(/\s+/g, " ")).join(" | ");
  },
);

if (routed) {
  await step(`HTTP page by IP: http://${WEB_IP}/`, async () => {
    const body = await getText(`http://${WEB_IP}/`);
    ensure(body.includes(PAGE_MARKER), `unexpected body: ${body.slice(0, 200)}`);
    return `${body.length} bytes`;
  });

  let answer: string | undefined;
  await step(`DNS: ${WEB_NAME} at the VPC resolver ${VPC_RESOLVER} (UDP)`, async () => {
    const m = await dnsQuery(VPC_RESOLVER, WEB_NAME);
    answer = m.answers.find((a) => a.address)?.address;
    ensure(
      m.rcode === 0 && answer === WEB_IP,
      `rcode ${m.rcode}, answers ${JSON.stringify(m.answers)}`,
    );
    const nx = await dnsQuery(VPC_RESOLVER, `missing.${DOMAIN}`);
    ensure(nx.rcode === RCODE_NXDOMAIN, `missing.${DOMAIN}: rcode ${nx.rcode}, want NXDOMAIN`);
    return `${answer}; missing.${DOMAIN} NXDOMAIN`;
  });

  if (MAC) {
    await step(`${RESOLVER_FILE} names ${VPC_RESOLVER}`, async () => {
      const text = await Deno.readTextFile(RESOLVER_FILE);
      ensure(text.startsWith("# Added by ssm-proxy"), "marker missing");
      ensure(new RegExp(`^nameserver ${VPC_RESOLVER}$`, "m").test(text), text);
    });
    await step(`configd took it: scutil --dns lists ${DOMAIN}`, async () => {
      const t0 = Date.now();
      await until(15_000, async () => (await scutilLists(DOMAIN)) || undefined);
      return `after ${Date.now() - t0} ms`;
    }, 20_000);
    await step(`HTTP page by private name (system resolver): http://${WEB_NAME}/`, async () => {
      const t0 = Date.now();
      const body = await until(30_000, async () => {
        const b = await getText(`http://${WEB_NAME}/`);
        return b.includes(PAGE_MARKER) ? b : undefined;
      }, 1000);
      const ds = await run(T.dscacheutil!, ["-q", "host", "-a", "name", WEB_NAME]);
      const ip = /ip_address:\s*(\S+)/.exec(ds.stdout)?.[1];
      return `${body.length} bytes after ${Date.now() - t0} ms; dscacheutil: ${ip ?? "(none)"}`;
    }, 45_000);
  } else if (answer) {
    await step(
      `HTTP page by private name (pinned to the DNS answer): http://${WEB_NAME}/`,
      async () => {
        const body = await getText(`http://${WEB_NAME}/`, answer);
        ensure(body.includes(PAGE_MARKER), `unexpected body: ${body.slice(0, 200)}`);
        return `${WEB_NAME} → ${answer}, ${body.length} bytes`;
      },
    );
  } else {
    skip(`HTTP page by private name`, "no DNS answer");
  }

  await step(`${BLOB / (1 << 20)} MB /blob, SHA-256 checked`, async () => {
    const want = blobSha256(BLOB);
    const b = await getBlob(`http://${WEB_IP}/blob?size=${BLOB}`, work);
    ensure(b.bytes === BLOB, `${b.bytes} bytes, want ${BLOB}`);
    ensure(b.header === want, `x-sha256 ${b.header}, want ${want}`);
    ensure(b.sha256 === want, `body SHA-256 ${b.sha256}, want ${want}`);
    const mbs = (BLOB / (1 << 20)) / (b.ms / 1000);
    return `${want.slice(0, 16)}…, ${(b.ms / 1000).toFixed(1)} s (${mbs.toFixed(1)} MB/s)`;
  }, 260_000);

  await step("status --json counts the connections and DNS queries", async () => {
    const s = await until(10_000, async () => {
      const x = await status();
      return x?.agentless && x.agentless.dnsQueries >= 1 ? x : undefined;
    }, 1000);
    const a = s.agentless!;
    return `${a.connections} open, ${a.sessions} sessions, ${a.dnsQueries} DNS queries via ${
      a.dnsUpstream ?? "?"
    }`;
  }, 20_000);
} else if (up) {
  skip("traffic checks", "the route is not in place");
}

// ---- stop, and nothing left behind -------------------------------------------------------------

if (up) {
  await step(`ssm-proxy stop ${NAME}`, async () => {
    const r = await ssmProxy(["stop", NAME], 40_000);
    ensure(r.code === 0, `exited ${r.code}: ${both(r)}`);
    const t = tunnel!;
    const code = await withTimeout(t.status, 15_000, "the tunnel's exit").then((s) => s.code);
    ensure(code === 0, `the tunnel exited ${code}`);
    const log = await Deno.readTextFile(tunnelLog).catch(() => "");
    const last = log.trim().split("\n").at(-1)?.replace(/^\S+ /, "");
    return `${r.stdout.trim()}; ${last}`;
  }, 50_000);
} else {
  // start failed: whatever it left is what the checks below must not find, after a stop.
  await stopTunnelQuietly();
}

if (emulatorUp) {
  await step("nothing left: no interface of ours", async () => {
    const after = await interfaces();
    const extra = after.filter((n) => !before.includes(n));
    if (st) ensure(!after.includes(st.interface), `${st.interface} still exists`);
    // Ours are the interface status named, and (Linux) any ssmpN; with no status, anything new.
    const ours = extra.filter((n) => !st || n === st.interface || n.startsWith("ssmp"));
    ensure(ours.length === 0, `new since the start: ${ours.join(" ")}`);
    const others = extra.filter((n) => !ours.includes(n));
    return `${st ? `${st.interface} gone` : "no new interface"}${
      others.length ? `; appeared meanwhile, not ours: ${others.join(" ")}` : ""
    }`;
  });
  await step(`nothing left: no route for ${CIDR}`, async () => {
    const lines = ourRoutes(await routeTable(), st?.interface);
    ensure(lines.length === 0, `still routed:\n${lines.join("\n")}`);
    const via = await routeInterface(WEB_IP);
    ensure(!st || via !== st.interface, `${WEB_IP} still goes via ${via}`);
  });
  if (MAC) {
    await step(`nothing left: no ${RESOLVER_FILE}, and configd forgot ${DOMAIN}`, async () => {
      ensure(!(await exists(RESOLVER_FILE)), `${RESOLVER_FILE} still exists`);
      await until(15_000, async () => (await scutilLists(DOMAIN)) ? undefined : true)
        .catch(() => {
          throw new Error(`scutil --dns still lists ${DOMAIN}`);
        });
    }, 20_000);
  }
  await step("nothing left: no state file, status lists no tunnel", async () => {
    const left: string[] = [];
    try {
      for await (const e of Deno.readDir(stateDir)) {
        if (e.name.startsWith(`${NAME}.json`)) left.push(e.name);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    ensure(left.length === 0, `left in ${stateDir}: ${left.join(" ")}`);
    const r = await ssmProxy(["status", "--json"], 30_000);
    const doc = JSON.parse(r.stdout) as { tunnels: unknown[] };
    ensure(doc.tunnels.length === 0, `status: ${r.stdout.trim()}`);
  });
}

await finish(0);
