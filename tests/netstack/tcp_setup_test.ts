/**
 * Connection setup in the sans-IO TCP core (specs/netstack.md §3.2, §3.5, §5.3, §8, §12.2
 * scenarios 1–4, 15, 17): the idempotent PENDING entry, SYN-ACK only after the open, refusals
 * and timeouts as RST|ACK, SYN-RECEIVED robustness, window-scale negotiation, and SYNs carrying
 * options or data we must not echo or take.
 */
import assert from "node:assert/strict";
import {
  ACK,
  CWR,
  describe,
  ECE,
  FIN,
  Harness,
  PSH,
  RST,
  type Seg,
  seqAdd,
  SYN,
  TUPLE4,
  TUPLE6,
} from "./support/harness.ts";

const IRS = 0x10203040;

/** Distinct ISNs per call, so "the same ISS on repeats" cannot hold by accident. */
function issCounter(start = 7_000_000): () => number {
  let n = start;
  return () => (n += 1_000_003) >>> 0;
}

const synOf = (h: Harness, seq = IRS) =>
  h.seg({ flags: SYN, seq, window: 64240, mss: 1460, wscale: 7 });

function assertSynAck(s: Seg, irs: number, msg = "") {
  assert.equal(s.flags, SYN | ACK, `${msg} flags: ${describe(s)}`);
  assert.equal(s.ack, seqAdd(irs, 1), `${msg} ack`);
}

Deno.test("1: SYN, two duplicates while the open takes 2.5 s: silence, then one SYN-ACK", () => {
  const h = new Harness({ iss: issCounter() });
  assert.deepEqual(h.send(synOf(h)), []);
  assert.equal(h.transport.opens.length, 1);
  assert.equal(h.stack.stats().connections.pending, 1);
  assert.deepEqual(h.advance(1000), []);
  assert.deepEqual(h.send(synOf(h)), [], "a duplicate SYN is a no-op");
  assert.deepEqual(h.advance(1000), []);
  assert.deepEqual(h.send(synOf(h)), []);
  assert.deepEqual(h.advance(500), []);
  assert.equal(h.transport.opens.length, 1, "one open, whatever the retries");
  assert.deepEqual(h.transport.last.dst, { family: 4, host: "10.200.0.5", port: 8080 });

  h.transport.last.resolve("ok");
  const out = h.flush();
  assert.equal(out.length, 1, "exactly one SYN-ACK the moment the stream opens");
  assertSynAck(out[0], IRS);
  const iss = out[0].seq;
  // The kernel's next SYN retransmit crossed our SYN-ACK: the same SYN-ACK again, same ISS.
  const again = h.send(synOf(h));
  assert.equal(again.length, 1);
  assertSynAck(again[0], IRS);
  assert.equal(again[0].seq, iss);
  assert.deepEqual(again[0].raw, out[0].raw, "byte-identical");
  assert.equal(h.transport.opens.length, 1);
});

Deno.test("2: a SYN with a new ISN while PENDING: the SYN-ACK acks the new one", () => {
  const h = new Harness();
  h.send(synOf(h, IRS));
  assert.deepEqual(h.send(synOf(h, IRS + 77777)), []);
  assert.equal(h.transport.opens.length, 1, "the open is kept");
  h.transport.last.resolve("ok");
  const out = h.flush();
  assert.equal(out.length, 1);
  assertSynAck(out[0], IRS + 77777);
});

Deno.test("SYN-RECEIVED: a SYN with a new ISN gets a SYN-ACK for it, same ISS, same stream", () => {
  const h = new Harness({ iss: issCounter() });
  h.send(synOf(h));
  h.transport.last.resolve("ok");
  const [first] = h.flush();
  const out = h.send(synOf(h, 0xfffffff0));
  assert.equal(out.length, 1);
  assertSynAck(out[0], 0xfffffff0);
  assert.equal(out[0].seq, first.seq);
  assert.equal(h.transport.opens.length, 1);
  assert.equal(h.transport.last.done, false);
  // …and the handshake completes on the new ISN.
  h.send(h.seg({ flags: ACK, seq: 0xfffffff1, ack: seqAdd(first.seq, 1) }));
  assert.equal(h.conn()!.state, "established");
});

for (const result of ["refused", "unreachable"] as const) {
  Deno.test(`3: SYN, open ${result}: RST|ACK seq 0 ack IRS+1, entry gone`, () => {
    const h = new Harness();
    h.send(synOf(h, 0xffffffff));
    h.transport.last.resolve(result);
    const out = h.flush();
    assert.equal(out.length, 1);
    assert.equal(out[0].flags, RST | ACK);
    assert.equal(out[0].seq, 0);
    assert.equal(out[0].ack, 0, "IRS+1 wraps to 0");
    assert.equal(h.stack.connectionCount, 0);
    assert.equal(h.stack.nextDeadline(), undefined, "no timer left behind");
    // The tuple is unknown now: a retransmitted SYN starts over with a new open.
    h.send(synOf(h, 0xffffffff));
    assert.equal(h.transport.opens.length, 2);
  });
}

