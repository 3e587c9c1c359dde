/**
 * Flow-level properties of the sans-IO TCP core against a scripted kernel (specs/netstack.md
 * §12.3): random segments thrown at a neighbouring flow and at tuples one field away from a
 * live flow never change that flow's bytes; and over a lossy, duplicating, reordering link with
 * random backpressure on both sides and clock jumps, the bytes handed to each side are always a
 * prefix of what the other sent, and everything arrives once the link heals.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ACK,
  FIN,
  Harness,
  kernelSegment,
  pattern,
  PSH,
  RST,
  seqAdd,
  SYN,
  type Tuple,
} from "./support/harness.ts";
import { Invariants } from "./support/invariants.ts";
import { exchange, KernelPeer } from "./support/kernel_peer.ts";
import type { FakeStream } from "./support/fake_transport.ts";

/** mulberry32: a seeded generator for the link's faults. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Tuples one field away from `a` (and the other family, same ports). */
function neighbours(a: Tuple): Tuple[] {
  const bump = (x: Uint8Array) => {
    const y = x.slice();
    y[y.length - 1] ^= 1;
    return y;
  };
  const other: Tuple = a.family === 4
    ? { ...a, family: 6, app: new Uint8Array([0xfd, ...new Array(14).fill(0), 1]) }
    : { ...a, family: 4, app: new Uint8Array([10, 99, 0, 1]) };
  if (other.family === 4) other.remote = new Uint8Array([10, 200, 0, 5]);
  else other.remote = new Uint8Array([0xfd, 0, 2, 0, ...new Array(11).fill(0), 5]);
  return [
    { ...a, app: bump(a.app) },
    { ...a, appPort: a.appPort ^ 1 },
    { ...a, remote: bump(a.remote) },
    { ...a, remotePort: a.remotePort + 1 },
    other,
  ];
}

/** Check, incrementally, that what a stream was handed is a prefix of `sent`. */
function prefixChecker(sent: Uint8Array, got: () => Uint8Array[], what: string) {
  let chunks = 0;
  let at = 0;
  return () => {
    const ws = got();
    for (; chunks < ws.length; chunks++) {
      const w = ws[chunks];
      assert.ok(at + w.length <= sent.length, `${what}: more bytes than were sent`);
      for (let i = 0; i < w.length; i++) {
        if (w[i] !== sent[at + i]) {
          assert.fail(`${what}: byte ${at + i} differs from what was sent`);
        }
      }
      at += w.length;
    }
  };
}

const noiseArb = fc.record({
  at: fc.nat(90),
  target: fc.nat(6), // 0: flow B, 1–5: A's neighbours, 6: a random tuple
  flags: fc.oneof(
    fc.constantFrom(ACK, ACK | PSH, ACK | FIN, RST, RST | ACK, SYN, SYN | ACK, FIN),
    fc.nat(255),
  ),
  seqFrom: fc.nat(2), // A's RCV.NXT, B's RCV.NXT, anything
  dSeq: fc.integer({ min: -2000, max: 2000 }),
  ackFrom: fc.nat(2),
  dAck: fc.integer({ min: -2000, max: 2000 }),
  window: fc.nat(65535),
  len: fc.nat(1500),
  port: fc.integer({ min: 1, max: 65535 }),
});

Deno.test("property: noise at flow B and at tuples one field away never corrupts flow A", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(4 as const, 6 as const),
      fc.integer(),
      fc.array(noiseArb, { minLength: 10, maxLength: 120, size: "max" }),
      (family, seed, noise) => {
        const h = new Harness({ family, iss: 0xffffff00 });
        const A = h.tuple;
        const B = { ...A, appPort: A.appPort + 100 };
        const eb = h.establish({ tuple: B, irs: seed >>> 0 });
        const up = pattern(24_000, seed);
        const down = pattern(24_000, seed + 1);
        const peer = new KernelPeer({ tuple: A, isn: 0xfffff800, data: up, burst: 400 });
        const ix = h.transport.opens.length;
        const near = neighbours(A);
        let pushed = 0;
        const inv = new Invariants(h, { rcvCap: 65536, sndCap: 256 * 1024, sndSlack: 0 });
        const steps = exchange(h, [peer], {
          steps: 2000,
          feed: () => {
            const s = h.transport.opens[ix];
            if (!s) return;
            if (s.result === undefined) s.resolve("ok");
            if (pushed < down.length && !s.paused && h.conn(A)?.state === "established") {
              s.push(down.slice(pushed, pushed + 300));
              pushed += 300;
            }
          },
          noise: (step) =>
            noise.filter((n) => n.at === step).map((n) => {
              const a = h.conn(A);
              const b = h.conn(B);
              const t = n.target === 0
                ? B
                : n.target <= 5
                ? near[n.target - 1]
                : { ...A, appPort: n.port, remotePort: (n.port * 7) & 0xffff || 1 };
              const seq = [a?.rcvNxt, b?.rcvNxt, seed >>> 0][n.seqFrom] ?? 0;
              const ack = [a?.sndMax, b?.sndMax, (seed * 31) >>> 0][n.ackFrom] ?? 0;
              return kernelSegment(t, {
                flags: n.flags,
                seq: seqAdd(seq, n.dSeq),
                ack: seqAdd(ack, n.dAck),
                window: n.window,
                payload: pattern(n.len, n.dSeq),
              });
            }),
          check: () => inv.check("noise"),
          until: () => peer.allAcked && peer.gotLen === down.length,
        });
        const sa = h.transport.opens[ix];
        assert.ok(steps < 2000, "flow A finished");
        assert.deepEqual(peer.violations, []);
        assert.equal(peer.state, "open", "A was not reset");
        assert.ok(Buffer.from(sa.received()).equals(Buffer.from(up)), "kernel → remote intact");
        assert.ok(Buffer.from(peer.received).equals(Buffer.from(down)), "remote → kernel intact");
        assert.equal(h.conn(A)?.state, "established");
        assert.ok(!sa.done);
        assert.ok(eb.stream !== sa);
      },
    ),
    { numRuns: 150 },
  );
});

