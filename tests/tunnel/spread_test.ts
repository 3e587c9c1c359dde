/** Spread placement, pure: stripe keys, each flow's instance, where auto striping grows. */
import assert from "node:assert/strict";
import { FlowTable } from "../../src/tunnel/flows.ts";
import {
  bySlot,
  growSlot,
  indexOf,
  InstanceAffinity,
  type Member,
  slotOf,
  stripeKey,
} from "../../src/tunnel/spread.ts";

function member(slot: number, max: number): Member {
  return {
    slot,
    label: `i-${slot}`,
    hello: {} as Member["hello"],
    welcome: {} as Member["welcome"],
    address: slot,
    max,
  };
}

Deno.test("spread: stripe keys round-trip and group by instance", () => {
  for (const slot of [0, 1, 5]) {
    for (const i of [0, 3, 15]) {
      const k = stripeKey(slot, i);
      assert.deepEqual([slotOf(k), indexOf(k)], [slot, i]);
    }
  }
  assert.equal(stripeKey(0, 3), 3, "one instance: the key is the index");
  const live = [0, 1, 32, 33, 34];
  assert.deepEqual([...bySlot(live)], [[0, [0, 1]], [1, [32, 33, 34]]]);
});

/** Place `key` the way the tunnel does: within its instance while it has live stripes. */
function place(t: FlowTable, a: InstanceAffinity, key: number, live: number[], now: number) {
  const i = t.place(key, a.candidates(key, live, bySlot(live)), now)!;
  a.note(key, slotOf(i), now);
  return i;
}

Deno.test("spread: 8 flows over 2 instances x 4 stripes use every stripe, 4 per instance", () => {
  const t = new FlowTable();
  const a = new InstanceAffinity();
  const live = [0, 1, 2, 3, 32, 33, 34, 35];
  const placed = Array.from({ length: 8 }, (_, f) => place(t, a, 1000 + f, live, 0));
  assert.deepEqual([...placed].sort((x, y) => x - y), live);
  assert.equal(placed.filter((k) => slotOf(k) === 1).length, 4);
});

Deno.test("spread: a flow keeps its instance when its stripe dies or it idles past the flow table", () => {
  const t = new FlowTable({ idleMs: 1_000 });
  const a = new InstanceAffinity({ idleMs: 3600_000 });
  const live = [0, 1, 32, 33];
  const keys = [1, 2, 3, 4];
  const first = keys.map((k) => place(t, a, k, live, 0));
  const onB = keys.filter((_, n) => slotOf(first[n]) === 1);
  assert.equal(onB.length, 2);
  // Stripe 32 dies: its flow moves to 33 (same instance), even though instance 0 is emptier.
  const k32 = keys[first.indexOf(32)];
  t.forgetStripe(32);
  assert.equal(place(t, a, k32, [0, 1, 33], 10), 33);
  // Idle past the flow table (not past the affinity): back on instance 1, on its least-loaded.
  const later = 5_000;
  for (const k of onB) assert.equal(slotOf(place(t, a, k, live, later)), 1);
});

Deno.test("spread: losing an instance moves its flows to the others; they stay there after it heals", () => {
  const t = new FlowTable();
  const a = new InstanceAffinity();
  const all = [0, 1, 32, 33];
  const keys = Array.from({ length: 8 }, (_, n) => 500 + n);
  const first = keys.map((k) => place(t, a, k, all, 0));
  const lost = keys.filter((_, n) => slotOf(first[n]) === 1);
  assert.equal(lost.length, 4);
  // Instance 1 gone: none of its stripes are live.
  for (const k of lost) assert.equal(slotOf(place(t, a, k, [0, 1], 100)), 0);
  for (const k of lost) assert.equal(a.slotOf(k), 0);
  // Instance 1 healed: the moved flows stay (moving again would break them a second time)...
  for (const k of lost) assert.equal(slotOf(place(t, a, k, all, 200)), 0);
  // ...and new flows go to its empty stripes.
  assert.equal(slotOf(place(t, a, 9001, all, 200)), 1);
  assert.equal(slotOf(place(t, a, 9002, all, 200)), 1);
});

Deno.test("spread: the affinity table forgets idle flows and stays bounded", () => {
  const a = new InstanceAffinity({ idleMs: 1_000, maxFlows: 3 });
  a.note(1, 0, 0);
  a.note(2, 1, 0);
  a.note(3, 1, 0);
  a.note(4, 0, 0);
  assert.equal(a.size, 3);
  assert.equal(a.slotOf(1), undefined, "the oldest went");
  a.sweep(5_000, true);
  assert.equal(a.size, 0);
});

Deno.test("spread: auto grows on the instance with the fewest stripes, skipping lost ones", () => {
  const ms = [member(0, 4), member(1, 4)];
  // Instance 0 has 2 open, instance 1 has 1: grow on 1, at its first free index.
  assert.deepEqual(growSlot(ms, new Set([0, 1, 32]), new Set([0, 1, 32])), { slot: 1, index: 1 });
  // Even: the lower slot.
  assert.deepEqual(growSlot(ms, new Set([0, 32]), new Set([0, 32])), { slot: 0, index: 1 });
  // Instance 1 lost (no live stripe): grow on 0 though it has more.
  assert.deepEqual(growSlot(ms, new Set([0, 1, 32]), new Set([0, 1])), { slot: 0, index: 2 });
  // A free index left by a retired stripe is reused.
  assert.deepEqual(growSlot(ms, new Set([0, 2, 3, 32, 33, 34]), new Set([0, 32])), {
    slot: 0,
    index: 1,
  });
  // Full everywhere.
  assert.equal(
    growSlot([member(0, 1), member(1, 1)], new Set([0, 32]), new Set([0, 32])),
    undefined,
  );
});
