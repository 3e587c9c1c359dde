/**
 * Agentless mode (DESIGN §9) in the namespace lab: nothing on the instance but the emulated SSM
 * agent, `ssm-proxy start --mode agentless` in the laptop terminating TCP on its tun, each
 * connection an smux stream of a remote-host Port session pooled per destination.
 *
 * - throughput of one TCP connection, down and up, pacing off and on; with pacing on the
 *   ceiling is measured the way `forward` gets it (one forward session, same lab, same sizes);
 * - connect time and time to first byte: a new destination (StartSession, WebSocket, handshake,
 *   grace), a pooled one, and an already-open `ssm-proxy forward` listener to the same service;
 * - RSS of the `start` process before and with 1,000 idle connections open;
 * - the netstack alone against the real kernel (tests/netstack/kernel_lab.ts, no Session Manager).
 *
 * Needs root. Prints a table and a JSON line.
 */
import { createLab, type Lab, type LabProcess } from "../scripts/lab.ts";
import { must, run } from "../scripts/lab/proc.ts";
import {
  clientEnv,
  REPO,
  ssmProxyArgv,
  startEmulator,
  startTunnel,
  tunnelStatus,
} from "../scripts/lab/stack.ts";

const PEER = new URL("./agentless_peer.ts", import.meta.url).pathname;
/** Service ports in the vpc: source, sink, ping, hold; then NEW_DESTS more ping ports. */
const BASE = 9100;
const SOURCE = BASE;
const SINK = BASE + 1;
const PING = BASE + 2;
const HOLD = BASE + 3;
const NEW_DESTS = 20;
/** The real agent's ceiling: 1024 bytes per message, one message per ms (as bench/forward.ts). */
const PACED_CEILING = 1024 * 1000;
const TRIES = 20;
const HELD = 1000;

export interface Throughput {
  downloadMBps: number;
  uploadMBps: number;
}

export interface Latency {
  tries: number;
  /** Medians, ms. */
  forwardConnectMs: number;
  forwardTtfbMs: number;
  pooledConnectMs: number;
  pooledTtfbMs: number;
  /** pooled agentless minus forward (time to first byte, medians). */
  pooledMinusForwardMs: number;
  newTries?: number;
  newConnectMs?: number;
  newTtfbMs?: number;
}

