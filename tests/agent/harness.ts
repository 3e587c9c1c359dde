/** Runs the agent in-process on 127.0.0.1:0 with a FakeTun, no NAT and no sysctl writes. */
import { type AgentConfig, defaultConfig } from "../../agent/config.ts";
import { type Agent, type AgentOptions, startAgent } from "../../agent/server.ts";
import { formatIP } from "../../ffi/struct.ts";
import type { QueueLimits } from "../../agent/sendqueue.ts";
import { FakeTun } from "./helpers.ts";

export interface TestAgentOptions {
  config?: Partial<AgentConfig>;
  limits?: QueueLimits;
  helloTimeoutMs?: number;
  /** The agent's log lines (default: dropped). */
  log?: (line: string) => void;
  /** Default: recorded in FakeTun.addresses6 ("addr/len"). */
  addTunAddress6?: AgentOptions["addTunAddress6"];
  /** The agent's environment for STS endpoints (default: none, whatever this process has). */
  env?: AgentOptions["env"];
  sts?: AgentOptions["sts"];
  audit?: AgentOptions["audit"];
  loadParameters?: AgentOptions["loadParameters"];
}

export async function withAgent(
  opts: TestAgentOptions,
  fn: (agent: Agent, tun: FakeTun) => Promise<void>,
): Promise<void> {
  let tun: FakeTun | undefined;
  const config: AgentConfig = {
    ...defaultConfig(),
    listen: { hostname: "127.0.0.1", port: 0 },
    nat: "off",
    resolver: "10.0.0.2",
    ...opts.config,
  };
  const agent = await startAgent({
    config,
    openTun: (c) => Promise.resolve(tun = new FakeTun(c)),
    manageSysctls: false,
    addTunAddress6: opts.addTunAddress6 ?? ((t, address, len) => {
      (t as FakeTun).addresses6.push(`${formatIP(address)}/${len}`);
      return Promise.resolve();
    }),
    log: opts.log ?? (() => {}),
    limits: opts.limits,
    helloTimeoutMs: opts.helloTimeoutMs,
    env: opts.env ?? {},
    sts: opts.sts,
    audit: opts.audit,
    loadParameters: opts.loadParameters,
  });
  try {
    await fn(agent, tun!);
  } finally {
    await agent.close();
  }
}
