/** The pure rules for stripes: LOAD frames, liveness (when a silent stripe is dead), auto sizing. */
import assert from "node:assert/strict";
import { Liveness, livenessFor } from "../../src/tunnel/liveness.ts";
import { StripePlanner, type StripeSample } from "../../src/tunnel/striping.ts";
import { encodeLoad, FrameReader, FrameType } from "../../src/tunnel/wire.ts";

Deno.test("wire: LOAD round trip, clamped; old readers skip it as an unknown type", () => {
  const f = new FrameReader().push(encodeLoad({ busy: 1234, drops: 7 }));
  assert.deepEqual(f, [{ type: FrameType.Load, load: { busy: 1000, drops: 7 } }]);
  const bytes = encodeLoad({ busy: 500, drops: 0 });
  assert.equal(bytes[0], 7);
  assert.equal((bytes[2] << 8) | bytes[3], bytes.length - 4, "length-prefixed like every frame");
});

Deno.test("liveness: defaults dead within 8 s (keepalive 10 s), off with keepalive 0", () => {
  assert.deepEqual(livenessFor(10_000), {
    deadAfterMs: 8_000,
    probeAfterMs: 2_000,
    probeEveryMs: 1_000,
  });
  assert.equal(livenessFor(0), undefined);
  assert.ok(livenessFor(1_000)!.deadAfterMs >= 2_000, "never faster than 2 s");
});

Deno.test("liveness: quiet is fine; unanswered sends are probed, then dead", () => {
  const l = new Liveness({ probeAfterMs: 2_000, probeEveryMs: 1_000, deadAfterMs: 8_000 });
  assert.equal(l.tick(100_000), "ok", "nothing sent: a quiet stripe is not suspect");
  l.sent(0);
  l.sent(500);
  assert.equal(l.tick(1_000), "ok");
  assert.equal(l.tick(2_000), "probe", "waited since the first unanswered send");
  assert.equal(l.tick(2_500), "ok", "one probe per probeEveryMs");
  assert.equal(l.tick(3_000), "probe");
  l.heard();
  assert.equal(l.waitingMs(3_000), 0);
  l.sent(4_000);
  for (let t = 4_000; t < 12_000; t += 500) assert.notEqual(l.tick(t), "dead");
  assert.equal(l.tick(12_000), "dead");
});

const sample = (index: number, congested: boolean, idleMs = 0): StripeSample => ({
  index,
  congested,
  idleMs,
});

Deno.test("planner: grows only on sustained backlog with more busy flows than stripes", () => {
  const p = new StripePlanner({ auto: true, max: 8, growAfterMs: 1_000 });
  const live1 = [sample(0, true)];
  assert.equal(p.decide({ now: 0, live: live1, open: 1, busyFlows: 8 }), undefined);
  assert.equal(p.decide({ now: 500, live: [sample(0, false)], open: 1, busyFlows: 8 }), undefined);
  assert.equal(p.decide({ now: 1_200, live: live1, open: 1, busyFlows: 8 }), undefined, "a burst");
  const d = p.decide({ now: 2_200, live: live1, open: 1, busyFlows: 8 });
  assert.equal(d?.kind, "grow");
  assert.equal(d?.kind === "grow" && d.count, 7, "one stripe per busy flow");
  assert.match(d!.reason, /backed up for 1\.0 s with 8 busy flows/);
  // Bounded by max and busy flows.
  const two = [0, 1].map((i) => sample(i, true));
  p.decide({ now: 3_000, live: two, open: 2, busyFlows: 20 });
  const d2 = p.decide({ now: 4_000, live: two, open: 2, busyFlows: 20 });
  assert.equal(d2?.kind === "grow" && d2.count, 6);
  const four = [0, 1, 2, 3].map((i) => sample(i, true));
  p.decide({ now: 5_000, live: four, open: 4, busyFlows: 6 });
  const d4 = p.decide({ now: 6_000, live: four, open: 4, busyFlows: 6 });
  assert.equal(d4?.kind === "grow" && d4.count, 2);
  // One busy flow cannot use a second stripe.
  const one = new StripePlanner({ auto: true, max: 8, growAfterMs: 0 });
  assert.equal(one.decide({ now: 0, live: live1, open: 1, busyFlows: 1 }), undefined);
  // Fixed: never.
  const fixed = new StripePlanner({ auto: false, max: 4, growAfterMs: 0 });
  assert.equal(fixed.decide({ now: 0, live: live1, open: 1, busyFlows: 8 }), undefined);
  // Not while stripes are still opening.
  const opening = new StripePlanner({ auto: true, max: 8, growAfterMs: 0 });
  assert.equal(opening.decide({ now: 0, live: live1, open: 2, busyFlows: 8 }), undefined);
});

Deno.test("planner: retires the newest idle extra stripe, never stripe 0", () => {
  const p = new StripePlanner({ auto: true, max: 8, retireIdleMs: 60_000 });
  const live = [sample(0, false, 90_000), sample(1, false, 61_000), sample(2, false, 70_000)];
  const d = p.decide({ now: 0, live, open: 3, busyFlows: 0 });
  assert.deepEqual(d, { kind: "retire", index: 2, reason: "stripe 2 idle for 70 s" });
  const busy = [sample(0, false, 90_000), sample(1, false, 1_000)];
  assert.equal(p.decide({ now: 0, live: busy, open: 2, busyFlows: 1 }), undefined);
  assert.equal(
    p.decide({ now: 0, live: [sample(0, false, 90_000)], open: 1, busyFlows: 0 }),
    undefined,
  );
});

Deno.test("live line: the stripe count, auto, and why it last changed", async () => {
  const { stripesText } = await import("../../src/cli/live.ts");
  const base = {
    packetsOut: 0,
    bytesOut: 0,
    packetsIn: 0,
    bytesIn: 0,
    dropsOut: 0,
    dropsIn: 0,
    stripesUp: 4,
    rttMs: 0,
    reconnects: 0,
    upBps: 0,
    downBps: 0,
  };
  assert.equal(stripesText(base), "stripes 4");
  assert.equal(
    stripesText({
      ...base,
      stripesAuto: true,
      stripesMax: 8,
      stripesReason: "1 -> 4 stripes: every stripe backed up for 1.0 s with 8 busy flows",
    }),
    "stripes 4 (auto, up to 8; 1 -> 4 stripes: every stripe backed up for 1.0 s with 8 busy flows)",
  );
});
