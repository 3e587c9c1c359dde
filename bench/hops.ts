/**
 * Where an idle ping's time goes in the lab (issue 13 item 4): tcpdump in the laptop and the
 * instance namespaces while marked pings cross the tunnel, then every place each echo was seen
 * (laptop tun, the client's WebSocket, the emulator→agent TCP, the agent's tun, the VPC veth, and
 * back) with the median time from the laptop's tun, and the step from the previous place. Also
 * the idle CPU of client, agent and emulator (none of them may spin).
 *
 *   deno run -A bench/hops.ts [--count 50] [--pacing] [--cpu-seconds 10]
 *
 * Needs root and tcpdump (a diagnostic, not part of `deno task bench`).
 */
import { parseArgs } from "node:util";
import { createLab, type Lab, type Role } from "../scripts/lab.ts";
import { startAgent, startEmulator, startTunnel } from "../scripts/lab/stack.ts";
import { type Sighting, sightings } from "./pcap.ts";

const PATTERN_HEX = "5a17c0dec0ffee0d15ea5e5ca1ab1e01";
const PATTERN = Uint8Array.from(PATTERN_HEX.match(/../g)!, (h) => parseInt(h, 16));

export interface Hop {
  /** role:interface:request|reply:icmp|tcp */
  where: string;
  /** Median time since the request left the laptop's tun, ms. */
  atMs: number;
  /** Median of the step from the previous place, per echo, ms. */
  stepMs: number;
  seen: number;
}

export interface HopsResult {
  pacing: boolean;
  pingMs: { min: number; median: number; avg: number; max: number };
  pingDirectMs: number;
  hops: Hop[];
  idleCpuPercent: Record<string, number>;
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function ifNames(lab: Lab, role: Role): Promise<Map<number, string>> {
  const r = await lab.exec(role, ["ip", "-o", "link", "show"]);
  const m = new Map<number, string>();
  for (const line of r.stdout.split("\n")) {
    const x = /^(\d+): ([^:@]+)/.exec(line);
    if (x) m.set(Number(x[1]), x[2]);
  }
  return m;
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in USER_HZ ticks
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

export async function idleCpu(
  pids: Record<string, number>,
  seconds: number,
): Promise<Record<string, number>> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)]));
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return Object.fromEntries(
    Object.entries(pids).map(([k, p]) => [k, (cpuSeconds(p) - before[k]) / seconds * 100]),
  );
}

async function ping(lab: Lab, role: Role, count: number, interval: string): Promise<number[]> {
  const r = await lab.exec(role, [
    "ping",
    "-c",
    String(count),
    "-i",
    interval,
    "-p",
    PATTERN_HEX,
    lab.serviceAddress,
  ]);
  const rtts = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (rtts.length === 0) throw new Error(`ping failed: ${r.stdout}${r.stderr}`);
  return rtts;
}

/** Order the places an echo was seen by their median time and compute per-echo steps. */
export function hopsFrom(all: { role: Role; names: Map<number, string>; s: Sighting }[]): Hop[] {
  const bySeq = new Map<number, Map<string, bigint>>();
  for (const { role, names, s } of all) {
    const dir = s.icmpType === 8 ? "request" : "reply";
    const port = s.carrier === "tcp" ? `:${s.sport}>${s.dport}` : "";
    const where = `${role}:${names.get(s.ifindex) ?? `if${s.ifindex}`}:${dir}:${s.carrier}${port}`;
    let m = bySeq.get(s.seq);
    if (!m) bySeq.set(s.seq, m = new Map());
    if (!m.has(where) || m.get(where)! > s.ns) m.set(where, s.ns);
  }
  // The origin: the request as the laptop's kernel hands it to the tun (the first sighting).
  const rel = new Map<string, number[]>();
  const perSeq: Map<string, number>[] = [];
  for (const m of bySeq.values()) {
    const t0 = [...m.values()].reduce((a, b) => (a < b ? a : b));
    const row = new Map<string, number>();
    for (const [w, t] of m) {
      const ms = Number(t - t0) / 1e6;
      row.set(w, ms);
      if (!rel.has(w)) rel.set(w, []);
      rel.get(w)!.push(ms);
    }
    perSeq.push(row);
  }
  const order = [...rel.entries()].map(([w, xs]) => ({ w, at: median(xs), n: xs.length }))
    .filter((x) => x.n >= bySeq.size / 2) // drop stray one-offs (resends, heartbeats)
    .sort((a, b) => a.at - b.at);
  return order.map((x, i) => {
    const prev = order[i - 1]?.w;
    const steps = prev === undefined
      ? [0]
      : perSeq.filter((r) => r.has(x.w) && r.has(prev)).map((r) => r.get(x.w)! - r.get(prev)!);
    return { where: x.w, atMs: x.at, stepMs: median(steps), seen: x.n };
  });
}

