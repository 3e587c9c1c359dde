/** Leases survive an agent restart: the pool's restore, the file, and a real restart. */
import assert from "node:assert/strict";
import { parseCidr } from "../../agent/cidr.ts";
import { LeaseFile } from "../../agent/leases.ts";
import { AddressPool } from "../../agent/pool.ts";
import { FrameType } from "../../src/tunnel/wire.ts";
import { withAgent } from "./harness.ts";
import { hello, WireClient } from "./helpers.ts";

const cidr = parseCidr("100.64.0.0/24")!;
const ip = (last: number) => cidr.base + last;

Deno.test("pool: restored leases keep their addresses for a fresh grace period", () => {
  let now = 1_000;
  const pool = new AddressPool(cidr, 5_000, () => now);
  const n = pool.restore([
    { id: "a", address: ip(7) },
    { id: "b", address: ip(3) },
    { id: "dup", address: ip(7) }, // taken twice: skipped
    { id: "out", address: ip(255) }, // broadcast: not in the pool
  ]);
  assert.equal(n, 2);
  assert.equal(pool.acquire("a"), ip(7), "a re-join gets its old address");
  assert.notEqual(pool.acquire("new"), ip(3), "a new tunnel does not get b's address");
  now += 5_000;
  assert.deepEqual(pool.sweep(), ["b"], "b never came back: released after the grace period");
  assert.equal(pool.addressOf("a"), ip(7), "a is connected: kept");
});

Deno.test("pool: onChange fires on allocation and release only", () => {
  let now = 0;
  let changes = 0;
  const pool = new AddressPool(cidr, 1_000, () => now);
  pool.onChange = () => changes++;
  pool.acquire("a");
  pool.acquire("a");
  pool.idle("a");
  assert.equal(changes, 1);
  now = 1_000;
  pool.sweep();
  assert.equal(changes, 2);
});

Deno.test("LeaseFile: round trip; another pool's file is ignored", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const f = new LeaseFile(`${dir}/state`, "100.64.0.0/24");
    assert.deepEqual(await f.load(), [], "no file yet");
    f.save(() => [{ id: "a", address: ip(9) }]);
    f.save(() => [{ id: "a", address: ip(9) }, { id: "b", address: ip(10) }]);
    await f.flushed();
    assert.deepEqual(await f.load(), [{ id: "a", address: ip(9) }, {
      id: "b",
      address: ip(10),
    }]);
    assert.equal((await Deno.stat(f.path)).mode! & 0o777, 0o600);
    assert.deepEqual(await new LeaseFile(`${dir}/state`, "100.65.0.0/24").load(), []);
    await Deno.writeTextFile(f.path, "{half");
    assert.deepEqual(await f.load(), [], "a corrupt file is ignored");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function join(port: number, tunnelId?: string): Promise<string> {
  const c = await WireClient.connect(port);
  await c.sendHello(hello(tunnelId ? { tunnelId } : {}));
  const f = await c.next();
  await c.close();
  assert.ok(f?.type === FrameType.Welcome, JSON.stringify(f));
  return f.welcome.address;
}

Deno.test("agent restart with stateDir: a re-joining tunnel gets the same address", async () => {
  const dir = await Deno.makeTempDir();
  const config = { stateDir: dir, leaseGraceSeconds: 60 };
  try {
    const id = hello().tunnelId;
    let first = "";
    await withAgent({ config }, async (agent) => {
      await join(agent.addr.port); // someone else, so the address is not simply the first
      first = await join(agent.addr.port, id);
    });
    await withAgent({ config }, async (agent) => {
      const other = await join(agent.addr.port);
      assert.notEqual(other, first, "a new tunnel was given the restored address");
      assert.equal(await join(agent.addr.port, id), first);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