Deno.test("3: SYN, the open takes more than 20 s: RST|ACK seq 0 ack IRS+1, stream aborted", () => {
  const h = new Harness();
  h.send(synOf(h));
  assert.deepEqual(h.runUntil(19_999), []);
  const out = h.runUntil(20_000);
  assert.equal(out.length, 1);
  assert.equal(out[0].flags, RST | ACK);
  assert.equal(out[0].seq, 0);
  assert.equal(out[0].ack, IRS + 1);
  assert.ok(h.transport.last.aborted, "the open is abandoned");
  assert.equal(h.stack.connectionCount, 0);
  // A late "ok" changes nothing.
  h.transport.last.resolve("ok");
  assert.deepEqual(h.flush(), []);
  assert.equal(h.stack.connectionCount, 0);
});

Deno.test("4: SYN-ACK sent, the kernel answers RST (the app gave up): abort, entry gone", () => {
  const h = new Harness();
  h.send(synOf(h));
  h.transport.last.resolve("ok");
  const [synAck] = h.flush();
  // A kernel without the socket resets with seq = our ACK field (IRS+1).
  assert.deepEqual(h.send(h.seg({ flags: RST, seq: synAck.ack })), []);
  assert.ok(h.transport.last.aborted);
  assert.equal(h.stack.connectionCount, 0);
  assert.equal(h.stack.nextDeadline(), undefined);
});

Deno.test("SYN-RECEIVED: an ACK that is not ISS+1 draws RST seq=SEG.ACK; the entry stays", () => {
  const h = new Harness();
  h.send(synOf(h));
  h.transport.last.resolve("ok");
  const [synAck] = h.flush();
  const bad = seqAdd(synAck.seq, 5000);
  const out = h.send(h.seg({ flags: ACK, seq: IRS + 1, ack: bad }));
  assert.equal(out.length, 1);
  assert.equal(out[0].flags, RST);
  assert.equal(out[0].seq, bad);
  assert.equal(h.conn()!.state, "syn-received");
  assert.equal(h.transport.last.done, false);
});

Deno.test("SYN-ACK retransmitted at 1 s and 3 s; after the third timeout the entry is dropped", () => {
  const h = new Harness();
  h.send(synOf(h));
  h.transport.last.resolve("ok");
  const [first] = h.flush();
  assert.deepEqual(h.runUntil(999), []);
  const r1 = h.runUntil(1000);
  assert.equal(r1.length, 1);
  assert.deepEqual(r1[0].raw, first.raw);
  assert.deepEqual(h.runUntil(2999), []);
  assert.equal(h.runUntil(3000).length, 1);
  assert.deepEqual(h.runUntil(6999), []);
  assert.deepEqual(h.runUntil(7000), [], "given up silently");
  assert.ok(h.transport.last.aborted);
  assert.equal(h.stack.connectionCount, 0);
});

Deno.test("unknown tuples get RSTs per RFC 9293 §3.5.2, and an RST gets nothing", () => {
  const h = new Harness();
  const withAck = h.send(h.seg({ flags: ACK, seq: 100, ack: 0xdeadbeef }));
  assert.equal(withAck.length, 1);
  assert.equal(withAck[0].flags, RST);
  assert.equal(withAck[0].seq, 0xdeadbeef);
  const data = h.send(h.seg({ flags: ACK | PSH, seq: 1, ack: 7, payload: new Uint8Array(10) }));
  assert.equal(data[0].flags, RST);
  assert.equal(data[0].seq, 7);
  // Without ACK: RST|ACK seq 0, ack = SEG.SEQ + SEG.LEN (the FIN counts one).
  const fin = h.send(h.seg({ flags: FIN, seq: 0xfffffffa, payload: new Uint8Array(5) }));
  assert.equal(fin.length, 1);
  assert.equal(fin[0].flags, RST | ACK);
  assert.equal(fin[0].seq, 0);
  assert.equal(fin[0].ack, 0, "0xfffffffa + 5 + 1 wraps to 0");
  const bare = h.send(h.seg({ flags: 0, seq: 40, payload: new Uint8Array(3) }));
  assert.equal(bare[0].ack, 43);
  for (const f of [RST, RST | ACK]) {
    assert.deepEqual(h.send(h.seg({ flags: f, seq: 1, ack: 2 })), []);
  }
  assert.equal(h.stack.connectionCount, 0);
  assert.equal(h.transport.opens.length, 0);
  // The reset goes back on the reverse tuple.
  assert.deepEqual([withAck[0].sport, withAck[0].dport], [8080, 40000]);
  assert.deepEqual([...withAck[0].src], [10, 200, 0, 5]);
});