export interface AgentlessBench {
  pacingOff: Throughput & {
    latency: Latency;
    /** `ssm-proxy forward` in the same lab, same sizes: what one session carries by itself. */
    forwardDownloadMBps: number;
    forwardUploadMBps: number;
  };
  pacingOn: Throughput & {
    latency: Latency;
    /** One forward session's paced throughput, the same sizes, the same lab: the ceiling. */
    forwardDownloadMBps: number;
    forwardUploadMBps: number;
    downOfCeiling: number;
    upOfCeiling: number;
  };
  idle: {
    connections: number;
    /** Connections and sessions as `status --json` reported them while held. */
    statusConnections: number;
    sessions: number;
    /** Opening them, 100 at a time; connects that took >= 900 ms (a SYN resent by the kernel). */
    openMs: number;
    maxConnectMs: number;
    slowConnects: number;
    /** RSS once the tunnel is up (no traffic yet), just before opening them, with them open. */
    rssUpMB: number;
    rssBeforeMB: number;
    rssIdleMB: number;
    rssPeakMB: number;
  };
  netstackAlone: Throughput;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function rssMB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Run one agentless_peer.ts client command in the laptop and parse its JSON line. */
async function peer<T>(lab: Lab, args: string[]): Promise<T> {
  const r = await lab.exec("laptop", [Deno.execPath(), "run", "-A", PEER, ...args]);
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  if (!r.success || !line) {
    throw new Error(`agentless_peer ${args.join(" ")} failed: ${r.stderr.trim().slice(-500)}`);
  }
  return JSON.parse(line) as T;
}

const down = (lab: Lab, host: string, port: number, size: number) =>
  peer<{ mbps: number }>(lab, ["download", host, String(port), String(size)]).then((r) => r.mbps);
const up = (lab: Lab, host: string, port: number, size: number) =>
  peer<{ mbps: number }>(lab, ["upload", host, String(port), String(size)]).then((r) => r.mbps);

interface Stage {
  lab: Lab;
  svc: string;
  /** The `ssm-proxy start` process (its own pid: `ip netns exec` execs it). */
  pid: number;
  /** Its RSS once up, before any traffic. */
  rssUpMB: number;
}

/**
 * A lab with the emulator (no agent), the vpc services, and an agentless tunnel up, for the
 * length of `fn`. On failure the emulator's and the tunnel's last lines are printed.
 */
async function withStage<T>(pacing: boolean, fn: (s: Stage) => Promise<T>): Promise<T> {
  const lab = await createLab({ laptops: 1, handleSignals: true });
  const procs: LabProcess[] = [];
  try {
    const svc = lab.serviceAddress;
    const services = lab.spawn(
      "vpc",
      [Deno.execPath(), "run", "-A", PEER, "serve", svc, String(BASE), String(NEW_DESTS)],
      {},
      "bench services",
    );
    const [, emulator] = await Promise.all([
      services.waitForLine(/^ready$/, 20_000),
      startEmulator(lab, { pacing }),
    ]);
    procs.push(emulator);
    const t = await startTunnel(lab, "laptop", {
      name: "bench",
      cidrs: [lab.vpcNetwork],
      extra: ["--mode", "agentless"],
    });
    procs.push(t.proc);
    return await fn({ lab, svc, pid: t.status.pid, rssUpMB: rssMB(t.status.pid) });
  } catch (e) {
    for (const p of procs) console.error(`--- ${p.label} (last lines)\n${p.tail(30)}`);
    const st = await tunnelStatus(lab, "laptop", "bench").catch(() => undefined);
    if (st) console.error(`--- status --json\n${JSON.stringify(st)}`);
    throw e;
  } finally {
    await lab.destroy();
  }
}

/** `ssm-proxy forward` in the laptop to svc:port; resolves with its local port. */
async function forward(lab: Lab, svc: string, port: number): Promise<number> {
  const p = lab.spawn(
    "laptop",
    ssmProxyArgv([
      "forward",
      "--target",
      "name:bastion",
      "--remote-host",
      svc,
      "--remote-port",
      String(port),
    ]),
    clientEnv(lab, "laptop"),
    `forward ${port}`,
  );
  const [, local] = await p.waitForLine(/^Local port: (\d+)/, 30_000);
  return Number(local);
}

/**
 * Forward and pooled agentless tries interleaved (so drift hits both alike), after one warm-up
 * each; then, if asked, one try on each of `fresh` ports nobody has connected to yet.
 */
async function measureLatency(
  lab: Lab,
  svc: string,
  fwdPort: number,
  fresh: number,
): Promise<Latency> {
  type Try = { connectMs: number; ttfbMs: number };
  const f = `127.0.0.1:${fwdPort}`;
  const a = `${svc}:${PING}`;
  const targets = [f, a];
  for (let i = 0; i < TRIES; i++) targets.push(f, a);
  const tries = (await peer<Try[]>(lab, ["latency", ...targets])).slice(2);
  const fw = tries.filter((_, i) => i % 2 === 0);
  const al = tries.filter((_, i) => i % 2 === 1);
  const out: Latency = {
    tries: TRIES,
    forwardConnectMs: median(fw.map((t) => t.connectMs)),
    forwardTtfbMs: median(fw.map((t) => t.ttfbMs)),
    pooledConnectMs: median(al.map((t) => t.connectMs)),
    pooledTtfbMs: median(al.map((t) => t.ttfbMs)),
    pooledMinusForwardMs: 0,
  };
  out.pooledMinusForwardMs = out.pooledTtfbMs - out.forwardTtfbMs;
  if (fresh > 0) {
    const ports = Array.from({ length: fresh }, (_, i) => `${svc}:${BASE + 10 + i}`);
    const n = await peer<Try[]>(lab, ["latency", ...ports]);
    out.newTries = n.length;
    out.newConnectMs = median(n.map((t) => t.connectMs));
    out.newTtfbMs = median(n.map((t) => t.ttfbMs));
  }
  return out;
}

/** 1,000 connections to a service that keeps them open; RSS of `start` before and with them. */
async function idleConnections(s: Stage): Promise<AgentlessBench["idle"]> {
  const { lab, svc, pid, rssUpMB } = s;
  const rssBeforeMB = rssMB(pid);
  let rssPeakMB = rssBeforeMB;
  const sampler = setInterval(() => rssPeakMB = Math.max(rssPeakMB, rssMB(pid)), 100);
  const holder = lab.spawn(
    "laptop",
    [Deno.execPath(), "run", "-A", PEER, "hold", svc, String(HOLD), String(HELD)],
    {},
    "hold",
  );
  try {
    const [line] = await holder.waitForLine(/^\{"opened".*\}$/, 90_000);
    const held = JSON.parse(line) as {
      opened: number;
      ms: number;
      maxConnectMs: number;
      slowConnects: number;
    };
    await sleep(2500); // settle, and let the state file (written each second) catch up
    const st = await tunnelStatus(lab, "laptop", "bench");
    const rssIdleMB = rssMB(pid);
    rssPeakMB = Math.max(rssPeakMB, rssIdleMB);
    return {
      connections: held.opened,
      statusConnections: st?.agentless?.connections ?? -1,
      sessions: st?.sessions.length ?? -1,
      openMs: held.ms,
      maxConnectMs: held.maxConnectMs,
      slowConnects: held.slowConnects,
      rssUpMB,
      rssBeforeMB,
      rssIdleMB,
      rssPeakMB,
    };
  } finally {
    clearInterval(sampler);
    await holder.stop();
  }
}

/** tests/netstack/kernel_lab.ts download/upload in a throwaway namespace: no Session Manager. */
export async function benchNetstackAlone(size = 100 << 20): Promise<Throughput> {
  const ns = `ssmp-nsbench-${Deno.pid}`;
  await must(["ip", "netns", "add", ns]);
  try {
    await must(["ip", "-n", ns, "link", "set", "lo", "up"]);
    const r = await run([
      "ip",
      "netns",
      "exec",
      ns,
      Deno.execPath(),
      "run",
      "-A",
      `${REPO}tests/netstack/kernel_lab.ts`,
      "download",
      "upload",
    ], { LAB_SIZE: String(size) });
    const lines = r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) =>
      JSON.parse(l) as { name: string; ok: boolean; detail?: string; data?: { mbps: number } }
    );
    const mbps = (name: string) => {
      const l = lines.find((x) => x.name === name);
      if (!l?.ok || !l.data) {
        throw new Error(`kernel_lab ${name}: ${l?.detail ?? r.stderr.trim().slice(-500)}`);
      }
      return l.data.mbps;
    };
    return { downloadMBps: mbps("download"), uploadMBps: mbps("upload") };
  } finally {
    await run(["ip", "netns", "del", ns]);
  }
}

