/**
 * An in-process tunnel for tests (no root): real Port sessions through the emulator to an
 * in-process ssm-proxy-agent with fake tuns, two stripes unless told otherwise.
 */
import { startEmulator } from "../../src/emulator/server.ts";
import { PortSession } from "../../src/ssm/session.ts";
import * as ssm from "../../src/aws/ssm.ts";
import { Tunnel, type TunnelOptions } from "../../src/tunnel/client.ts";
import { awsEnv, withEnv } from "../support/aws_env.ts";
import { withAgent } from "../agent/harness.ts";
import { FakeTun } from "../agent/helpers.ts";
import type { Agent } from "../../agent/server.ts";

export interface Ctx {
  emu: Awaited<ReturnType<typeof startEmulator>>;
  agentTun: FakeTun;
  clientTun: FakeTun;
  agent: Agent;
  logs: string[];
}

export async function withTunnel(
  o: Partial<TunnelOptions> & {
    pacing?: boolean;
    /** The Port sessions' send window, as start sets it (default: PortSession's own). */
    window?: { messages: number; bytes: number };
  },
  fn: (t: Tunnel, ctx: Ctx) => Promise<void>,
): Promise<void> {
  const emu = await startEmulator({ port: 0, pacing: o.pacing ?? false });
  const logs: string[] = [];
  try {
    await withAgent({ config: { leaseGraceSeconds: 30 } }, async (agent, agentTun) => {
      await withEnv(awsEnv(emu.url), async () => {
        const aws = {};
        const port = agent.addr.port;
        const t = await Tunnel.connect({
          stripes: 2,
          agentPort: port,
          mtu: 1400,
          log: (l) => logs.push(l),
          openSession: async () =>
            PortSession.open({
              grant: await ssm.startSession(aws, {
                target: "i-0123456789abcdef0",
                documentName: "AWS-StartPortForwardingSession",
                parameters: { portNumber: [String(port)] },
              }),
              api: ssm.sessionApi(aws),
              ...(o.window ? { window: o.window.messages, windowBytes: o.window.bytes } : {}),
            }),
          ...o,
        });
        const clientTun = new FakeTun({ name: "c", mtu: 1400 } as never);
        const running = t.run(clientTun);
        try {
          await fn(t, { emu, agentTun, clientTun, agent, logs });
        } finally {
          await t.close();
          clientTun.close();
          await running;
        }
      });
    });
  } finally {
    await emu.close();
  }
}

export async function until(what: string, cond: () => boolean, ms = 10_000): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return Date.now() - t0;
}