// ---- 15: window scaling (§5.3) -----------------------------------------------------------

const MSS_OPT = (mss: number) => [2, 4, mss >> 8, mss & 0xff];

Deno.test("15: SYN with WS 7: SYN-ACK echoes our shift (1 for 64 KiB), windows unscaled in SYNs", () => {
  const h = new Harness();
  h.send(h.seg({ flags: SYN, seq: IRS, window: 1000, mss: 1460, wscale: 7 }));
  const c = h.conn()!;
  h.transport.last.resolve("ok");
  const [sa] = h.flush();
  assert.equal(sa.window, 65535, "our SYN-ACK window is min(rcvCap, 65535), not shifted");
  assert.deepEqual([...sa.options], [...MSS_OPT(1360), 1, 3, 3, 1]);
  assert.equal(c.sndWnd, 1000, "the SYN's window is not scaled");
  h.send(h.seg({ flags: ACK, seq: IRS + 1, ack: seqAdd(sa.seq, 1), window: 502 }));
  assert.equal(c.sndWnd, 502 * 128, "later windows are scaled, from the handshake's ACK on");
  assert.equal([c.sShift, c.rShift].join(), "7,1");
  const out = h.send(h.seg({
    flags: ACK | PSH,
    seq: IRS + 1,
    ack: seqAdd(sa.seq, 1),
    window: 502,
    payload: new Uint8Array(100),
  }));
  assert.equal(out.length, 1);
  // Receiver SWS: 100 bytes do not move the edge; the old one is advertised, scaled (rounded up).
  assert.equal(out[0].window, Math.ceil((65535 - 100) / 2));
  assert.equal(seqAdd(out[0].ack, out[0].window * 2), c.rcvAdv);
  const more = h.send(h.seg({
    flags: ACK | PSH,
    seq: IRS + 101,
    ack: seqAdd(sa.seq, 1),
    window: 502,
    payload: new Uint8Array(1400),
  }));
  assert.equal(more[0].window, 32768, "≥ sMSS later the edge moves: 65536 free bytes >> 1");
  assert.equal(seqAdd(more[0].ack, 65536), c.rcvAdv);
});

Deno.test("15: SYN without WS: no WS option back, no shift either way, 65535 clamp", () => {
  const h = new Harness({ limits: { rcvCap: 1 << 20 } });
  const e = h.establish({ wscale: null, window: 5000 });
  assert.deepEqual([...e.synAck.options], MSS_OPT(1360));
  assert.equal(e.synAck.window, 65535);
  assert.equal(e.conn.sndWnd, 5000);
  assert.equal([e.conn.sShift, e.conn.rShift].join(), "0,0");
  const out = h.send(h.seg({
    flags: ACK,
    seq: e.kseq,
    ack: seqAdd(e.iss, 1),
    window: 5000,
    payload: new Uint8Array(10),
  }));
  assert.equal(out[0].window, 65535, "a 1 MiB ring still advertises 65535 unscaled");
  assert.equal(e.conn.rcvAdv, seqAdd(out[0].ack, 65535));
});

Deno.test("15: WS 14 and WS 15 (clamped to 14) scale the kernel's window by 2^14", () => {
  for (const ws of [14, 15]) {
    const h = new Harness();
    const e = h.establish({ wscale: ws, window: 4 });
    assert.equal(e.conn.sShift, 14);
    assert.equal(e.conn.sndWnd, 4 * 16384);
  }
});

Deno.test("15: our shift follows rcvCap: 1 MiB → 5, 32 KiB → 0 (still echoed)", () => {
  const big = new Harness({ limits: { rcvCap: 1 << 20 } });
  const e = big.establish({ wscale: 2 });
  assert.equal(e.synAck.wscale, 5);
  assert.equal(e.synAck.window, 65535);
  const out = big.send(big.seg({ flags: ACK, seq: e.kseq, ack: seqAdd(e.iss, 1), window: 100 }));
  assert.deepEqual(out, [], "a pure ACK draws nothing");
  const d = big.send(big.seg({
    flags: ACK,
    seq: e.kseq,
    ack: seqAdd(e.iss, 1),
    window: 100,
    payload: new Uint8Array(1),
  }));
  assert.equal(d[0].window, (1 << 20) / 32, "1 MiB free >> 5");
  const small = new Harness({ limits: { rcvCap: 32768 } });
  const s = small.establish();
  assert.equal(s.synAck.wscale, 0, "WS is echoed even with R = 0");
  assert.equal(s.synAck.window, 32768);
});

