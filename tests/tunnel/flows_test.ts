/**
 * Flow placement (flows.ts) and the flow hash (packet.ts), with source ports the kernel chose:
 * Linux's connect() picks even ephemeral ports, which the old hash (FNV-1a, no final mixing,
 * `% n`) sent to half the stripes or fewer.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { FlowTable } from "../../src/tunnel/flows.ts";
import { flowHash, pickStripe } from "../../src/tunnel/packet.ts";
import { udpPacket } from "../agent/helpers.ts";

/** A TCP header is not needed: flowHash reads ports at the same offsets for TCP and UDP. */
function tcpish(src: string, dst: string, sport: number, dport: number): Uint8Array {
  const p = udpPacket(src, dst, sport, dport);
  p[9] = 6;
  return p;
}

/** Source ports the kernel picks for `n` connections made the way curl or a browser makes them. */
async function kernelPorts(n: number): Promise<number[]> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of l) accepted.push(c);
  })();
  const conns: Deno.Conn[] = [];
  try {
    for (let i = 0; i < n; i++) {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port }));
    }
    return conns.map((c) => (c.localAddr as Deno.NetAddr).port);
  } finally {
    for (const c of conns) c.close();
    l.close();
    await accepting.catch(() => {});
    for (const c of accepted) c.close();
  }
}

Deno.test("flowHash: 8 flows with kernel-chosen ports spread over 8 stripes like random", async () => {
  // 32 groups of 8 connections made one after another, as 8 parallel downloads make them.
  const ports = await kernelPorts(256);
  const live = [0, 1, 2, 3, 4, 5, 6, 7];
  let distinct = 0;
  for (let w = 0; w < ports.length; w += 8) {
    const group = ports.slice(w, w + 8);
    distinct += new Set(group.map((p) =>
      pickStripe(tcpish("100.64.0.2", "10.99.0.10", p, 80), live)
    ))
      .size;
  }
  // A random choice uses 8 * (1 - (7/8)^8) = 5.25 of 8 stripes on average (the old hash: 4.0,
  // since even ports fix its low bit); 4.6 is 4 standard deviations below 5.25.
  const mean = distinct / (ports.length / 8);
  assert.ok(mean >= 4.6, `8 flows used ${mean.toFixed(2)} of 8 stripes on average`);
});

Deno.test("flowHash: the same in both directions; changes with any part of the flow", () => {
  fc.assert(
    fc.property(
      fc.ipV4(),
      fc.ipV4(),
      fc.integer({ min: 0, max: 65535 }),
      fc.integer({ min: 0, max: 65535 }),
      (a, b, pa, pb) => {
        assert.equal(flowHash(tcpish(a, b, pa, pb)), flowHash(tcpish(b, a, pb, pa)));
      },
    ),
  );
  const base = flowHash(tcpish("100.64.0.2", "10.99.0.10", 40000, 80));
  assert.notEqual(flowHash(tcpish("100.64.0.2", "10.99.0.10", 40002, 80)), base);
  assert.notEqual(flowHash(tcpish("100.64.0.2", "10.99.0.11", 40000, 80)), base);
  assert.notEqual(flowHash(udpPacket("100.64.0.2", "10.99.0.10", 40000, 80)), base);
});

Deno.test("flows: 8 flows with kernel-chosen ports land on 8 stripes, and stay", async () => {
  const ports = await kernelPorts(8);
  const t = new FlowTable();
  const live = [0, 1, 2, 3, 4, 5, 6, 7];
  const keys = ports.map((p) => flowHash(tcpish("100.64.0.2", "10.99.0.10", p, 80)));
  const first = keys.map((k) => t.place(k, live, 0));
  assert.deepEqual([...first].sort(), live, "one flow per stripe");
  // Later packets, and the same flows after an unrelated stripe came and went: same stripes.
  assert.deepEqual(keys.map((k) => t.place(k, live, 1000)), first);
  assert.deepEqual(keys.map((k) => t.place(k, [...live, 8], 2000)), first);
});

Deno.test("flows: a stripe that goes away moves only its flows, to the least loaded", () => {
  const t = new FlowTable();
  for (let k = 0; k < 6; k++) t.place(k, [0, 1, 2], 0);
  assert.deepEqual([0, 1, 2].map((s) => t.count(s)), [2, 2, 2]);
  const before = Array.from({ length: 6 }, (_, k) => t.stripeOf(k));
  const on1 = [0, 1, 2, 3, 4, 5].filter((k) => before[k] === 1);
  t.place(100, [0, 2], 1); // a new flow while stripe 1 is gone
  for (const k of on1) t.place(k, [0, 2], 2);
  for (let k = 0; k < 6; k++) {
    if (before[k] !== 1) assert.equal(t.stripeOf(k), before[k], `flow ${k} moved needlessly`);
    else assert.notEqual(t.stripeOf(k), 1);
  }
  assert.ok(Math.abs(t.count(0) - t.count(2)) <= 1, "moved flows were spread");
  // Back: flows stay where they are; a new flow goes to the empty stripe.
  assert.equal(t.place(0, [0, 1, 2], 3), t.stripeOf(0));
  assert.equal(t.place(200, [0, 1, 2], 3), 1);
});

Deno.test("flows: the agent answers on the stripe it last heard a flow on", () => {
  const t = new FlowTable();
  t.note(7, 3, 0);
  assert.equal(t.lookup(7, [0, 1, 3], 10), 3);
  t.note(7, 1, 20);
  assert.equal(t.lookup(7, [0, 1, 3], 30), 1);
  assert.equal(t.lookup(7, [0, 3], 30), undefined, "not live: the caller hashes");
  assert.equal(t.lookup(8, [0, 1, 3], 30), undefined, "never heard");
  assert.equal(t.lookup(7, [0, 1, 3], 30 + t.idleMs + 1), undefined, "expired");
});

Deno.test("flows: bounded; idle flows expire", () => {
  const t = new FlowTable({ maxFlows: 100, idleMs: 1000 });
  for (let k = 0; k < 1000; k++) t.place(k, [0, 1], k * 0.1);
  assert.ok(t.size <= 100, `${t.size} flows kept`);
  assert.equal(t.count(0) + t.count(1), t.size);
  t.sweep(10_000, true);
  assert.equal(t.size, 0);
  assert.equal(t.count(0) + t.count(1), 0);
});

Deno.test("flows: rebalance moves busy flows off a congested stripe, once per flow", () => {
  const t = new FlowTable({ busyMs: 1000, moveEveryMs: 10_000 });
  for (let k = 0; k < 8; k++) t.place(k, [0], 0); // all on the only stripe
  const moves = t.rebalance([0, 1], new Set([0]), 100, 8);
  assert.equal(moves.length, 4, JSON.stringify(moves));
  assert.deepEqual([t.count(0), t.count(1)], [4, 4]);
  assert.ok(moves.every((m) => m.from === 0 && m.to === 1));
  // Nothing more to even out; and moved flows do not move again soon.
  assert.deepEqual(t.rebalance([0, 1], new Set([0]), 200, 8), []);
  assert.deepEqual(t.rebalance([0, 1, 2], new Set([0, 1]), 300, 8).length, 2, "unmoved flows");
  assert.deepEqual(t.rebalance([0, 1], new Set([]), 400, 8), [], "nothing congested: stay");
  // Idle flows (not seen within busyMs) are not worth a reorder.
  const idle = new FlowTable({ busyMs: 1000 });
  for (let k = 0; k < 8; k++) idle.place(k, [0], 0);
  assert.deepEqual(idle.rebalance([0, 1], new Set([0]), 5000), []);
});
