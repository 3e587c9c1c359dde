/**
 * Property tests of the sans-IO TCP core (specs/netstack.md §12.3): random and mutated packets,
 * random stream events and clock jumps, in random interleavings. After every step: nothing
 * threw, SND.UNA ≤ SND.NXT ≤ SND.MAX, RCV.NXT ≤ RCV.ADV and RCV.ADV never moves left, buffers
 * stay within their caps, the stream contract holds, every emitted packet parses and fits the
 * MTU (checked as it is emitted), and nothing but RSTs goes to tuples that are not in the table.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ACK,
  FIN,
  fixChecksums,
  Harness,
  kernelSegment,
  pattern,
  PSH,
  RST,
  seqAdd,
  SYN,
  type Tuple,
  TUPLE4,
  TUPLE6,
} from "./support/harness.ts";
import { Invariants } from "./support/invariants.ts";

const TUPLES: Tuple[] = [
  TUPLE4,
  { ...TUPLE4, appPort: 40001 },
  { ...TUPLE4, remotePort: 443 },
  TUPLE6,
];

type Action =
  | { k: "syn"; t: number; seq: number; mss: number | null; ws: number | null; extra: number }
  | { k: "establish"; t: number; seq: number }
  | {
    k: "seg";
    t: number;
    flags: number;
    seqMode: number;
    dSeq: number;
    ackMode: number;
    dAck: number;
    window: number;
    len: number;
  }
  | { k: "mutate"; t: number; flips: [number, number][]; cut: number; fix: boolean; opts: number[] }
  | { k: "raw"; bytes: Uint8Array }
  | { k: "good"; t: number; what: "data" | "fin" | "ack" | "probe"; len: number; window: number }
  | { k: "stream"; s: number; op: string; n: number }
  | { k: "clock"; ms: number }
  | { k: "deadline" }
  | { k: "flush" };

const tupleIx = fc.integer({ min: 0, max: TUPLES.length - 1 });
const seqArb = fc.oneof(
  fc.constantFrom(0, 1, 0xfffffff0, 0xffffffff, 0x7fffffff),
  fc.integer({ min: 0, max: 0xffffffff }),
);
const flagsArb = fc.oneof(
  fc.constantFrom(
    ACK,
    ACK | PSH,
    ACK | FIN,
    ACK | PSH | FIN,
    RST,
    RST | ACK,
    SYN,
    SYN | ACK,
    FIN,
    0,
  ),
  fc.integer({ min: 0, max: 255 }),
);
const delta = fc.oneof(
  { weight: 6, arbitrary: fc.constant(0) },
  { weight: 2, arbitrary: fc.integer({ min: -3, max: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: -3000, max: 3000 }) },
  { weight: 1, arbitrary: fc.integer({ min: -200_000, max: 200_000 }) },
);

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant("syn" as const),
      t: tupleIx,
      seq: seqArb,
      mss: fc.option(fc.integer({ min: 0, max: 65535 })),
      ws: fc.option(fc.integer({ min: 0, max: 255 })),
      extra: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant("establish" as const), t: tupleIx, seq: seqArb }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      k: fc.constant("seg" as const),
      t: tupleIx,
      flags: flagsArb,
      seqMode: fc.integer({ min: 0, max: 3 }),
      dSeq: delta,
      ackMode: fc.integer({ min: 0, max: 3 }),
      dAck: delta,
      window: fc.oneof(fc.constantFrom(0, 1, 502, 65535), fc.integer({ min: 0, max: 65535 })),
      len: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 3000 }),
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant("mutate" as const),
      t: tupleIx,
      flips: fc.array(fc.tuple(fc.nat(120), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
      cut: fc.nat(200),
      fix: fc.boolean(),
      opts: fc.array(fc.nat(255), { maxLength: 40 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("raw" as const),
      bytes: fc.uint8Array({ maxLength: 120 }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant("stream" as const),
      s: fc.nat(7),
      op: fc.constantFrom(
        "ok",
        "ok",
        "refused",
        "timeout",
        "data",
        "data",
        "data",
        "end",
        "fail",
        "block",
        "unblock",
        "grant",
      ),
      n: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 20_000 })),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant("clock" as const),
      ms: fc.oneof(
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 0, max: 3000 }),
        fc.integer({ min: 0, max: 90_000 }),
      ),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant("good" as const),
      t: tupleIx,
      what: fc.constantFrom("data" as const, "fin" as const, "ack" as const, "probe" as const),
      len: fc.integer({ min: 1, max: 3000 }),
      window: fc.constantFrom(0, 3, 502, 65535),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ k: "deadline" as const }) },
  { weight: 2, arbitrary: fc.constant({ k: "flush" as const }) },
);

interface Config {
  mtu: number;
  rcvCap: number;
  sndCap: number;
  iss: number;
}

function apply(h: Harness, a: Action): void {
  const t = "t" in a ? TUPLES[a.t] : TUPLE4;
  const c = h.conn(t);
  switch (a.k) {
    case "syn": {
      const opts = [[], [4, 2], [8, 10, 1, 2, 3, 4, 0, 0, 0, 0], [34, 2]][a.extra];
      h.input(kernelSegment(t, {
        flags: SYN | (a.extra === 3 ? 0xc0 : 0),
        seq: a.seq,
        mss: a.mss ?? undefined,
        wscale: a.ws ?? undefined,
        options: opts,
        payload: a.extra === 3 ? pattern(20) : undefined,
      }));
      return;
    }
    case "establish": {
      h.input(kernelSegment(t, { flags: SYN, seq: a.seq, mss: 1460, wscale: 7 }));
      const s = h.transport.opens[h.transport.opens.length - 1];
      if (s && s.result === undefined && h.conn(t)?.state === "pending") s.resolve("ok");
      const now = h.conn(t);
      if (now?.state === "syn-received") {
        const ack = seqAdd(now.iss, 1);
        h.input(kernelSegment(t, { flags: ACK, seq: seqAdd(a.seq, 1), ack, window: 502 }));
      }
      return;
    }
    case "seg": {
      const rnd = (a.dSeq * 7919 + a.dAck) >>> 0;
      const base = [c?.rcvNxt, c?.rcvAdv, c ? seqAdd(c.rcvNxt, -1) : undefined, rnd][a.seqMode];
      const ackBase = [c?.sndUna, c?.sndMax, c?.sndNxt, rnd][a.ackMode];
      h.input(kernelSegment(t, {
        flags: a.flags,
        seq: seqAdd(base ?? rnd, a.seqMode === 3 ? 0 : a.dSeq),
        ack: seqAdd(ackBase ?? rnd, a.ackMode === 3 ? 0 : a.dAck),
        window: a.window,
        payload: pattern(a.len, a.dSeq),
      }));
      return;
    }
    case "mutate": {
      const pkt = kernelSegment(t, {
        flags: ACK | PSH,
        seq: c?.rcvNxt ?? 1,
        ack: c?.sndMax ?? 1,
        payload: pattern(50),
        options: a.opts.slice(0, 40 - (a.opts.length % 4 === 0 ? 0 : 4)),
      });
      for (const [at, x] of a.flips) if (at < pkt.length) pkt[at] ^= x;
      const cut = a.cut < pkt.length ? pkt.subarray(0, pkt.length - a.cut % 30) : pkt;
      if (a.fix) fixChecksums(cut);
      h.input(cut);
      return;
    }
    case "raw":
      h.input(a.bytes);
      return;
    case "good": {
      // What a well-behaved kernel would send next: in-order data, its FIN, an ACK, a probe.
      if (!c || c.state === "pending") return;
      const seq = a.what === "probe" ? seqAdd(c.rcvNxt, -1) : c.rcvNxt;
      const flags = ACK | (a.what === "fin" ? FIN : a.what === "data" ? PSH : 0);
      const payload = a.what === "data" ? pattern(a.len, c.rcvNxt) : undefined;
      h.input(kernelSegment(t, { flags, seq, ack: c.sndMax, window: a.window, payload }));
      return;
    }
    case "stream":
      return streamOp(h, a.s, a.op, a.n);
    case "clock":
      h.now += a.ms;
      h.stack.tick();
      return;
    case "deadline": {
      const d = h.stack.nextDeadline();
      if (d !== undefined) h.now = Math.max(h.now, d);
      h.stack.tick();
      return;
    }
    case "flush":
      h.stack.flush();
      return;
  }
}

function streamOp(h: Harness, ix: number, op: string, n: number): void {
  const s = h.transport.opens[ix % Math.max(1, h.transport.opens.length)];
  if (!s) return;
  if (s.result === undefined) {
    // The open's result comes first, and only once.
    if (op === "refused" || op === "timeout") s.resolve(op);
    else if (op === "ok") s.resolve("ok");
    return;
  }
  if (s.result !== "ok") return;
  switch (op) {
    case "data":
      if (!s.paused) s.push(pattern(n, n)); // the transport honours pause
      break;
    case "end":
      s.end();
      break;
    case "fail":
      s.fail();
      break;
    case "block":
      s.setWritable(false);
      break;
    case "unblock":
      s.setWritable(true);
      break;
    case "grant":
      s.grant(n);
      break;
  }
}

const configArb = fc.record({
  mtu: fc.constantFrom(1280, 1400, 1500),
  rcvCap: fc.constantFrom(4096, 8192, 65536, 100_000, 1 << 20),
  sndCap: fc.constantFrom(8192, 256 * 1024),
  iss: seqArb,
});

Deno.test("property: random packets, stream events and clock jumps keep every invariant", () => {
  fc.assert(
    fc.property(
      configArb,
      fc.array(actionArb, { minLength: 5, maxLength: 70, size: "max" }),
      (cfg, actions) => {
        let n = cfg.iss;
        const h = new Harness({
          mtu: cfg.mtu,
          iss: () => (n = seqAdd(n, 0x01000193)),
          limits: { rcvCap: cfg.rcvCap, sndCap: cfg.sndCap },
        });
        const inv = new Invariants(h, { ...cfg, sndSlack: 20_000 });
        actions.forEach((a, i) => {
          apply(h, a);
          h.stack.flush();
          inv.check(`step ${i} (${a.k}${"op" in a ? " " + a.op : ""})`);
        });
        // Far in the future every timer has run its course without breaking anything.
        h.now += 1_000_000;
        h.stack.tick();
        inv.check("the end");
      },
    ),
    { numRuns: 1500 },
  );
});

Deno.test("property: mutated and truncated packets are dropped or handled, never thrown on", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          t: tupleIx,
          flags: flagsArb,
          flips: fc.array(fc.tuple(fc.nat(80), fc.integer({ min: 1, max: 255 })), { maxLength: 6 }),
          cut: fc.nat(100),
          opts: fc.array(fc.nat(255), { maxLength: 40 }),
          lenField: fc.option(fc.nat(0xffff)),
        }),
        { minLength: 5, maxLength: 40, size: "max" },
      ),
      (muts) => {
        const h = new Harness();
        h.establish({ irs: 1000 });
        h.establish({ irs: 2000, tuple: TUPLE6 });
        for (const m of muts) {
          const t = TUPLES[m.t];
          const c = h.conn(t);
          const pkt = kernelSegment(t, {
            flags: m.flags,
            seq: c?.rcvNxt ?? 5,
            ack: c?.sndMax ?? 5,
            options: m.opts.slice(0, 40 - 4 * Math.ceil((m.flags & SYN ? 8 : 0) / 4)),
            payload: pattern(m.cut % 40),
          });
          for (const [at, x] of m.flips) if (at < pkt.length) pkt[at] ^= x;
          if (m.lenField !== null) {
            const at = t.family === 4 ? 2 : 4;
            pkt[at] = m.lenField >> 8;
            pkt[at + 1] = m.lenField & 0xff;
          }
          fixChecksums(pkt);
          h.send(pkt.subarray(0, Math.max(0, pkt.length - (m.cut % 7))));
          assert.deepEqual(h.orphans, []);
        }
      },
    ),
    { numRuns: 500 },
  );
});