Deno.test("15: a scaled window limits what we send (2 × sMSS at WS 4, field 170)", () => {
  const h = new Harness();
  const e = h.establish({ wscale: 4, window: 170 });
  e.stream.push(new Uint8Array(10_000));
  const out = h.flush();
  assert.deepEqual(out.map((s) => s.payload.length), [1360, 1360]);
});

// ---- 17: SYNs with options or data we do not take ------------------------------------------

function plainSynAck(h: Harness, syn: Uint8Array, irs: number): Seg {
  h.send(syn);
  h.transport.last.resolve("ok");
  const out = h.flush();
  assert.equal(out.length, 1);
  const sa = out[0];
  assert.equal(sa.flags, SYN | ACK, "no ECE/CWR back");
  assert.equal(sa.reserved, 0, "no AE back");
  assert.equal(sa.ack, seqAdd(irs, 1));
  assert.deepEqual([...sa.options], [...MSS_OPT(1360), 1, 3, 3, 1], "MSS and WS only");
  assert.equal(sa.payload.length, 0);
  return sa;
}

Deno.test("17: an ECN SYN (ECE|CWR|AE) gets a plain SYN-ACK", () => {
  const h = new Harness();
  const syn = h.seg({ flags: SYN | ECE | CWR, ae: true, seq: IRS, mss: 1460, wscale: 7 });
  plainSynAck(h, syn, IRS);
  assert.equal(h.transport.opens.length, 1);
});

Deno.test("17: SYN with SACK-permitted and timestamps: SACK is echoed, timestamps are not", () => {
  // We only ever send SACK blocks (for segments we hold out of order, §4.4): the kernel's
  // uploads then recover losses by SACK instead of by doubling RTOs. We ignore its blocks.
  const h = new Harness();
  const ts = [8, 10, 0, 1, 2, 3, 0, 0, 0, 0];
  h.send(h.seg({ flags: SYN, seq: IRS, mss: 1460, wscale: 7, options: [4, 2, ...ts] }));
  h.transport.last.resolve("ok");
  const [sa] = h.flush();
  assert.equal(sa.flags, SYN | ACK);
  assert.deepEqual([...sa.options], [...MSS_OPT(1360), 1, 1, 4, 2, 1, 3, 3, 1]);
});

Deno.test("17: a TFO SYN with data: no cookie back, the data is neither ACKed nor delivered", () => {
  const h = new Harness();
  const hello = new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n");
  const cookie = [34, 10, 1, 2, 3, 4, 5, 6, 7, 8];
  const sa = plainSynAck(
    h,
    h.seg({ flags: SYN, seq: IRS, mss: 1460, wscale: 7, options: cookie, payload: hello }),
    IRS,
  );
  const stream = h.transport.last;
  h.send(h.seg({ flags: ACK, seq: IRS + 1, ack: seqAdd(sa.seq, 1), window: 502 }));
  assert.equal(stream.receivedLength, 0, "SYN data is dropped");
  // The kernel sends the data again after the handshake: it arrives once.
  const out = h.send(h.seg({
    flags: ACK | PSH,
    seq: IRS + 1,
    ack: seqAdd(sa.seq, 1),
    window: 502,
    payload: hello,
  }));
  assert.deepEqual(stream.received(), hello);
  assert.equal(out[0].ack, IRS + 1 + hello.length);
});

Deno.test("IPv6: handshake, MSS = MTU − 60, data both ways", () => {
  const h = new Harness({ family: 6 });
  const e = h.establish({ irs: 0xfffffffe });
  assert.equal(e.synAck.family, 6);
  assert.equal(e.synAck.mss, 1340);
  assert.deepEqual(e.stream.dst, { family: 6, host: "fd00:200::5", port: 8080 });
  e.stream.push(new Uint8Array(3000).fill(7));
  const out = h.flush();
  assert.deepEqual(out.map((s) => s.payload.length), [1340, 1340, 320]);
  assert.ok(out.every((s) => s.raw.length <= 1400));
  const back = h.send(h.seg({
    flags: ACK,
    seq: e.kseq,
    ack: seqAdd(e.iss, 3001),
    window: 502,
    payload: new Uint8Array([1, 2, 3]),
  }));
  assert.deepEqual([...e.stream.received()], [1, 2, 3]);
  assert.equal(back.length, 1);
  assert.equal(back[0].ack, 2, "0xfffffffe + 1 + 3 wraps to 2");
  // IPv4 and IPv6 tuples with the same ports are different connections.
  assert.equal(h.conn(TUPLE4), undefined);
  assert.ok(h.conn(TUPLE6));
});
