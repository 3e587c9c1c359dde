/** Runs the agent in-process on 127.0.0.1:0 with a FakeTun, no NAT and no sysctl writes. */
import { type AgentConfig, defaultConfig } from "../../agent/config.ts";
import { type Agent, startAgent } from "../../agent/server.ts";
import type { QueueLimits } from "../../agent/sendqueue.ts";
import { FakeTun } from "./helpers.ts";

export interface TestAgentOptions {
  config?: Partial<AgentConfig>;
  limits?: QueueLimits;
  helloTimeoutMs?: number;
  /** The agent's log lines (default: dropped). */
  log?: (line: string) => void;
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
    log: opts.log ?? (() => {}),
    limits: opts.limits,
    helloTimeoutMs: opts.helloTimeoutMs,
  });
  try {
    await fn(agent, tun!);
  } finally {
    await agent.close();
  }
}
