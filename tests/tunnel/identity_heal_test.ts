/**
 * A running tunnel whose agent now refuses the client's identity (issue 15): the refusal is
 * final, so the tunnel stops with that line and ExitCode.Auth instead of healing in a loop.
 * A stand-in agent (standin_agent.ts) over real Port sessions through the emulator.
 */
import assert from "node:assert/strict";
import { ExitCode, UserError } from "../../src/errors.ts";
import { serve } from "../../src/start/serve.ts";
import { identityProver } from "../../src/start/prover.ts";
import { IdentityRefused } from "../../src/tunnel/identity.ts";
import type { TunnelState } from "../../src/tunnel/state.ts";
import { encodeError, encodeWelcome, FrameType } from "../../src/tunnel/wire.ts";
import {
  baseWelcome,
  checkingAgent,
  JANE_ARN,
  sinkTun,
  standIn,
  TARGET,
  until,
  withWorld,
} from "./standin_agent.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false, fn });

function stateOf(name: string): TunnelState {
  const now = new Date().toISOString();
  return {
    name,
    pid: Deno.pid,
    startedAt: now,
    updatedAt: now,
    status: "up",
    mode: "agent",
    target: { instanceId: TARGET },
    interface: "fake0",
    address: baseWelcome.address,
    peer: baseWelcome.peer,
    cidrs: ["10.0.0.0/16"],
    routes: [],
    dns: { kind: "none", items: [] },
    sessions: [],
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `p`, or a failure naming `what` after `ms`: a tunnel that heals forever must not hang. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, no) => {
        timer = setTimeout(() => no(new Error(`${what} within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

test("identity heal: a re-handshake refused by the policy stops the tunnel with that line", async () => {
  // The first two HELLOs (both stripes) are let in; the policy then no longer allows Jane.
  const agent = checkingAgent({ allow: (_arn, n) => n <= 2 });
  const dir = await Deno.makeTempDir();
  try {
    await withWorld(
      async (connect) => {
        const t = await connect(agent.port, { stripes: 2, prover: identityProver({}) });
        const state = stateOf("idt");
        let undone = 0;
        const served = serve(
          state,
          t,
          sinkTun(),
          async () => void (undone++, await t.close()),
          { show() {}, clear() {} },
          new Promise<string>(() => {}),
        ).then(() => assert.fail("serve returned"), (e) => e);
        await until("the identity in the state", () => state.identity === JANE_ARN);
        const written = JSON.parse(await Deno.readTextFile(`${dir}/idt.json`)) as TunnelState;
        assert.equal(written.identity, JANE_ARN, "status reads the state file");
        // The agent drops stripe 0's connection; the new session's HELLO is refused.
        agent.peers[0].close();
        const e = await within(served, 10_000, "the tunnel did not stop");
        assert.ok(e instanceof UserError, String(e));
        assert.equal(e.exitCode, ExitCode.Auth);
        assert.match(
          e.message,
          new RegExp(
            `^tunnel "idt" went down: ssm-proxy-agent on ${TARGET} refused this client's IAM identity: ${JANE_ARN} is not allowed by this agent's policy; use credentials its policy allows .*; routes and interface removed$`,
          ),
        );
        assert.ok(!e.message.includes("\n"));
        assert.equal(undone, 1);
        assert.ok(t.failure instanceof IdentityRefused);
        // No healing loop: the one refused HELLO stays the last.
        await sleep(1_500);
        assert.equal(agent.hellos.length, 3, `HELLOs: ${agent.hellos.length}`);
      },
      undefined,
      { SSM_PROXY_STATE_DIR: dir },
    );
  } finally {
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
});

test("identity heal: a live stripe the agent refuses ends the tunnel, not heals it", async () => {
  const agent = standIn(async (peer) => {
    await peer.send(encodeWelcome(baseWelcome));
    for (let f = await peer.next(); f && f.type !== FrameType.Ping; f = await peer.next());
    await peer.send(encodeError({
      code: "identity-refused",
      message: "the policy was reloaded and no longer allows this identity",
    }));
    peer.close();
  });
  try {
    await withWorld(async (connect) => {
      const t = await connect(agent.port, { prover: identityProver({}) });
      const running = t.run(sinkTun());
      try {
        const reason = await within(t.ended, 10_000, "the tunnel did not end");
        assert.match(reason, /refused this client's IAM identity: the policy was reloaded/);
        assert.equal(t.failure?.exitCode, ExitCode.Auth);
        await sleep(1_000);
        assert.equal(agent.hellos.length, 1, "the refused stripe was healed");
      } finally {
        await t.close();
        await running;
      }
    });
  } finally {
    await agent.close();
  }
});
