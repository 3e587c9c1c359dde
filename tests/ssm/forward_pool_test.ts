/** The pure rules of forward's session pool: when to add or close a session, where a connection goes. */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type LaneLoad,
  type LaneSample,
  placeConnection,
  poolOptions,
  PoolPlanner,
} from "../../src/ssm/forward_pool.ts";
import { ExitCode, UserError } from "../../src/errors.ts";

const TICK = 500;
/** Bytes one tick carries at a rate, in bytes per ms. */
const perTick = (bPerMs: number) => bPerMs * TICK;

/**
 * A simulated pool: each lane receives `rate` B/ms (1024 = the pacing ceiling) and has the given
 * connections. Feeds the planner tick by tick and returns the first decision and when it came.
 */
class Sim {
  now = 0;
  lanes: (LaneSample & { rate: number })[] = [];
  opening = 0;
  constructor(readonly planner: PoolPlanner) {}

  lane(index: number, o: Partial<LaneSample & { rate: number }> = {}) {
    const l = {
      index,
      up: true,
      bytesIn: 0,
      blocked: false,
      connections: 1,
      busyConnections: 1,
      rate: 1024,
      ...o,
    };
    this.lanes.push(l);
    return l;
  }

  tick() {
    this.now += TICK;
    for (const l of this.lanes) l.bytesIn += perTick(l.rate);
    return this.planner.decide({ now: this.now, lanes: this.lanes, opening: this.opening });
  }

  /** Ticks until a decision or `ms` pass. */
  run(ms: number) {
    const end = this.now + ms;
    while (this.now < end) {
      const d = this.tick();
      if (d) return { ...d, at: this.now };
    }
    return undefined;
  }
}

const auto = (o: Partial<ConstructorParameters<typeof PoolPlanner>[0]> = {}) =>
  new PoolPlanner({ auto: true, max: 4, ...o });

Deno.test("pool: a session at the ceiling with several busy connections grows after 2 s, not before", () => {
  const sim = new Sim(auto());
  sim.lane(1, { connections: 4, busyConnections: 4 });
  sim.tick(); // the first sample only sets the baseline
  const start = sim.now;
  const d = sim.run(10_000);
  assert.equal(d?.kind, "grow");
  assert.ok(d!.at - start >= 2_000 && d!.at - start <= 2_500, `after ${d!.at - start} ms`);
  assert.match(
    d!.reason,
    /session 1 at the pacing ceiling \(1\.02 MB\/s from the agent\) for 2\.0 s with 4 active/,
  );
});

Deno.test("pool: one connection never grows, however saturated", () => {
  const sim = new Sim(auto());
  sim.lane(1, { connections: 1, busyConnections: 1 });
  assert.equal(sim.run(120_000), undefined);
  // Many connections open but only one busy: still one.
  sim.lanes[0].connections = 9;
  assert.equal(sim.run(10_000), undefined);
});

Deno.test("pool: below 3/4 of the ceiling is not saturated; a burst is not sustained", () => {
  const sim = new Sim(auto());
  const l = sim.lane(1, { connections: 4, busyConnections: 4, rate: 700 });
  assert.equal(sim.run(30_000), undefined, "700 B/ms: the local readers or the path limit it");
  // Saturated for 1.5 s, then a dip, again and again: never 2 s in a row.
  for (let i = 0; i < 10; i++) {
    l.rate = 1024;
    assert.equal(sim.run(1_500), undefined);
    l.rate = 200;
    assert.equal(sim.run(500), undefined);
  }
  l.rate = 1000;
  assert.equal(sim.run(3_000)?.kind, "grow");
});

Deno.test("pool: a full send window (uploads) counts as saturated at any download rate", () => {
  const sim = new Sim(auto());
  sim.lane(1, { connections: 2, busyConnections: 2, rate: 0, blocked: true });
  const d = sim.run(5_000);
  assert.equal(d?.kind, "grow");
  assert.match(d!.reason, /session 1 had its send window full for/);
});

