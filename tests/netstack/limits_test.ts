import assert from "node:assert/strict";
import fc from "fast-check";
import { Deadlines, TokenBucket } from "../../src/netstack/limits.ts";

Deno.test("token bucket: a burst, then the rate; waitMs says when the next token comes", () => {
  const b = new TokenBucket(5, 3, 0);
  assert.equal([b.take(0), b.take(0), b.take(0), b.take(0)].filter(Boolean).length, 3);
  assert.equal(b.waitMs(0), 200);
  assert.equal(b.take(199), false);
  assert.equal(b.take(200), true);
  assert.equal(b.take(10_000), true, "refilled");
  assert.equal(b.waitMs(10_000), 0, "up to the burst");
  assert.equal([b.take(10_000), b.take(10_000), b.take(10_000)].filter(Boolean).length, 2);
});

Deno.test("deadlines: remembered until the deadline, and bounded", () => {
  const d = new Deadlines(3);
  d.put("a", 100, 0);
  assert.equal(d.live("a", 99), true);
  assert.equal(d.live("a", 100), false);
  for (const k of ["b", "c", "d", "e"]) d.put(k, 1000, 0);
  assert.equal(d.live("b", 1), false, "the oldest key made room");
  assert.equal(d.live("e", 1), true);
});

Deno.test("token bucket: starts full, refills continuously, never past the burst", () => {
  const r = new TokenBucket(10, 3);
  assert.deepEqual([r.take(0), r.take(0), r.take(0), r.take(0)], [true, true, true, false]);
  assert.equal(r.take(99), false);
  assert.equal(r.take(100), true); // 0.1 s at 10/s is one token
  assert.equal(r.take(150), false);
  assert.equal(r.take(200), true);
  const idle = [3_600_000, 3_600_000, 3_600_000, 3_600_000].map((t) => r.take(t));
  assert.deepEqual(idle, [true, true, true, false]);
  assert.equal(new TokenBucket(0, 0).take(0), false);
  assert.equal(new TokenBucket(Number.NaN, Number.NaN).take(0), false);
});

Deno.test("token bucket: a clock stepping back mints nothing", () => {
  const r = new TokenBucket(10, 1);
  assert.equal(r.take(10_000), true);
  assert.equal(r.take(0), false);
  assert.equal(r.take(10_000), false, "the time from 0 to 10 s was already counted");
  assert.equal(r.take(10_099), false);
  assert.equal(r.take(10_100), true);
});

Deno.test("token bucket (property): never more than burst + perSecond × elapsed", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2000 }),
      fc.integer({ min: 0, max: 50 }),
      fc.integer({ min: 0, max: 1e9 }),
      fc.array(fc.integer({ min: -500, max: 500 }), { maxLength: 300 }),
      (perSecond, burst, t0, steps) => {
        const r = new TokenBucket(perSecond, burst);
        let now = t0;
        let latest = t0;
        let allowed = 0;
        for (const dt of [0, ...steps]) {
          now += dt;
          latest = Math.max(latest, now);
          if (r.take(now)) allowed++;
          assert.ok(allowed <= burst + (perSecond * (latest - t0)) / 1000 + 1e-9);
        }
      },
    ),
  );
  // And it does refill: takes a token's time apart always pass.
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 20 }), (ps, b) => {
      const r = new TokenBucket(ps, b);
      const gap = Math.ceil(1000 / ps);
      for (let i = 0; i < 50; i++) assert.ok(r.take(i * gap), `take ${i} of ${ps}/s`);
    }),
  );
});
