/**
 * The send path's timers in the sans-IO TCP core (specs/netstack.md §5.2, §6, §7, §12.2
 * scenarios 7, 13, 14): persist probes against the kernel's zero window, fast retransmit with
 * NewReno partial ACKs, the RTO schedule and its give-up, and late ACKs after a timeout.
 */
import assert from "node:assert/strict";
import {
  ACK,
  describe,
  type Established,
  FIN,
  Harness,
  pattern,
  RST,
  type Seg,
  seqAdd,
} from "./support/harness.ts";

const MSS = 1360;

/** Everything the stack emits until `until`, stamped with the clock at emission. */
function timeline(h: Harness, until: number): { at: number; s: Seg }[] {
  const out: { at: number; s: Seg }[] = [];
  for (;;) {
    const d = h.stack.nextDeadline();
    if (d === undefined || d > until) break;
    h.now = Math.max(h.now, d);
    h.stack.tick();
    for (const s of h.take()) out.push({ at: h.now, s });
  }
  h.now = Math.max(h.now, until);
  return out;
}

/** An ACK from the kernel (its next sequence number is e.kseq). */
const ackOf = (h: Harness, e: Established, ack: number, window = 502) =>
  h.seg({ flags: ACK, seq: e.kseq, ack, window });

Deno.test("7: the kernel's window is 0 while we hold data: probes at SND.UNA−1, backing off", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  const una = seqAdd(e.iss, 1);
  h.send(ackOf(h, e, una, 0));
  e.stream.push(pattern(5000));
  assert.deepEqual(h.flush(), [], "nothing fits in a zero window");
  const t = timeline(h, 400_000);
  const probes = t.filter(({ s }) => !(s.flags & RST));
  assert.deepEqual(probes.map(({ at }) => at), [
    1000,
    3000,
    7000,
    15_000,
    31_000,
    63_000,
    123_000,
    183_000,
  ], "first after one RTO, then ×2, capped at 60 s");
  for (const { s } of probes) {
    assert.equal(s.flags, ACK, describe(s));
    assert.equal(s.seq, seqAdd(una, -1), "at SND.UNA−1, never at SND.NXT");
    assert.equal(s.payload.length, 0);
  }
  const last = t[t.length - 1];
  assert.equal(last.s.flags, RST | ACK, "the ninth timeout resets: 8 unanswered probes");
  assert.equal(last.at, 243_000);
  assert.ok(e.stream.aborted);
  assert.equal(h.stack.connectionCount, 0);
});

Deno.test("7: answered probes go on forever, backing off to 60 s; the update sends at once", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  const una = seqAdd(e.iss, 1);
  h.send(ackOf(h, e, una, 0));
  const bytes = pattern(5000);
  e.stream.push(bytes);
  h.flush();
  let probes = 0;
  const times: number[] = [];
  while (h.now < 600_000) {
    const out = timeline(h, h.now + 10_000);
    for (const { at, s } of out) {
      assert.equal(s.flags, ACK, `only probes: ${describe(s)}`);
      assert.equal(s.seq, seqAdd(una, -1));
      probes++;
      times.push(at);
      // Linux answers with its current (still zero) window.
      assert.deepEqual(h.send(ackOf(h, e, una, 0)), []);
    }
  }
  assert.ok(probes >= 10, `${probes} probes in 10 minutes`);
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i] >= gaps[i - 1] - 10, `${gaps}`);
  assert.ok(gaps.at(-1)! >= 50_000 && gaps.at(-1)! <= 70_000, `the backoff caps at 60 s: ${gaps}`);
  assert.equal(e.conn.state, "established");
  const out = h.send(ackOf(h, e, una, 502));
  assert.deepEqual(out.map((s) => s.payload.length), [MSS, MSS, MSS, 5000 - 3 * MSS]);
  assert.equal(out[0].seq, una);
  assert.deepEqual(timeline(h, h.now + 500).filter(({ s }) => s.seq === seqAdd(una, -1)), []);
});

