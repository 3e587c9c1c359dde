/** `deno task bench`: every benchmark, a table for people and one JSON object for tools. */
import { type AgentlessBench, agentlessRows, benchAgentless } from "./agentless.ts";
import { benchForward, benchForwardSessions, forwardSessionsRows } from "./forward.ts";
import { benchInstall, installRows } from "./install.ts";
import { benchIpv6, type Ipv6Bench, ipv6Rows } from "./ipv6.ts";
import { benchPolicyCpu, type PolicyCpuBench, policyCpuRows } from "./policy_cpu.ts";
import { benchSpread, type SpreadBench, spreadRows } from "./spread.ts";
import { benchStartup } from "./startup.ts";
import { benchStripes, type StripesBench, stripesRows } from "./stripes.ts";
import { benchTunnel, type TunnelBench, tunnelRows } from "./tunnel.ts";
import { benchZeroConfig, type ZeroConfigBench, zeroConfigRows } from "./zero_config.ts";

const startup = await benchStartup();
const off = await benchForward(false, { up: 60e6, down: 100e6 });
const off16 = await benchForward(false, { up: 100e6, down: 1e6 }, 16384);
const on = await benchForward(true, { up: 3e6, down: 5e6 });
const sessions = await benchForwardSessions();
const install = await benchInstall();

// The tunnel and agentless mode need network namespaces, hence root.
const tunnel: TunnelBench[] = [];
let agentless: AgentlessBench | undefined;
let zeroConfig: ZeroConfigBench | undefined;
let stripes: StripesBench | undefined;
let spread: SpreadBench | undefined;
let ipv6: Ipv6Bench | undefined;
let policyCpu: PolicyCpuBench | undefined;
if (Deno.uid() === 0) {
  tunnel.push(await benchTunnel(false, 100e6), await benchTunnel(true, 3e6));
  stripes = await benchStripes();
  spread = await benchSpread();
  ipv6 = await benchIpv6();
  policyCpu = await benchPolicyCpu();
  agentless = await benchAgentless();
  zeroConfig = await benchZeroConfig();
} else {
  console.error(
    "bench: not root, skipping the tunnel and agentless benchmarks (they need network namespaces)",
  );
}

const rows: [string, string, string][] = [
  ["--help", `${startup.helpMs.toFixed(0)} ms`, "<= 100 ms"],
  ["--version", `${startup.versionMs.toFixed(0)} ms`, "<= 60 ms"],
  [
    "forward, pacing off, client->agent (1 KiB messages)",
    `${off.upMBps.toFixed(1)} MB/s`,
    ">= 40 MB/s",
  ],
  [
    "forward, pacing off, client->agent (16 KiB messages)",
    `${off16.upMBps.toFixed(1)} MB/s`,
    ">= 40 MB/s",
  ],
  ["forward, pacing off, agent->client", `${off.downMBps.toFixed(1)} MB/s`, ">= 40 MB/s"],
  ["forward, pacing on, client->agent", `${on.upMBps.toFixed(2)} MB/s`, ""],
  [
    "forward, pacing on, agent->client",
    `${on.downMBps.toFixed(2)} MB/s (${(on.downOfCeiling * 100).toFixed(1)} % of 1024 B/ms)`,
    ">= 90 %",
  ],
  ...forwardSessionsRows(sessions),
  ...installRows(install),
  ...tunnel.flatMap(tunnelRows),
  ...(stripes ? stripesRows(stripes) : []),
  ...(spread ? spreadRows(spread) : []),
  ...(ipv6 ? ipv6Rows(ipv6) : []),
  ...(policyCpu ? policyCpuRows(policyCpu) : []),
  ...(agentless ? agentlessRows(agentless) : []),
  ...(zeroConfig ? zeroConfigRows(zeroConfig) : []),
];
const w0 = Math.max(...rows.map((r) => r[0].length));
const w1 = Math.max(...rows.map((r) => r[1].length));
console.log(`${"benchmark".padEnd(w0)}  ${"result".padEnd(w1)}  target`);
for (const r of rows) console.log(`${r[0].padEnd(w0)}  ${r[1].padEnd(w1)}  ${r[2]}`);
console.log(
  JSON.stringify({
    startup,
    forward: { pacingOff: off, pacingOff16k: off16, pacingOn: on, sessions },
    install,
    ...(tunnel.length ? { tunnel } : {}),
    ...(stripes ? { stripes } : {}),
    ...(spread ? { spread } : {}),
    ...(ipv6 ? { ipv6 } : {}),
    ...(policyCpu ? { policyCpu } : {}),
    ...(agentless ? { agentless } : {}),
    ...(zeroConfig ? { zeroConfig } : {}),
  }),
);