export async function benchAgentless(
  o: { offSize?: number; onSize?: number } = {},
): Promise<AgentlessBench> {
  const offSize = o.offSize ?? 100e6;
  const onSize = o.onSize ?? 3e6;
  const netstackAlone = await benchNetstackAlone();

  // Pacing off: idle connections first (the RSS of a fresh process), then latency, then bulk.
  const [pacingOff, idle] = await withStage(false, async (s) => {
    await down(s.lab, s.svc, SOURCE, 1 << 20); // warm up JIT, windows and the source's session
    const idle = await idleConnections(s);
    const [fwdPing, fwdSource, fwdSink] = await Promise.all(
      [PING, SOURCE, SINK].map((p) => forward(s.lab, s.svc, p)),
    );
    const latency = await measureLatency(s.lab, s.svc, fwdPing, NEW_DESTS);
    await up(s.lab, s.svc, SINK, 1 << 20);
    await down(s.lab, "127.0.0.1", fwdSource, 1 << 20);
    await up(s.lab, "127.0.0.1", fwdSink, 1 << 20);
    const downloadMBps = await down(s.lab, s.svc, SOURCE, offSize);
    const uploadMBps = await up(s.lab, s.svc, SINK, offSize);
    const forwardDownloadMBps = await down(s.lab, "127.0.0.1", fwdSource, offSize);
    const forwardUploadMBps = await up(s.lab, "127.0.0.1", fwdSink, offSize);
    return [
      { downloadMBps, uploadMBps, forwardDownloadMBps, forwardUploadMBps, latency },
      idle,
    ] as const;
  });

  // Pacing on: the same transfers through one forward session give the ceiling.
  const pacingOn = await withStage(true, async (s) => {
    const [fwdPing, fwdSource, fwdSink] = await Promise.all(
      [PING, SOURCE, SINK].map((p) => forward(s.lab, s.svc, p)),
    );
    await down(s.lab, "127.0.0.1", fwdSource, 256 << 10);
    await down(s.lab, s.svc, SOURCE, 256 << 10);
    await up(s.lab, s.svc, SINK, 64 << 10);
    const forwardDownloadMBps = await down(s.lab, "127.0.0.1", fwdSource, onSize);
    const downloadMBps = await down(s.lab, s.svc, SOURCE, onSize);
    const forwardUploadMBps = await up(s.lab, "127.0.0.1", fwdSink, onSize);
    const uploadMBps = await up(s.lab, s.svc, SINK, onSize);
    return {
      downloadMBps,
      uploadMBps,
      forwardDownloadMBps,
      forwardUploadMBps,
      downOfCeiling: downloadMBps / forwardDownloadMBps,
      upOfCeiling: uploadMBps / forwardUploadMBps,
      latency: await measureLatency(s.lab, s.svc, fwdPing, 0),
    };
  });
  return { pacingOff, pacingOn, idle, netstackAlone };
}