Deno.test("13: 3 duplicate ACKs: one fast retransmit; partial ACKs refill; then recovery ends", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  const una = seqAdd(e.iss, 1);
  const at = (k: number) => seqAdd(una, k * MSS);
  e.stream.push(pattern(10 * MSS));
  const first = h.flush();
  assert.equal(first.length, 10, "the initial cwnd is 10 segments");
  h.advance(5);
  assert.deepEqual(h.send(ackOf(h, e, at(1))), [], "segment 2 was lost");
  assert.deepEqual(h.send(ackOf(h, e, at(1))), []);
  assert.deepEqual(h.send(ackOf(h, e, at(1))), []);
  const fr = h.send(ackOf(h, e, at(1)));
  assert.equal(fr.length, 1, "the third duplicate ACK retransmits");
  assert.equal(fr[0].seq, at(1));
  assert.deepEqual(fr[0].payload, first[1].payload);
  assert.deepEqual(h.send(ackOf(h, e, at(1))), [], "a fourth one does not");
  assert.equal(h.stack.stats().counters["fast-retransmit"], 1);
  // Segment 5 was lost too: the partial ACK up to it retransmits it.
  const partial = h.send(ackOf(h, e, at(4)));
  assert.equal(partial.length, 1);
  assert.equal(partial[0].seq, at(4));
  assert.deepEqual(partial[0].payload, first[4].payload);
  assert.deepEqual(h.send(ackOf(h, e, at(10))), [], "the full ACK ends recovery");
  assert.equal(e.conn.sndUna, at(10));
  assert.deepEqual(timeline(h, h.now + 5000), [], "nothing left to retransmit");
  // Out of recovery, three more duplicates trigger again.
  e.stream.push(pattern(3 * MSS, 9));
  assert.equal(h.flush().length, 3);
  for (let i = 0; i < 3; i++) h.send(ackOf(h, e, at(10)));
  assert.equal(h.stack.stats().counters["fast-retransmit"], 2);
});

Deno.test("13: duplicates that change the window or carry data are not counted", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  const una = seqAdd(e.iss, 1);
  e.stream.push(pattern(4 * MSS));
  h.flush();
  h.send(ackOf(h, e, una, 501));
  h.send(ackOf(h, e, una, 500));
  h.send(ackOf(h, e, una, 499));
  const withData = h.seg({ flags: ACK, seq: e.kseq, ack: una, window: 499, payload: pattern(3) });
  h.send(withData);
  assert.equal(h.stack.stats().counters["fast-retransmit"], undefined);
});

Deno.test("14: no ACKs at all: retransmits at 1 s·2^k, then RST after the 8th", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  e.stream.push(pattern(1000));
  const [seg] = h.flush();
  const t = timeline(h, 1_000_000);
  const rtx = t.filter(({ s }) => !(s.flags & RST));
  assert.deepEqual(rtx.map(({ at }) => at), [
    1000,
    3000,
    7000,
    15_000,
    31_000,
    63_000,
    123_000,
    183_000,
  ]);
  for (const { s } of rtx) {
    assert.equal(s.seq, seg.seq);
    assert.deepEqual(s.payload, seg.payload);
  }
  // Two RSTs: at SND.UNA (where the kernel is when everything in flight was lost) and SND.MAX.
  assert.equal(t.length, 10);
  assert.deepEqual(t.slice(8).map(({ s }) => [s.flags, s.seq]), [
    [RST | ACK, seg.seq],
    [RST | ACK, seqAdd(seg.seq, 1000)],
  ]);
  assert.equal(t[8].at, 243_000);
  assert.ok(e.stream.aborted);
  assert.equal(h.stack.connectionCount, 0);
});

Deno.test("14: after an RTT sample the RTO floor is 200 ms: 8 retransmits within ≈ 51 s", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  e.stream.push(pattern(100));
  h.flush();
  h.advance(10);
  h.send(ackOf(h, e, seqAdd(e.iss, 101)));
  const start = h.now;
  e.stream.push(pattern(100, 2));
  h.flush();
  const t = timeline(h, start + 200_000);
  const rel = t.map(({ at }) => at - start);
  assert.deepEqual(rel, [200, 600, 1400, 3000, 6200, 12_600, 25_400, 51_000, 102_200, 102_200]);
  assert.equal(t[8].s.flags, RST | ACK);
  assert.equal(t[9].s.flags, RST | ACK);
});

Deno.test("an ACK of data sent before an RTO is taken, not refused as ACKing unsent data", () => {
  // The kernel's ACK of a whole flight was lost or late; the RTO resent the first segment.
  // The ACK that follows covers bytes sent before the timeout (beyond SND.NXT after a go-back).
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  const una = seqAdd(e.iss, 1);
  e.stream.push(pattern(3 * MSS));
  assert.equal(h.flush().length, 3);
  const rtx = h.advance(1000);
  assert.equal(rtx.length, 1);
  assert.equal(rtx[0].seq, una);
  assert.deepEqual(h.send(ackOf(h, e, seqAdd(una, 3 * MSS))), [], "accepted silently");
  assert.equal(e.conn.sndUna, seqAdd(una, 3 * MSS));
  assert.ok(e.conn.sndNxt === e.conn.sndUna);
  assert.deepEqual(timeline(h, h.now + 300_000), [], "no more retransmits, no reset");
  assert.equal(e.stream.aborted, false);
  e.stream.push(pattern(10));
  const next = h.flush();
  assert.equal(next.length, 1);
  assert.equal(next[0].seq, seqAdd(una, 3 * MSS), "new data follows on");
});

