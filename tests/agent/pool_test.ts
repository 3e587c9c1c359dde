import assert from "node:assert/strict";
import { AddressPool } from "../../agent/pool.ts";
import { formatIpv4, parseCidr } from "../../agent/cidr.ts";

function pool(cidr: string, graceMs = 1000) {
  const clock = { t: 0 };
  const p = new AddressPool(parseCidr(cidr)!, graceMs, () => clock.t);
  return { p, clock };
}

Deno.test("pool: agent takes the first host, tunnels the next ones", () => {
  const { p } = pool("100.64.0.0/16");
  assert.deepEqual(formatIpv4(p.agentAddress), "100.64.0.1");
  assert.deepEqual(formatIpv4(p.acquire("a")!), "100.64.0.2");
  assert.deepEqual(formatIpv4(p.acquire("b")!), "100.64.0.3");
  assert.deepEqual(p.capacity, 65533);
});

Deno.test("pool: the same tunnel id gets the same address", () => {
  const { p } = pool("100.64.0.0/16");
  const a = p.acquire("a");
  p.acquire("b");
  assert.deepEqual(p.acquire("a"), a);
  assert.deepEqual(p.size, 2);
});

Deno.test("pool: an idle lease survives the grace period and is then freed", () => {
  const { p, clock } = pool("100.64.0.0/30", 120_000);
  const a = p.acquire("a")!;
  p.idle("a");
  clock.t = 119_999;
  assert.deepEqual(p.sweep(), []);
  assert.deepEqual(p.acquire("other"), undefined, "still held during grace");
  assert.deepEqual(p.acquire("a"), a, "healing client gets its address back");
  p.idle("a");
  clock.t += 120_000;
  assert.deepEqual(p.sweep(), ["a"]);
  assert.deepEqual(p.addressOf("a"), undefined);
  assert.deepEqual(p.acquire("other"), a, "freed address is reusable");
});

Deno.test("pool: re-acquiring cancels a pending release", () => {
  const { p, clock } = pool("100.64.0.0/24", 10);
  p.acquire("a");
  p.idle("a");
  p.acquire("a");
  clock.t = 1000;
  assert.deepEqual(p.sweep(), []);
});

Deno.test("pool: exhaustion returns undefined, and acquire sweeps expired leases first", () => {
  const { p, clock } = pool("100.64.0.0/29", 5); // .1 agent, .2–.6 tunnels
  for (const id of ["a", "b", "c", "d", "e"]) assert.notDeepEqual(p.acquire(id), undefined);
  assert.deepEqual(p.acquire("f"), undefined);
  p.idle("c");
  assert.deepEqual(p.acquire("f"), undefined, "grace not over");
  clock.t = 5;
  assert.deepEqual(formatIpv4(p.acquire("f")!), "100.64.0.4");
});

Deno.test("pool: freed addresses are reused only after the rest of the pool", () => {
  const { p } = pool("100.64.0.0/24", 0);
  const a = p.acquire("a")!;
  p.idle("a");
  p.sweep();
  assert.notDeepEqual(p.acquire("b"), a);
});