Deno.test("pool: grows only while every session is saturated, nothing opens or heals, up to max", () => {
  const p = auto({ max: 3 });
  const sim = new Sim(p);
  sim.lane(1, { connections: 3, busyConnections: 3 });
  const two = sim.lane(2, { connections: 1, busyConnections: 1, rate: 300 });
  assert.equal(sim.run(10_000), undefined, "session 2 has room");
  two.rate = 1024;
  sim.opening = 1;
  assert.equal(sim.run(10_000), undefined, "one is being opened");
  sim.opening = 0;
  two.up = false;
  assert.equal(sim.run(10_000), undefined, "one is healing");
  two.up = true;
  const d = sim.run(10_000);
  assert.equal(d?.kind, "grow");
  assert.match(d!.reason, /all 2 sessions saturated/);
  sim.lane(3, { connections: 1, busyConnections: 1 });
  sim.lanes[0].busyConnections = sim.lanes[0].connections = 6;
  assert.equal(sim.run(30_000), undefined, "at max");
});

Deno.test("pool: after growing, the new session must saturate too before the next", () => {
  const sim = new Sim(auto());
  sim.lane(1, { connections: 4, busyConnections: 4 });
  assert.equal(sim.run(5_000)?.kind, "grow");
  const two = sim.lane(2, { connections: 0, busyConnections: 0, rate: 0 });
  assert.equal(sim.run(10_000), undefined);
  two.connections = two.busyConnections = 1;
  two.rate = 1024;
  const t = sim.now;
  const d = sim.run(10_000);
  assert.equal(d?.kind, "grow");
  assert.ok(d!.at - t >= 2_000, "measured afresh");
});

Deno.test("pool: extra sessions without connections close after 60 s, newest first; session 1 stays", () => {
  const sim = new Sim(auto());
  const one = sim.lane(1, { connections: 0, busyConnections: 0, rate: 0 });
  const two = sim.lane(2, { connections: 0, busyConnections: 0, rate: 0 });
  const three = sim.lane(3, { connections: 1, busyConnections: 0, rate: 0 });
  const d = sim.run(120_000);
  assert.deepEqual(d && { kind: d.kind, index: (d as { index: number }).index }, {
    kind: "retire",
    index: 2,
  });
  assert.ok(d!.at >= 60_000 && d!.at <= 61_000, `at ${d!.at}`);
  assert.match(d!.reason, /no connections for 60 s/);
  sim.lanes.splice(sim.lanes.indexOf(two), 1);
  three.connections = 0;
  const e = sim.run(120_000);
  assert.equal(e?.kind === "retire" && e.index, 3);
  sim.lanes.splice(sim.lanes.indexOf(three), 1);
  assert.equal(sim.run(300_000), undefined, "session 1 is never closed");
  void one;
});

Deno.test("pool: a connection resets the idle clock", () => {
  const sim = new Sim(auto());
  sim.lane(1, { connections: 0, busyConnections: 0, rate: 0 });
  const two = sim.lane(2, { connections: 0, busyConnections: 0, rate: 0 });
  assert.equal(sim.run(50_000), undefined);
  two.connections = 1;
  sim.tick();
  two.connections = 0;
  assert.equal(sim.run(59_000), undefined);
  assert.equal(sim.run(2_000)?.kind, "retire");
});

Deno.test("pool: a fixed count never grows with load nor retires, and replaces a lost session", () => {
  const sim = new Sim(new PoolPlanner({ auto: false, max: 2 }));
  sim.lane(1, { connections: 8, busyConnections: 8 });
  sim.lane(2, { connections: 0, busyConnections: 0, rate: 0 });
  assert.equal(sim.run(300_000), undefined);
  sim.lanes.pop();
  const d = sim.tick();
  assert.equal(d?.kind, "grow");
  assert.match(d!.reason, /keeping 2 sessions/);
  sim.opening = 1;
  assert.equal(sim.tick(), undefined, "one is already being opened");
  const one = new Sim(new PoolPlanner({ auto: false, max: 1 }));
  one.lane(1, { connections: 8, busyConnections: 8 });
  assert.equal(one.run(60_000), undefined, "--sessions 1: the old behaviour");
});