const eventArb = fc.record({
  at: fc.nat(800),
  op: fc.constantFrom("block", "unblock", "grant", "peer-stop", "peer-read", "jump"),
  n: fc.integer({ min: 1, max: 200_000 }),
});

Deno.test("property: over a faulty link, each side gets a prefix of what was sent, then all", () => {
  fc.assert(
    fc.property(
      fc.record({
        seed: fc.integer(),
        family: fc.constantFrom(4 as const, 6 as const),
        loss: fc.constantFrom(0, 0.02, 0.1, 0.3),
        dup: fc.constantFrom(0, 0.05, 0.3),
        delay: fc.constantFrom(0, 0.1, 0.5),
        rcvCap: fc.constantFrom(4096, 16384, 65536, 300_000),
        peerBuf: fc.constantFrom(3000, 20_000, 256 * 1024),
        peerWs: fc.constantFrom(null, 0, 7, 14),
        up: fc.integer({ min: 0, max: 60_000 }),
        down: fc.integer({ min: 0, max: 60_000 }),
      }),
      fc.array(eventArb, { maxLength: 25 }),
      (o, events) => {
        const h = new Harness({ family: o.family, iss: 0xfffffff0, limits: { rcvCap: o.rcvCap } });
        const up = pattern(o.up, o.seed);
        const down = pattern(o.down, o.seed ^ 0x5555);
        const peer = new KernelPeer({
          tuple: h.tuple,
          isn: 0xffffffff,
          data: up,
          rcvBuf: o.peerBuf,
          wscale: o.peerWs,
          burst: 3000,
        });
        let stream: FakeStream | undefined;
        let pushed = 0;
        const rand = rng(o.seed);
        const checks = [
          prefixChecker(up, () => stream?.writes ?? [], "kernel → remote"),
          prefixChecker(down, () => [peer.received], "remote → kernel"),
        ];
        const feed = (step: number) => {
          stream ??= h.transport.opens[0];
          if (!stream) return;
          if (stream.result === undefined) stream.resolve("ok");
          for (const e of events) if (e.at === step) fire(e.op, e.n);
          if (pushed < down.length && !stream.paused && h.conn()?.state === "established") {
            const n = 1 + Math.floor(rand() * 4000);
            stream.push(down.slice(pushed, pushed + n));
            pushed += n;
          }
        };
        const fire = (op: string, n: number) => {
          if (op === "block") stream!.setWritable(false);
          else if (op === "unblock") stream!.setWritable(true);
          else if (op === "grant") stream!.grant(n);
          else if (op === "peer-stop") peer.setReading(false);
          else if (op === "peer-read") peer.setReading(true);
          else h.now += n;
        };
        const inv = new Invariants(h, { rcvCap: o.rcvCap, sndCap: 256 * 1024, sndSlack: 4000 });
        const check = () => {
          inv.check("faulty link");
          for (const c of checks) c();
          assert.deepEqual(peer.violations, []);
          assert.notEqual(peer.state, "reset", "the connection was reset");
        };
        // A clean handshake first: a lost final ACK plus lost SYN-ACK retransmits ends with the
        // entry deleted while the kernel is ESTABLISHED, by design (§3.2), which no later step
        // could repair.
        const established = () => h.conn()?.state === "established" && peer.state === "open";
        exchange(h, [peer], { steps: 100, feed: () => feed(-1), check, until: established });
        assert.ok(established());
        const faults = { rand, loss: o.loss, dup: o.dup, delay: o.delay };
        exchange(h, [peer], { steps: 800, faults, feed, check });
        // The link heals, both apps read: everything must arrive.
        stream?.setWritable(true);
        peer.setReading(true);
        const done = () =>
          peer.state === "open" && peer.allAcked && stream?.receivedLength === up.length &&
          peer.gotLen === down.length;
        exchange(h, [peer], {
          steps: 20_000,
          stepMs: 10,
          feed: () => feed(-1),
          check,
          until: done,
        });
        assert.ok(
          done(),
          `incomplete: up ${stream?.receivedLength}/${up.length}, down ${peer.gotLen}/${down.length}`,
        );
        // Then both close, over the same link (at most 10% loss: 8 lost FINs in a row reset).
        stream!.end();
        peer.close();
        const closed = () =>
          peer.finIn && peer.allAcked &&
          (h.conn() === undefined || h.conn()!.state === "time-wait");
        const lossy = { ...faults, loss: Math.min(o.loss, 0.1) };
        exchange(h, [peer], { steps: 20_000, stepMs: 10, faults: lossy, check, until: closed });
        assert.ok(closed(), `not closed: ${h.conn()?.state}, peer FIN ${peer.finIn}`);
        assert.ok(stream!.closed && !stream!.aborted);
      },
    ),
    { numRuns: 200 },
  );
});