const ms = (x: number | undefined) => `${(x ?? NaN).toFixed(2)} ms`;

export function agentlessRows(r: AgentlessBench): [string, string, string][] {
  const lat = (l: Latency, p: string): [string, string, string][] => [
    [
      `agentless connect, pooled destination, ${p}`,
      `${ms(l.pooledConnectMs)} (forward ${ms(l.forwardConnectMs)})`,
      "",
    ],
    [
      `agentless first byte, pooled destination, ${p}`,
      `${ms(l.pooledTtfbMs)} (forward ${ms(l.forwardTtfbMs)}, ${
        l.pooledMinusForwardMs >= 0 ? "+" : ""
      }${l.pooledMinusForwardMs.toFixed(2)} ms)`,
      "<= forward + 2 ms",
    ],
    ...(l.newTtfbMs === undefined ? [] : [[
      `agentless connect / first byte, new destination, ${p}`,
      `${ms(l.newConnectMs)} / ${ms(l.newTtfbMs)}`,
      "",
    ] as [string, string, string]]),
  ];
  const { pacingOff: off, pacingOn: on, idle, netstackAlone: alone } = r;
  return [
    ["netstack alone (kernel lab), download", `${alone.downloadMBps.toFixed(1)} MB/s`, ""],
    ["netstack alone (kernel lab), upload", `${alone.uploadMBps.toFixed(1)} MB/s`, ""],
    [
      "agentless TCP download, pacing off",
      `${off.downloadMBps.toFixed(1)} MB/s (forward ${off.forwardDownloadMBps.toFixed(1)} MB/s)`,
      ">= 30 MB/s",
    ],
    [
      "agentless TCP upload, pacing off",
      `${off.uploadMBps.toFixed(1)} MB/s (forward ${off.forwardUploadMBps.toFixed(1)} MB/s)`,
      ">= 30 MB/s",
    ],
    [
      "agentless TCP download, pacing on",
      `${on.downloadMBps.toFixed(2)} MB/s (${(on.downOfCeiling * 100).toFixed(1)} % of forward ${
        on.forwardDownloadMBps.toFixed(2)
      } MB/s; ${(on.downloadMBps * 1e6 / PACED_CEILING * 100).toFixed(1)} % of 1024 B/ms)`,
      ">= 90 %",
    ],
    [
      // The emulator paces what the agent sends, not what it receives: no ceiling here.
      "agentless TCP upload, pacing on (agent->client only is paced)",
      `${on.uploadMBps.toFixed(2)} MB/s (${(on.upOfCeiling * 100).toFixed(1)} % of forward ${
        on.forwardUploadMBps.toFixed(2)
      } MB/s)`,
      "",
    ],
    ...lat(off.latency, "pacing off"),
    ...lat(on.latency, "pacing on"),
    [
      `agentless client RSS, ${idle.connections} idle connections`,
      `${idle.rssIdleMB.toFixed(0)} MB (before ${idle.rssBeforeMB.toFixed(0)} MB, at start ${
        idle.rssUpMB.toFixed(0)
      } MB, peak ${idle.rssPeakMB.toFixed(0)} MB)`,
      "<= 150 MB",
    ],
    [
      `agentless opening ${idle.connections} connections, 100 at a time`,
      `${(idle.openMs / 1000).toFixed(1)} s (${idle.slowConnects} connects >= 900 ms, max ${
        idle.maxConnectMs.toFixed(0)
      } ms; ${idle.sessions} session(s) in the pool)`,
      "",
    ],
  ];
}

if (import.meta.main) {
  const r = await benchAgentless();
  const rows = agentlessRows(r);
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  console.log(`${"benchmark".padEnd(w0)}  ${"result".padEnd(w1)}  target`);
  for (const x of rows) console.log(`${x[0].padEnd(w0)}  ${x[1].padEnd(w1)}  ${x[2]}`);
  console.log(JSON.stringify({ agentless: r }));
}
