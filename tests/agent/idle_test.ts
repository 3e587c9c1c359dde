/**
 * Idle stop. IdleStop's rules on a fake clock; then the real agent in-process (fake tun) with a
 * real command (`touch FILE`, run without a shell): it runs once the agent has been idle for
 * idleStopAfter, not while a tunnel is connected, once per idle spell, and again after a tunnel
 * came and went (a tunnel in its lease grace counts as idle). The negative checks wait twice
 * idleStopAfter: a slow machine can only make them less strict, never fail them.
 */
import assert from "node:assert/strict";
import { IdleStop } from "../../agent/idle.ts";
import { FrameType } from "../../src/tunnel/wire.ts";
import { withAgent } from "./harness.ts";
import { hello, waitFor, WireClient } from "./helpers.ts";

const exists = (path: string) => {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An IdleStop on a fake clock; check() is called by hand, so nothing depends on timers. */
function fakeIdle(afterMs: number, connected = 0) {
  let now = 0;
  const runs: number[] = [];
  const idle = new IdleStop({
    afterMs,
    command: ["stop"],
    log: () => {},
    now: () => now,
    run: () => {
      runs.push(now);
      return Promise.resolve(undefined);
    },
  }, connected);
  return { idle, runs, at: (t: number) => (now = t) };
}

Deno.test("IdleStop: counts from the start, once per idle spell", async () => {
  const { idle, runs, at } = fakeIdle(1000);
  at(999);
  assert.equal(idle.check(), false);
  at(1000);
  assert.equal(idle.check(), true);
  at(50_000);
  assert.equal(idle.check(), false, "not again while the same spell lasts");
  assert.deepEqual(runs, [1000]);
  await idle.close();
});

Deno.test("IdleStop: a connected tunnel stops the clock; the next spell starts when it goes", async () => {
  const { idle, runs, at } = fakeIdle(1000);
  at(500);
  idle.update(1);
  at(10_000);
  assert.equal(idle.check(), false, "ran while a tunnel was connected");
  assert.equal(idle.status().idleSince, null);
  idle.update(0); // idle from 10 s
  at(10_999);
  assert.equal(idle.check(), false);
  idle.update(0); // another "nothing connected" event does not restart the clock
  at(11_000);
  assert.equal(idle.check(), true);
  idle.update(2);
  idle.update(0); // a tunnel came and went: a new spell, so it may run again
  at(12_000);
  assert.equal(idle.check(), true);
  assert.deepEqual(runs, [11_000, 12_000]);
  assert.equal(idle.status().ranAt, new Date(12_000).toISOString());
  await idle.close();
});

Deno.test("IdleStop: connected at construction; closed means never", async () => {
  const { idle, runs, at } = fakeIdle(1000, 1);
  at(5000);
  assert.equal(idle.check(), false);
  idle.update(0);
  await idle.close();
  at(10_000);
  assert.equal(idle.check(), false);
  assert.deepEqual(runs, []);
});

Deno.test("idle stop: runs when idle, not while connected, once per idle spell", async () => {
  const dir = await Deno.makeTempDir();
  const marker = `${dir}/idle`;
  const log: string[] = [];
  const ran = () => log.filter((l) => l.includes("running the idle stop command")).length;
  try {
    await withAgent({
      config: { idleStopAfterMs: 1000, idleStopCommand: ["touch", marker], leaseGraceSeconds: 60 },
      log: (l) => log.push(l),
    }, async (agent) => {
      // Idle from the start: the command runs once idleStopAfter has passed.
      await waitFor(() => exists(marker), 10_000, "the idle stop command after start");
      assert.equal(ran(), 1);
      assert.match(
        log.join("\n"),
        /no tunnel connected for 1s; running the idle stop command: touch /,
      );
      assert.ok(agent.idleStop?.ranAt !== undefined);

      // Still idle: not again.
      await Deno.remove(marker);
      await sleep(2000);
      assert.equal(exists(marker), false, "ran a second time in the same idle spell");

      // A connected tunnel keeps it from running.
      const c = await WireClient.connect(agent.addr.port);
      await c.sendHello(hello());
      assert.equal((await c.next())?.type, FrameType.Welcome);
      assert.equal(agent.idleStop?.idleSince, undefined);
      await sleep(2000);
      assert.equal(exists(marker), false, "ran while a tunnel was connected");

      // The tunnel goes; its address stays leased for the grace period, but that is idle.
      await c.close();
      await waitFor(() => agent.registry.connectedCount === 0, 5000, "the stripe to leave");
      assert.equal(agent.registry.tunnels.length, 1, "the tunnel is in its lease grace");
      await waitFor(() => exists(marker), 10_000, "the idle stop command after the tunnel left");
      assert.equal(ran(), 2);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("idle stop: a failing command is logged and the agent keeps serving", async () => {
  const log: string[] = [];
  await withAgent({
    config: { idleStopAfterMs: 200, idleStopCommand: ["/nonexistent/stop-me", "now"] },
    log: (l) => log.push(l),
  }, async (agent) => {
    await waitFor(
      () => log.some((l) => l.includes("idle stop command failed")),
      10_000,
      "the failure to be logged",
    );
    assert.ok(
      log.includes("idle stop command failed: /nonexistent/stop-me: command not found"),
      log.join("\n"),
    );
    const c = await WireClient.connect(agent.addr.port);
    await c.sendHello(hello());
    assert.equal((await c.next())?.type, FrameType.Welcome, "still serving");
    await c.close();
  });
});

Deno.test("idle stop: off by default", async () => {
  await withAgent({}, (agent) => {
    assert.equal(agent.idleStop, undefined);
    return Promise.resolve();
  });
});
