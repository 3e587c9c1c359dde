import assert from "node:assert/strict";
import {
  ClockWatch,
  HealTracker,
  learnMaxDuration,
  rolloverAt,
  rolloverLeadMs,
} from "../../src/tunnel/heal.ts";
import { healSettings } from "../../src/tunnel/heal_options.ts";

Deno.test("HealTracker: lost → rejoined counts time healing and re-joins", () => {
  const t = new HealTracker(60_000);
  assert.equal(t.state, "up");
  assert.ok(t.lost(1_000, "channel_closed"));
  assert.ok(!t.lost(1_500, "again"), "a second loss while healing is not a new spell");
  assert.equal(t.state, "healing");
  assert.equal(t.healingMs(3_000), 2_000);
  t.failed("AccessDenied");
  assert.equal(t.lastError, "AccessDenied");
  t.rejoined(4_000);
  assert.equal(t.state, "up");
  assert.equal(t.rejoins, 1);
  assert.equal(t.healingMs(10_000), 3_000, "no time accrues while up");
  t.lost(20_000, "x");
  assert.equal(t.healingMs(21_000), 4_000);
});

Deno.test("HealTracker: gives up only after giveUpMs of healing", () => {
  const t = new HealTracker(10_000);
  assert.ok(!t.shouldGiveUp(0), "not healing");
  t.lost(0, "gone");
  assert.ok(!t.shouldGiveUp(9_999));
  assert.ok(t.shouldGiveUp(10_000));
  t.giveUp(10_000);
  assert.equal(t.state, "down");
  assert.equal(t.healingMs(50_000), 10_000);
});

Deno.test("learnMaxDuration: only from a max-duration channel_closed", () => {
  const msg =
    "session s-1 closed by AWS: Your session has reached the maximum session duration and has been terminated.";
  assert.equal(learnMaxDuration(msg, 3_600_000), 3_600_000);
  assert.equal(learnMaxDuration("session s-1 timed out or was terminated", 5_000), undefined);
  assert.equal(learnMaxDuration(msg, 0), undefined);
});

Deno.test("rollover: a tenth ahead, 2–60 s, at most half", () => {
  assert.equal(rolloverLeadMs(3_600_000), 60_000);
  assert.equal(rolloverLeadMs(300_000), 30_000);
  assert.equal(rolloverLeadMs(10_000), 2_000);
  assert.equal(rolloverLeadMs(3_000), 1_500);
  assert.equal(rolloverAt(1_000, undefined), undefined);
  assert.equal(rolloverAt(1_000, 3_600_000), 1_000 + 3_540_000);
});

Deno.test("ClockWatch: a wall-clock jump beyond monotonic time is reported", () => {
  const c = new ClockWatch(5_000);
  assert.equal(c.tick(1_000_000, 0), undefined, "first tick sets the baseline");
  assert.equal(c.tick(1_001_000, 1_000), undefined);
  assert.equal(c.tick(1_002_100, 2_000), undefined, "timer drift is not a jump");
  assert.equal(c.tick(1_603_100, 3_000), 600_000, "slept 10 minutes");
  assert.equal(c.tick(1_590_000, 4_000), -14_100, "clock set back");
});

Deno.test("healSettings: defaults, flags over environment, bad values refused", () => {
  assert.deepEqual(healSettings({}, () => undefined), { keepaliveMs: 10_000, giveUpMs: 600_000 });
  const env: Record<string, string> = {
    SSM_PROXY_KEEPALIVE_SECONDS: "0",
    SSM_PROXY_MAX_SESSION_SECONDS: "3600",
  };
  assert.deepEqual(healSettings({ giveUpSeconds: 30 }, (n) => env[n]), {
    keepaliveMs: 0,
    giveUpMs: 30_000,
    maxSessionMs: 3_600_000,
  });
  assert.equal(healSettings({ keepaliveSeconds: "5" }, (n) => env[n]).keepaliveMs, 5_000);
  assert.throws(() => healSettings({ giveUpSeconds: "soon" }, () => undefined), /--give-up/);
});

Deno.test("live line: healing state, reconnects and the last error", async () => {
  const { liveText } = await import("../../src/cli/live.ts");
  const base = {
    name: "x",
    pid: 1,
    startedAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
    target: { instanceId: "i-1" },
    interface: "ssmp0",
    address: "100.64.0.2",
    peer: "100.64.0.1",
    cidrs: [],
    routes: [],
    dns: { kind: "none" as const, items: [] },
    sessions: [],
    stats: {
      packetsOut: 0,
      bytesOut: 0,
      packetsIn: 0,
      bytesIn: 0,
      dropsOut: 0,
      dropsIn: 0,
      stripesUp: 0,
      rttMs: 0,
      reconnects: 2,
      upBps: 0,
      downBps: 0,
    },
    lastError: "session s-1 was closed by AWS",
    health: { reconnects: 2, healingMs: 3_000 },
  };
  const healing = liveText({ ...base, status: "healing" });
  assert.match(healing, /^healing /);
  assert.match(healing, /reconnects 2 \(healing 3s\)/);
  assert.match(healing, /last error: session s-1 was closed by AWS/);
  assert.doesNotMatch(liveText({ ...base, status: "up" }), /last error/, "not while up");
});

Deno.test("NetworkWatch: a changed local address is a network change; the tun is ignored", async () => {
  const { NetworkWatch } = await import("../../src/tunnel/heal.ts");
  const w = new NetworkWatch((n) => n.startsWith("ssmp"));
  const wifi = { name: "wlan0", family: "IPv4", address: "192.168.1.5" };
  const lo = { name: "lo", family: "IPv4", address: "127.0.0.1", internal: true };
  const tun = { name: "ssmp0", family: "IPv4", address: "100.64.0.2" };
  assert.equal(w.tick([lo, wifi]), false, "first tick sets the baseline");
  assert.equal(w.tick([wifi, lo, tun]), false, "tunnel interfaces do not count");
  assert.equal(w.tick([lo, { ...wifi, address: "10.0.0.7" }]), true, "new DHCP lease");
  assert.equal(w.tick([lo, { ...wifi, address: "10.0.0.7" }]), false);
  assert.equal(w.tick([lo]), true, "Wi-Fi gone");
});
