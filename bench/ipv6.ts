/**
 * IPv6 through the tunnel (issue 14) in one dual-stack lab, pacing off: the same bulk download
 * from the vpc services over IPv4 and over IPv6 through one tunnel carrying both ranges on a
 * single stripe (so the two families share everything but the address family), alternating for
 * a few rounds, best of each; then how long `start --all-traffic` takes from launch to its "up"
 * line. Targets: IPv6 >= 90 % of IPv4; full tunnel up in <= 3 s.
 * Needs root. Prints a table and a JSON line.
 */
import { createLab, type Lab } from "../scripts/lab.ts";
import {
  clientEnv,
  ssmProxyArgv,
  startAgent,
  startEmulator,
  startTunnel,
} from "../scripts/lab/stack.ts";

export interface Ipv6Bench {
  sizeBytes: number;
  /** Each round's rate, MB/s, in the order run (v4 first in each round). */
  v4MBps: number[];
  v6MBps: number[];
  /** Best of the rounds, MB/s. */
  downloadV4MBps: number;
  downloadV6MBps: number;
  /** downloadV6MBps / downloadV4MBps. */
  v6OfV4: number;
  /** Each timed `start --all-traffic`, launch to "up" line, ms (after one untimed warm start). */
  fullTunnelUpRunsMs: number[];
  fullTunnelUpMs: number;
}

/** Fetch a blob inside the laptop namespace and report bytes and seconds (no curl needed). */
function fetchScript(url: string): string {
  return `const t=performance.now();const r=await fetch(${JSON.stringify(url)});let n=0;` +
    `for await (const c of r.body!) n+=c.length;` +
    `console.log(JSON.stringify({bytes:n,secs:(performance.now()-t)/1000}));`;
}

/** MB/s of one download of `size` bytes from `host` (an IPv4 or IPv6 address). */
async function download(lab: Lab, host: string, size: number): Promise<number> {
  const url = `http://${host.includes(":") ? `[${host}]` : host}/blob?size=${size}`;
  const r = await lab.exec("laptop", ["timeout", "120", Deno.execPath(), "eval", fetchScript(url)]);
  const line = r.stdout.trim().split("\n").at(-1);
  if (!r.success || !line) throw new Error(`download from ${host} failed: ${r.stderr}`);
  const { bytes, secs } = JSON.parse(line) as { bytes: number; secs: number };
  if (bytes !== size) throw new Error(`download from ${host} got ${bytes} of ${size} bytes`);
  return bytes / secs / 1e6;
}

/** `start --all-traffic` from launch to its "up" line (as bench/zero_config.ts), then SIGINT. */
async function timeFullTunnel(lab: Lab, name: string): Promise<number> {
  const t0 = performance.now();
  const proc = lab.spawn(
    "laptop",
    ssmProxyArgv(["start", "--target", "name:bastion", "--name", name, "--all-traffic"]),
    clientEnv(lab, "laptop"),
    `start ${name}`,
  );
  let ms: number;
  try {
    await proc.waitForLine(new RegExp(`tunnel "${name}" up:`), 30_000);
    ms = performance.now() - t0;
  } finally {
    proc.kill("SIGINT");
    await proc.status;
  }
  const st = await proc.status;
  if (st.code !== 0) throw new Error(`start ${name} exited ${st.code} on SIGINT:\n${proc.tail()}`);
  return ms;
}

export async function benchIpv6(size = 100e6, rounds = 3, starts = 3): Promise<Ipv6Bench> {
  const lab = await createLab({ laptops: 1, ipv6: true, internet: true, handleSignals: true });
  const v4MBps: number[] = [];
  const v6MBps: number[] = [];
  const fullTunnelUpRunsMs: number[] = [];
  try {
    await startEmulator(lab, { pacing: false });
    await startAgent(lab);
    const t = await startTunnel(lab, "laptop", {
      name: "dual",
      cidrs: [lab.vpcNetwork, lab.vpcNetwork6!],
      extra: ["--stripes", "1"],
    });
    try {
      // Warm up both families: 256 KiB left the first full round at half speed (JIT still cold
      // in the client, agent and emulator).
      const warm = Math.min(size, 10e6);
      await download(lab, lab.serviceAddress, warm);
      await download(lab, lab.serviceAddress6!, warm);
      for (let i = 0; i < rounds; i++) {
        v4MBps.push(await download(lab, lab.serviceAddress, size));
        v6MBps.push(await download(lab, lab.serviceAddress6!, size));
      }
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${t.proc.tail()}`);
    } finally {
      t.proc.kill("SIGINT");
      await t.proc.status;
    }
    await timeFullTunnel(lab, "warm"); // deno's code cache for the full-tunnel modules
    for (let i = 0; i < starts; i++) fullTunnelUpRunsMs.push(await timeFullTunnel(lab, `ft${i}`));
  } finally {
    await lab.destroy();
  }
  const downloadV4MBps = Math.max(...v4MBps);
  const downloadV6MBps = Math.max(...v6MBps);
  return {
    sizeBytes: size,
    v4MBps,
    v6MBps,
    downloadV4MBps,
    downloadV6MBps,
    v6OfV4: downloadV6MBps / downloadV4MBps,
    fullTunnelUpRunsMs,
    fullTunnelUpMs: Math.min(...fullTunnelUpRunsMs),
  };
}

export function ipv6Rows(r: Ipv6Bench): [string, string, string][] {
  return [
    [
      "tunnel download IPv4 / IPv6, 1 stripe, pacing off",
      `${r.downloadV4MBps.toFixed(1)} / ${r.downloadV6MBps.toFixed(1)} MB/s (${
        (r.v6OfV4 * 100).toFixed(0)
      } %)`,
      "IPv6 >= 90 %",
    ],
    [
      "full tunnel (--all-traffic, dual-stack): launch to up",
      `${r.fullTunnelUpMs.toFixed(0)} ms`,
      "<= 3000 ms",
    ],
  ];
}

if (import.meta.main) {
  const r = await benchIpv6();
  for (const row of ipv6Rows(r)) console.log(row.join("  |  "));
  console.log(JSON.stringify({ ipv6: r }));
}
