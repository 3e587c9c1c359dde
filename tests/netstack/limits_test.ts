import assert from "node:assert/strict";
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
