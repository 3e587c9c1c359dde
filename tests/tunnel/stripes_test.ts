/**
 * Stripes in-process (no root): real Port sessions through the emulator to an in-process
 * ssm-proxy-agent with fake tuns. A stripe whose far end goes silent is declared dead, its flows
 * move at once and its session is replaced; `auto` grows under a sustained download backlog
 * (paced like the real agent), spreads the flows, and retires stripes once idle.
 */
import assert from "node:assert/strict";
import { udpPacket } from "../agent/helpers.ts";
import { until, withTunnel } from "./harness.ts";

/** The send window start gives each session (src/start/link.ts). */
const WINDOW = { messages: 512, bytes: 512 * 1024 };

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false, fn });

const VPC = "10.0.0.9";

test("stripes: a silently dead stripe is declared dead; its flows move; a new session", async () => {
  const liveness = { probeAfterMs: 300, probeEveryMs: 200, deadAfterMs: 1_500 };
  await withTunnel(
    { liveness, pingMs: 60_000, window: WINDOW },
    async (t, { emu, agentTun, clientTun, logs }) => {
      const me = t.welcome.address;
      const flows = Array.from({ length: 8 }, (_, i) => udpPacket(me, VPC, 2000 + i, 7));
      clientTun.inject(...flows);
      await until("the flows at the agent", () => agentTun.written.length >= 8);
      const on0 = flows.filter((p) => t.stripeOf(p) === 0);
      assert.equal(on0.length, 4, "8 flows over 2 stripes: 4 each");
      const dead = t.stripes[0].session.sessionId;
      // The session stays open but nothing gets through either way: the agent side is gone.
      emu.mgs.faults.stall(60_000, dead);
      const t0 = Date.now();
      const before = agentTun.written.length;
      // Keep the dead stripe's flows talking, as TCP would retransmit.
      const talk = setInterval(() => clientTun.inject(...on0), 100);
      try {
        const ms = await until(
          "the dead stripe's flows at the agent again",
          () => agentTun.written.length >= before + 4,
        );
        assert.ok(ms < 4_000, `flows moved after ${ms} ms`);
        assert.ok(on0.every((p) => t.stripeOf(p) === 1), "they moved to the live stripe");
        await until(
          "a new session on stripe 0",
          () => t.stripes[0].session.sessionId !== dead && t.health().state === "up",
        );
      } finally {
        clearInterval(talk);
      }
      assert.ok(Date.now() - t0 < 10_000);
      assert.ok(logs.some((l) => /no answer on stripe 0/.test(l)), logs.join("\n"));
      // New flows use the healed stripe again.
      const fresh = Array.from({ length: 4 }, (_, i) => udpPacket(me, VPC, 3000 + i, 7));
      clientTun.inject(...fresh);
      await until("fresh flows placed", () => fresh.every((p) => t.stripeOf(p) !== undefined));
      assert.ok(fresh.some((p) => t.stripeOf(p) === 0), "the healed stripe takes new flows");
    },
  );
});

test("stripes: auto grows under a sustained paced download, spreads flows, then retires", async () => {
  await withTunnel(
    {
      stripes: "auto",
      maxStripes: 4,
      pacing: true,
      growAfterMs: 500,
      retireIdleMs: 2_000,
      window: WINDOW,
    },
    async (t, { agentTun, clientTun, logs }) => {
      assert.equal(t.stripes.length, 1, "auto starts with one stripe");
      const me = t.welcome.address;
      const up = Array.from({ length: 8 }, (_, i) => udpPacket(me, VPC, 4000 + i, 7));
      const down = Array.from(
        { length: 8 },
        (_, i) => udpPacket(VPC, me, 7, 4000 + i, new Uint8Array(1200)),
      );
      // 8 flows, 4 MB/s down in all (what 4 paced sessions carry), acked from the client.
      const pump = setInterval(() => {
        clientTun.inject(...up);
        for (let n = 0; n < 4; n++) agentTun.inject(...down);
      }, 10);
      try {
        await until("4 stripes", () => t.stats().stripesOpen === 4, 15_000);
        await until("flows on every stripe", () => {
          const used = new Set(up.map((p) => t.stripeOf(p)));
          return used.size === 4;
        }, 10_000);
      } finally {
        clearInterval(pump);
      }
      const st = t.stats();
      assert.equal(st.stripesAuto, true);
      assert.equal(st.stripesMax, 4);
      assert.match(st.stripesReason ?? "", /-> 4 stripes: every stripe backed up/);
      assert.ok((st.flowMoves ?? 0) > 0, "flows already running moved to the new stripes");
      await until("idle extra stripes retired", () => t.stats().stripesOpen === 1, 15_000);
      assert.match(t.stats().stripesReason ?? "", /idle for \d+ s/);
      assert.ok(logs.some((l) => /1 -> 4 stripes/.test(l)), logs.join("\n"));
      // Still carries traffic on the one left.
      const before = agentTun.written.length;
      clientTun.inject(...up);
      await until("traffic after retiring", () => agentTun.written.length >= before + 8);
    },
  );
});
