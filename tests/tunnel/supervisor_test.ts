/**
 * Stripe healing in-process (no root): real Port sessions through the emulator to an in-process
 * ssm-proxy-agent with a fake tun. A session that is gone is replaced by a new one that re-joins
 * with the same tunnel id and gets the same address; a known maximum duration makes the stripe
 * roll over before the end; a stripe that cannot heal ends the tunnel only after giveUpMs.
 */
import assert from "node:assert/strict";
import type { Tunnel } from "../../src/tunnel/client.ts";
import { defaultConfig } from "../../agent/config.ts";
import { startAgent } from "../../agent/server.ts";
import { FakeTun, udpPacket } from "../agent/helpers.ts";
import { until, withTunnel } from "./harness.ts";
import type { FakeTun as AgentTun } from "../agent/helpers.ts";

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false, fn });

/** Sends one UDP packet per stripe flow until the agent's tun saw one more than before. */
async function carries(t: Tunnel, clientTun: FakeTun, agentTun: AgentTun): Promise<void> {
  const before = agentTun.written.length;
  for (let port = 1000; port < 1016; port++) {
    clientTun.inject(udpPacket(t.welcome.address, "10.0.0.9", port, 7));
  }
  await until("packets at the agent", () => agentTun.written.length >= before + 16);
}

test("supervisor: a closed session is replaced; same tunnel id, same address", async () => {
  await withTunnel({}, async (t, { emu, agentTun, clientTun, agent }) => {
    const first = t.stripes.map((s) => s.session.sessionId);
    await carries(t, clientTun, agentTun);
    let ended = false;
    t.ended.then(() => (ended = true));
    emu.mgs.faults.channelClosed(first[0]);
    await until(
      "a new session on stripe 0",
      () => t.stripes[0].session.sessionId !== first[0] && t.health().state === "up",
    );
    assert.equal(t.stripes[1].session.sessionId, first[1], "stripe 1 was not touched");
    assert.equal(agent.registry.tunnels.length, 1, "the re-join made a second tunnel");
    assert.equal(agent.registry.byId(t.tunnelId)?.addressText, t.welcome.address);
    await carries(t, clientTun, agentTun);
    const h = t.health();
    assert.ok(h.reconnects >= 1, JSON.stringify(h));
    assert.match(h.lastError ?? "", /closed|terminated/);
    assert.ok(!ended, "the tunnel ended while healing");
  });
});

test("supervisor: every session closed at once; the tunnel heals rather than ends", async () => {
  await withTunnel({}, async (t, { emu, agentTun, clientTun }) => {
    const first = t.stripes.map((s) => s.session.sessionId);
    emu.mgs.faults.channelClosed();
    await until(
      "new sessions on both stripes",
      () =>
        t.stripes.every((s, i) => s.session.sessionId !== first[i]) &&
        t.health().state === "up",
    );
    await carries(t, clientTun, agentTun);
  });
});

test("supervisor: a known maximum duration rolls sessions over without healing", async () => {
  await withTunnel({ maxSessionMs: 3_000 }, async (t, { agentTun, clientTun }) => {
    const first = t.stripes.map((s) => s.session.sessionId);
    await until(
      "both stripes rolled over",
      () => t.stripes.every((s, i) => s.session.sessionId !== first[i]),
    );
    const h = t.health();
    assert.equal(h.state, "up");
    assert.equal(h.healingMs, 0, "a rollover is not a healing spell");
    assert.equal(h.maxSessionMs, 3_000);
    await carries(t, clientTun, agentTun);
  });
});

test("supervisor: with the agent gone the tunnel ends only after giveUpMs", async () => {
  await withTunnel({ giveUpMs: 1_500 }, async (t, { emu, agent }) => {
    await agent.close();
    emu.mgs.faults.channelClosed();
    const t0 = Date.now();
    await until("healing", () => t.health().state === "healing");
    const reason = await t.ended;
    assert.ok(Date.now() - t0 >= 1_000, `ended after ${Date.now() - t0} ms`);
    assert.match(reason, /gave up healing/);
  });
});

test("supervisor: recover() (the clock jumped) re-dials every session at once", async () => {
  await withTunnel({}, async (t, { agentTun, clientTun }) => {
    const sessions = t.stripes.map((s) => s.session.sessionId);
    const before = t.health().reconnects;
    t.recover("the clock jumped 600 s");
    await until(
      "both sessions resumed",
      () => t.health().reconnects >= before + 2 && t.health().state === "up",
    );
    assert.deepEqual(t.stripes.map((s) => s.session.sessionId), sessions, "resumed, not replaced");
    await carries(t, clientTun, agentTun);
  });
});

test("supervisor: an agent that lost the lease (new address) ends the tunnel with one clear reason", async () => {
  await withTunnel({}, async (t, { emu, agent }) => {
    const port = agent.addr.port;
    await agent.close();
    // A fresh agent on the same port without stateDir: a lease for someone else first, so the
    // tunnel id cannot get its old address back.
    const fresh = await startAgent({
      config: { ...defaultConfig(), listen: { hostname: "127.0.0.1", port }, nat: "off" },
      openTun: (c) => Promise.resolve(new FakeTun(c)),
      manageSysctls: false,
      log: () => {},
    });
    try {
      fresh.registry.p.pool.acquire("someone-else");
      emu.mgs.faults.channelClosed();
      const reason = await t.ended;
      assert.match(reason, /lost the tunnel's lease/);
    } finally {
      await fresh.close();
    }
  });
});
