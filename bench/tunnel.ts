/**
 * The tunnel in the namespace lab (DESIGN §7): TCP download throughput, ping RTT idle and under a
 * bulk transfer (bufferbloat), and RSS of client and agent idle (up, after a warm-up transfer) and
 * under load (peak during the transfers); pacing off and on.
 * Needs root. Prints a table and a JSON line.
 */
import { createLab, type Lab } from "../scripts/lab.ts";
import { startAgent, startEmulator, startTunnel } from "../scripts/lab/stack.ts";

export interface TunnelBench {
  pacing: boolean;
  downloadMBps: number;
  pingDirectMs: number;
  pingIdleMs: number;
  pingLoadedMs: number;
  /** Peak RSS during the transfers. */
  clientRssMB: number;
  agentRssMB: number;
  /** RSS once up and idle, after the warm-up transfer and the idle pings. */
  clientIdleRssMB: number;
  agentIdleRssMB: number;
}

/** Issue 13's memory targets, MB. */
export const RSS_TARGETS = { clientIdle: 80, clientLoaded: 100, agentLoaded: 80 };

/** Fetch a blob inside the laptop namespace and report MB/s (a Deno one-liner, no curl needed). */
function fetchScript(url: string): string {
  return `const t=performance.now();const r=await fetch(${JSON.stringify(url)});let n=0;` +
    `for await (const c of r.body!) n+=c.length;` +
    `console.log(JSON.stringify({bytes:n,secs:(performance.now()-t)/1000}));`;
}

async function download(lab: Lab, size: number): Promise<number> {
  const url = `http://${lab.serviceAddress}/blob?size=${size}`;
  const r = await lab.exec("laptop", [Deno.execPath(), "eval", fetchScript(url)]);
  const { bytes, secs } = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  if (bytes !== size) throw new Error(`download got ${bytes} of ${size} bytes: ${r.stderr}`);
  return bytes / secs / 1e6;
}

async function ping(lab: Lab, role: "laptop" | "instance", count: number): Promise<number> {
  const r = await lab.exec(role, [
    "ping",
    "-c",
    String(count),
    "-i",
    "0.2",
    "-q",
    lab.serviceAddress,
  ]);
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  if (!m) throw new Error(`ping failed: ${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

function rssMB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The deno process behind `ip netns exec`: the child of the given pid, or the pid itself. */
function denoPid(pid: number): number {
  try {
    const kids = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/);
    return kids[0] ? Number(kids[0]) : pid;
  } catch {
    return pid;
  }
}

export async function benchTunnel(pacing: boolean, size: number): Promise<TunnelBench> {
  const lab = await createLab({ laptops: 1, handleSignals: true });
  try {
    await startEmulator(lab, { pacing });
    const agent = await startAgent(lab);
    const t = await startTunnel(lab, "laptop", { name: "bench", cidrs: [lab.vpcNetwork] });
    await download(lab, 256 * 1024); // warm up JIT and windows
    const pingDirectMs = await ping(lab, "instance", 10);
    const pingIdleMs = await ping(lab, "laptop", 20);
    const clientIdleRssMB = rssMB(t.status.pid);
    const agentIdleRssMB = rssMB(denoPid(agent.pid));
    let clientRss = 0;
    let agentRss = 0;
    const sampler = setInterval(() => {
      clientRss = Math.max(clientRss, rssMB(t.status.pid));
      agentRss = Math.max(agentRss, rssMB(denoPid(agent.pid)));
    }, 100);
    const loaded = download(lab, size);
    const pingLoadedMs = await ping(lab, "laptop", 10);
    await loaded;
    const downloadMBps = await download(lab, size);
    clearInterval(sampler);
    return {
      pacing,
      downloadMBps,
      pingDirectMs,
      pingIdleMs,
      pingLoadedMs,
      clientRssMB: clientRss,
      agentRssMB: agentRss,
      clientIdleRssMB,
      agentIdleRssMB,
    };
  } finally {
    await lab.destroy();
  }
}

export function tunnelRows(r: TunnelBench): [string, string, string][] {
  const p = r.pacing ? "pacing on" : "pacing off";
  return [
    [
      `tunnel TCP download, 1 stripe, ${p}`,
      `${r.downloadMBps.toFixed(2)} MB/s`,
      r.pacing ? "" : ">= 50 MB/s",
    ],
    [
      `tunnel ping idle, ${p}`,
      `${r.pingIdleMs.toFixed(2)} ms (direct ${r.pingDirectMs.toFixed(3)} ms)`,
      r.pacing ? "" : "<= direct + 1 ms",
    ],
    [
      `tunnel ping under bulk transfer, ${p}`,
      `${r.pingLoadedMs.toFixed(1)} ms`,
      "<= idle + 100 ms",
    ],
    [
      `RSS idle, ${p}`,
      `client ${r.clientIdleRssMB.toFixed(0)} MB, agent ${r.agentIdleRssMB.toFixed(0)} MB`,
      `client <= ${RSS_TARGETS.clientIdle} MB`,
    ],
    [
      `RSS under load, ${p}`,
      `client ${r.clientRssMB.toFixed(0)} MB, agent ${r.agentRssMB.toFixed(0)} MB`,
      `<= ${RSS_TARGETS.clientLoaded} / ${RSS_TARGETS.agentLoaded} MB`,
    ],
  ];
}

if (import.meta.main) {
  const off = await benchTunnel(false, 100e6);
  const on = await benchTunnel(true, 3e6);
  for (const row of [...tunnelRows(off), ...tunnelRows(on)]) console.log(row.join("  |  "));
  console.log(JSON.stringify({ tunnel: { pacingOff: off, pacingOn: on } }));
}