Deno.test("pool: the planner never grows past max nor with no more busy connections than sessions", () => {
  const lane = fc.record({
    rate: fc.constantFrom(0, 500, 1024),
    blocked: fc.boolean(),
    up: fc.boolean(),
    connections: fc.nat(6),
    busy: fc.nat(6),
  });
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 6 }),
    fc.array(fc.array(lane, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 40 }),
    (max, ticks) => {
      const p = auto({ max });
      const bytes = new Map<number, number>();
      let now = 0;
      for (const t of ticks) {
        now += TICK;
        const lanes = t.map((l, i) => {
          bytes.set(i + 1, (bytes.get(i + 1) ?? 0) + perTick(l.rate));
          return {
            index: i + 1,
            up: l.up,
            bytesIn: bytes.get(i + 1)!,
            blocked: l.blocked,
            connections: Math.max(l.connections, l.busy),
            busyConnections: l.busy,
          };
        });
        const d = p.decide({ now, lanes, opening: 0 });
        if (d?.kind === "grow") {
          assert.ok(lanes.length < max);
          assert.ok(lanes.reduce((a, l) => a + l.busyConnections, 0) > lanes.length);
          assert.ok(lanes.every((l) => l.up));
        }
        if (d?.kind === "retire") {
          assert.notEqual(d.index, 1);
          assert.equal(lanes.find((l) => l.index === d.index)?.connections, 0);
        }
      }
    },
  ));
});

Deno.test("place: least busy, then fewest connections, then the oldest; healing ones last", () => {
  const l = (index: number, busy: number, conns: number, up = true): LaneLoad => ({
    index,
    up,
    connections: conns,
    busyConnections: busy,
  });
  assert.equal(placeConnection([l(1, 4, 4), l(2, 0, 0)])?.index, 2);
  assert.equal(placeConnection([l(1, 1, 5), l(2, 1, 2), l(3, 2, 2)])?.index, 2);
  assert.equal(placeConnection([l(1, 1, 1), l(2, 1, 1)])?.index, 1);
  assert.equal(placeConnection([l(1, 3, 3), l(2, 0, 0, false)])?.index, 1, "2 is healing");
  assert.equal(placeConnection([l(1, 3, 3, false), l(2, 1, 1, false)])?.index, 2);
  assert.equal(placeConnection([]), undefined);
});

Deno.test("place: always an up lane if there is one, with the fewest busy connections among them", () => {
  const arb = fc.array(
    fc.record({ up: fc.boolean(), connections: fc.nat(8), busyConnections: fc.nat(8) }),
    { minLength: 1, maxLength: 8 },
  );
  fc.assert(fc.property(arb, (raw) => {
    const lanes = raw.map((r, i) => ({ ...r, index: i + 1 }));
    const p = placeConnection(lanes)!;
    const up = lanes.filter((l) => l.up);
    const pool = up.length ? up : lanes;
    assert.ok(pool.includes(p));
    assert.equal(p.busyConnections, Math.min(...pool.map((l) => l.busyConnections)));
  }));
});

Deno.test("poolOptions: auto by default with at most 4; fixed counts; clear usage errors", () => {
  assert.deepEqual(poolOptions(), { auto: true, max: 4 });
  assert.deepEqual(poolOptions("AUTO", "8"), { auto: true, max: 8 });
  assert.deepEqual(poolOptions("1"), { auto: false, max: 1 });
  assert.deepEqual(poolOptions(3, 2), { auto: false, max: 3 }, "a fixed count ignores the max");
  for (
    const [s, m, re] of [
      ["0", "4", /--sessions "0": use auto or a number from 1 to 16/],
      ["two", "4", /--sessions "two"/],
      ["1.5", "4", /--sessions "1.5"/],
      ["auto", "17", /--max-sessions "17": use a number from 1 to 16/],
      ["auto", "", /--max-sessions ""/],
    ] as const
  ) {
    assert.throws(
      () => poolOptions(s, m),
      (e) => e instanceof UserError && e.exitCode === ExitCode.Usage && re.test(e.message),
    );
  }
});
