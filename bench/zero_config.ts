/**
 * `sudo ssm-proxy start --target name:bastion` and nothing else, in the namespace lab: time from
 * launch to the "up" line (routes and DNS discovered from the emulated VPC, resolv.conf
 * forwarder in place), with the agent and agentless. Target: <= 3 s. Median of N starts.
 */
import { createLab, type Lab } from "../scripts/lab.ts";
import {
  clientEnv,
  ssmProxy,
  ssmProxyArgv,
  startAgent,
  startEmulator,
} from "../scripts/lab/stack.ts";
import { addPeeredNetwork, zeroConfigWorld } from "../scripts/lab/zero_config.ts";

export interface ZeroConfigBench {
  agentMs: number;
  agentlessMs: number;
}

async function timeStart(lab: Lab, name: string): Promise<number> {
  const t0 = performance.now();
  const proc = lab.spawn(
    "laptop",
    ssmProxyArgv(["start", "--target", "name:bastion", "--name", name]),
    clientEnv(lab, "laptop"),
    `start ${name}`,
  );
  await proc.waitForLine(new RegExp(`tunnel "${name}" up:`), 30_000);
  const ms = performance.now() - t0;
  const stop = await ssmProxy(lab, "laptop", ["stop", name]);
  if (stop.code !== 0) throw new Error(`stop ${name}: ${stop.stderr}`);
  await proc.status;
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function run(agent: boolean, n: number): Promise<number> {
  const lab = await createLab({ laptops: 1, handleSignals: true });
  try {
    await startEmulator(lab, { fixtures: await zeroConfigWorld(lab) });
    if (agent) await startAgent(lab);
    await addPeeredNetwork(lab);
    await timeStart(lab, "warm"); // deno's code cache
    const times: number[] = [];
    for (let i = 0; i < n; i++) times.push(await timeStart(lab, `zc${i}`));
    return median(times);
  } finally {
    await lab.destroy();
  }
}

export async function benchZeroConfig(n = 3): Promise<ZeroConfigBench> {
  return { agentMs: await run(true, n), agentlessMs: await run(false, n) };
}

export function zeroConfigRows(r: ZeroConfigBench): [string, string, string][] {
  return [
    ["start with only --target, agent: launch to up", `${r.agentMs.toFixed(0)} ms`, "<= 3000 ms"],
    [
      "start with only --target, agentless: launch to up",
      `${r.agentlessMs.toFixed(0)} ms`,
      "<= 3000 ms",
    ],
  ];
}

if (import.meta.main) {
  const r = await benchZeroConfig();
  for (const row of zeroConfigRows(r)) console.log(row.join("  |  "));
  console.log(JSON.stringify({ zeroConfig: r }));
}