Deno.test("a late ACK covering our FIN after an RTO moves us to FIN-WAIT-2", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  const una = seqAdd(e.iss, 1);
  e.stream.push(pattern(3 * MSS));
  e.stream.end();
  const out = h.flush();
  assert.equal(out.length, 3);
  assert.ok(out[2].flags & FIN, "the FIN rides on the last segment");
  assert.equal(e.conn.state, "fin-wait-1");
  assert.equal(h.advance(1000).length, 1);
  h.send(ackOf(h, e, seqAdd(una, 3 * MSS + 1)));
  assert.equal(e.conn.state, "fin-wait-2");
  assert.deepEqual(timeline(h, h.now + 30_000), []);
});

Deno.test("RTO go-back-N: the lost flight is resent in order after the timeout", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  const una = seqAdd(e.iss, 1);
  const bytes = pattern(4 * MSS);
  e.stream.push(bytes);
  assert.equal(h.flush().length, 4);
  const r = h.advance(1000);
  assert.deepEqual(r.map((s) => s.seq), [una], "cwnd is 1 sMSS after an RTO");
  const next = h.send(ackOf(h, e, seqAdd(una, MSS)));
  assert.ok(next.length >= 1);
  assert.equal(next[0].seq, seqAdd(una, MSS));
  assert.deepEqual(next[0].payload, bytes.subarray(MSS, 2 * MSS));
});

Deno.test("Karn: a segment resent after an RTO is not timed (the RTO stays 1 s)", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  e.stream.push(pattern(1000));
  h.flush();
  assert.equal(h.advance(1000).length, 1, "RTO");
  h.advance(5);
  h.send(ackOf(h, e, seqAdd(e.iss, 1001))); // an ACK 5 ms after the resend: ambiguous
  const start = h.now;
  e.stream.push(pattern(10));
  h.flush();
  const t = timeline(h, start + 1000);
  assert.deepEqual(t.map(({ at }) => at - start), [1000], "not 200 ms from a bogus 5 ms sample");
});

Deno.test("the give-up RST carries the highest SND.NXT sent, where the kernel's RCV.NXT is", () => {
  // The kernel took the whole flight but every ACK of it was lost.
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  e.stream.push(pattern(3 * MSS));
  h.flush();
  const t = timeline(h, 1_000_000);
  const rst = t[t.length - 1].s;
  assert.equal(rst.flags, RST | ACK);
  assert.equal(rst.seq, seqAdd(e.iss, 1 + 3 * MSS), "an RST below RCV.NXT would be ignored");
  assert.equal(rst.ack, e.kseq);
});

Deno.test("7: a small window the sender SWS rule will not use is probed too", () => {
  // Otherwise a lost (or WL1-ignored) window update stalls the connection for good: nothing is
  // in flight, so no RTO runs either (RFC 9293 §3.8.6.2.1's override timeout; Linux probe0).
  const h = new Harness();
  const e = h.establish({ irs: 1000, wscale: null, window: 64240 });
  const una = seqAdd(e.iss, 1);
  h.send(ackOf(h, e, una, 500));
  e.stream.push(pattern(1000));
  assert.deepEqual(h.flush(), [], "500 < sMSS, < the 1000 queued, < MAX.SND.WND/2: wait");
  const t = timeline(h, 1000);
  assert.equal(t.length, 1, "a probe one RTO later");
  assert.equal(t[0].s.seq, seqAdd(una, -1));
  assert.equal(t[0].s.payload.length, 0);
  const out = h.send(ackOf(h, e, una, 64240));
  assert.deepEqual(out.map((s) => s.payload.length), [1000], "the answer reopens it");
});

Deno.test("the window of a segment that moves SND.UNA is taken, even under an older SEQ", () => {
  // The kernel's pure ACKs carry its SND.NXT; after going back N its retransmissions carry
  // newer ACKs under lower sequence numbers, which the WL1/WL2 test alone would skip.
  const h = new Harness();
  const e = h.establish({ irs: 1000, wscale: null, window: 4000 });
  const una = seqAdd(e.iss, 1);
  h.send(h.seg({ flags: ACK, seq: 1001, ack: una, window: 4000, payload: pattern(1000) }));
  h.send(h.seg({ flags: ACK, seq: 2001, ack: una, window: 4000 }));
  e.stream.push(pattern(2 * MSS));
  assert.equal(h.flush().length, 2);
  // Its app stopped reading: the edge stays at una+4000, so the window shrinks to 1280.
  h.send(
    h.seg({
      flags: ACK,
      seq: 1001,
      ack: seqAdd(una, 2 * MSS),
      window: 1280,
      payload: pattern(1000),
    }),
  );
  assert.equal(e.conn.sndWnd, 1280);
  e.stream.push(pattern(4000, 3));
  for (const s of h.flush()) {
    const end = seqAdd(s.seq, s.payload.length);
    assert.ok(((end - seqAdd(una, 4000)) | 0) <= 0, `past the kernel's edge: ${describe(s)}`);
  }
});