export async function measureHops(
  o: { pacing: boolean; count: number; cpuSeconds: number },
): Promise<HopsResult> {
  const lab = await createLab({ laptops: 1, handleSignals: true });
  try {
    const emulator = await startEmulator(lab, { pacing: o.pacing });
    const agent = await startAgent(lab);
    const t = await startTunnel(lab, "laptop", { name: "hops", cidrs: [lab.vpcNetwork] });
    await ping(lab, "laptop", 10, "0.05"); // warm up the JIT on the whole path
    const pingDirectMs = median(await ping(lab, "instance", 10, "0.2"));
    const roles: Role[] = ["laptop", "instance"];
    const files = roles.map((r) => `${lab.dir}/hops-${r}.pcap`);
    const dumps = roles.map((r, i) =>
      lab.spawn(
        r,
        [
          "tcpdump",
          "-i",
          "any",
          "-n",
          "-U",
          "--time-stamp-precision=nano",
          "-w",
          files[i],
          "icmp or tcp",
        ],
        {},
        `tcpdump ${r}`,
      )
    );
    await Promise.all(dumps.map((d) => d.waitForLine(/listening on/, 10_000)));
    const rtts = await ping(lab, "laptop", o.count, "0.2");
    for (const d of dumps) d.kill("SIGINT");
    await Promise.all(dumps.map((d) => d.status));
    const all: { role: Role; names: Map<number, string>; s: Sighting }[] = [];
    for (const [i, role] of roles.entries()) {
      const names = await ifNames(lab, role);
      for (const s of sightings(await Deno.readFile(files[i]), PATTERN)) {
        all.push({ role, names, s });
      }
    }
    const idleCpuPercent = o.cpuSeconds > 0
      ? await idleCpu({
        client: t.status.pid,
        agent: denoPid(agent.pid),
        emulator: denoPid(emulator.pid),
      }, o.cpuSeconds)
      : {};
    return {
      pacing: o.pacing,
      pingMs: {
        min: Math.min(...rtts),
        median: median(rtts),
        avg: rtts.reduce((a, b) => a + b, 0) / rtts.length,
        max: Math.max(...rtts),
      },
      pingDirectMs,
      hops: hopsFrom(all),
      idleCpuPercent,
    };
  } finally {
    await lab.destroy();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      count: { type: "string", default: "50" },
      pacing: { type: "boolean", default: false },
      "cpu-seconds": { type: "string", default: "10" },
    },
  });
  const r = await measureHops({
    pacing: values.pacing,
    count: Number(values.count),
    cpuSeconds: Number(values["cpu-seconds"]),
  });
  const p = r.pingMs;
  console.log(
    `ping through the tunnel (pacing ${
      r.pacing ? "on" : "off"
    }): min ${p.min} / median ${p.median}` +
      ` / avg ${p.avg.toFixed(3)} / max ${p.max} ms; direct ${r.pingDirectMs} ms`,
  );
  for (const h of r.hops) {
    console.log(
      `${h.atMs.toFixed(3).padStart(8)} ms  +${
        h.stepMs.toFixed(3).padStart(7)
      }  ${h.where} (${h.seen})`,
    );
  }
  for (const [k, v] of Object.entries(r.idleCpuPercent)) {
    console.log(`idle CPU ${k}: ${v.toFixed(2)} %`);
  }
  console.log(JSON.stringify({ hops: r }));
}
