/**
 * Robustness and teardown in the sans-IO TCP core (specs/netstack.md §3.2–§3.7, §9, §12.2
 * scenarios 8–12): RFC 5961 RST and SYN handling, FINs and gaps, simultaneous close, TIME-WAIT
 * tombstones, the half-close linger and the resets that replace a lost direction.
 */
import assert from "node:assert/strict";
import {
  ACK,
  describe,
  type Established,
  FIN,
  Harness,
  pattern,
  PSH,
  RST,
  type Seg,
  seqAdd,
  SYN,
} from "./support/harness.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** A kernel segment on an established connection (ACKs all we sent unless told). */
function k(
  h: Harness,
  e: Established,
  seq: number,
  o: { flags?: number; ack?: number; payload?: Uint8Array } = {},
) {
  return h.seg({
    flags: o.flags ?? ACK,
    seq,
    ack: o.ack ?? e.conn.sndMax,
    window: 502,
    payload: o.payload,
  });
}

function onlyAck(out: Seg[], seq: number, ack: number, msg: string) {
  assert.equal(out.length, 1, `${msg}: ${out.map(describe).join(", ")}`);
  assert.equal(out[0].flags, ACK, `${msg}: ${describe(out[0])}`);
  assert.equal(out[0].seq, seq, msg);
  assert.equal(out[0].ack, ack, msg);
}

Deno.test("8: RST exact: abort, entry gone, nothing sent", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  assert.deepEqual(h.send(h.seg({ flags: RST, seq: 1001 })), []);
  assert.ok(e.stream.aborted);
  assert.equal(h.stack.connectionCount, 0);
  assert.equal(h.stack.nextDeadline(), undefined);
});

Deno.test("8: RST in the window but not exact: one challenge ACK per 500 ms; outside: nothing", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  const snd = seqAdd(e.iss, 1);
  onlyAck(h.send(h.seg({ flags: RST, seq: 1101 })), snd, 1001, "challenge ACK");
  assert.deepEqual(h.send(h.seg({ flags: RST | ACK, seq: 1500, ack: snd })), [], "rate-limited");
  h.advance(499);
  assert.deepEqual(h.send(h.seg({ flags: RST, seq: 1200 })), []);
  h.advance(1);
  onlyAck(h.send(h.seg({ flags: RST, seq: 1200 })), snd, 1001, "500 ms later");
  h.advance(1000);
  for (const seq of [1000, 1001 - 70_000, 1001 + 65536, 1001 + 200_000]) {
    assert.deepEqual(h.send(h.seg({ flags: RST, seq })), [], `outside the window: ${seq}`);
  }
  assert.equal(e.conn.state, "established");
  assert.equal(e.stream.done, false);
  // The kernel, on the challenge ACK, resets exactly.
  h.send(h.seg({ flags: RST, seq: 1001 }));
  assert.ok(e.stream.aborted);
});

Deno.test("9: a SYN on an ESTABLISHED tuple: challenge ACK, then the exact RST aborts", () => {
  for (const synSeq of [1500, 0x80000000]) { // in the window, and far outside it
    const h = new Harness();
    const e = h.establish({ irs: 1000 });
    const out = h.send(h.seg({ flags: SYN, seq: synSeq, mss: 1460, wscale: 7 }));
    onlyAck(out, seqAdd(e.iss, 1), 1001, `challenge for SYN ${synSeq}`);
    assert.equal(h.transport.opens.length, 1, "no second open");
    assert.equal(e.conn.state, "established");
    // Linux in SYN-SENT answers the challenge ACK with RST seq = its ACK field.
    h.send(h.seg({ flags: RST, seq: out[0].ack }));
    assert.ok(e.stream.aborted);
    assert.equal(h.stack.connectionCount, 0);
    // Its SYN ~10 ms later opens a fresh connection.
    h.send(h.seg({ flags: SYN, seq: synSeq, mss: 1460, wscale: 7 }));
    assert.equal(h.transport.opens.length, 2);
  }
});

Deno.test("10: FIN with data: delivered, FIN ACKed, CLOSE-WAIT", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  const out = h.send(k(h, e, 1001, { flags: ACK | PSH | FIN, payload: text("bye") }));
  onlyAck(out, seqAdd(e.iss, 1), 1005, "data and FIN");
  assert.equal(new TextDecoder().decode(e.stream.received()), "bye");
  assert.equal(e.conn.state, "close-wait");
  assert.equal(e.stream.closed, false, "the stream lingers for the reply (§3.6)");
  onlyAck(
    h.send(k(h, e, 1001, { flags: ACK | FIN, payload: text("bye") })),
    seqAdd(e.iss, 1),
    1005,
    "retransmitted FIN re-ACKed",
  );
  assert.equal(e.stream.receivedLength, 3);
});

Deno.test("10: a FIN ahead of a gap is held, and taken once the gap is filled", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  const late = k(h, e, 1006, { flags: ACK | FIN, payload: text("world") });
  onlyAck(h.send(late), seqAdd(e.iss, 1), 1001, "duplicate ACK");
  assert.equal(e.conn.state, "established", "not before the gap is filled");
  assert.equal(e.stream.receivedLength, 0);
  onlyAck(h.send(k(h, e, 1001, { payload: text("hello") })), seqAdd(e.iss, 1), 1012, "gap filled");
  assert.equal(e.conn.state, "close-wait", "the held FIN follows the held data");
  onlyAck(h.send(late), seqAdd(e.iss, 1), 1012, "a retransmitted FIN is old");
  assert.equal(e.conn.state, "close-wait");
  assert.equal(new TextDecoder().decode(e.stream.received()), "helloworld");
});

Deno.test("11: the remote ends, the kernel's FIN ACKs ours: TIME-WAIT directly, 5 s", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  e.stream.end();
  assert.ok(e.stream.closed);
  const [fin] = h.flush();
  assert.equal(fin.flags, ACK | FIN);
  assert.equal(fin.seq, seqAdd(e.iss, 1));
  assert.equal(e.conn.state, "fin-wait-1");
  const out = h.send(k(h, e, 1001, { flags: ACK | FIN, ack: seqAdd(e.iss, 2) }));
  onlyAck(out, seqAdd(e.iss, 2), 1002, "ACK of the kernel's FIN");
  assert.equal(e.conn.state, "time-wait");
  assert.equal(e.stream.aborted, false);
  // A retransmitted FIN (our ACK was lost) is re-ACKed and restarts the 5 s.
  h.advance(4000);
  onlyAck(
    h.send(k(h, e, 1001, { flags: ACK | FIN, ack: seqAdd(e.iss, 2) })),
    seqAdd(e.iss, 2),
    1002,
    "re-ACK",
  );
  h.runUntil(h.now + 4999);
  assert.equal(h.stack.connectionCount, 1);
  h.runUntil(h.now + 1);
  assert.equal(h.stack.connectionCount, 0);
  // Afterwards the tuple is unknown: the kernel's stray ACK draws an RST.
  assert.equal(h.send(k(h, e, 1002, { ack: seqAdd(e.iss, 2) }))[0].flags, RST);
});

Deno.test("11: crossed FINs: CLOSING, then TIME-WAIT on the ACK of ours", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  e.stream.end();
  h.flush();
  const out = h.send(k(h, e, 1001, { flags: ACK | FIN, ack: seqAdd(e.iss, 1) }));
  onlyAck(out, seqAdd(e.iss, 2), 1002, "ACK of the crossing FIN");
  assert.equal(e.conn.state, "closing");
  assert.deepEqual(h.send(k(h, e, 1002, { ack: seqAdd(e.iss, 2) })), []);
  assert.equal(e.conn.state, "time-wait");
});

Deno.test("11: FIN-WAIT-2, then the kernel's FIN: TIME-WAIT; LAST-ACK ends on the ACK", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  e.stream.end();
  h.flush();
  assert.deepEqual(h.send(k(h, e, 1001, { ack: seqAdd(e.iss, 2) })), []);
  assert.equal(e.conn.state, "fin-wait-2");
  onlyAck(h.send(k(h, e, 1001, { flags: ACK | FIN })), seqAdd(e.iss, 2), 1002, "FIN");
  assert.equal(e.conn.state, "time-wait");

  const g = new Harness();
  const f = g.establish({ irs: 1000 });
  g.send(k(g, f, 1001, { flags: ACK | FIN }));
  f.stream.end();
  const [fin] = g.flush();
  assert.equal(fin.flags, ACK | FIN);
  assert.equal(f.conn.state, "last-ack");
  assert.deepEqual(g.send(k(g, f, 1002, { ack: seqAdd(f.iss, 2) })), []);
  assert.equal(g.stack.connectionCount, 0, "LAST-ACK → deleted, no tombstone");
  assert.ok(f.stream.closed && !f.stream.aborted);
});

Deno.test("12: a new SYN during TIME-WAIT replaces the tombstone (PENDING, new open)", () => {
  const h = new Harness({
    iss: (() => {
      let n = 100;
      return () => (n += 1_000_000);
    })(),
  });
  const e = h.establish({ irs: 1000 });
  e.stream.end();
  h.flush();
  h.send(k(h, e, 1001, { flags: ACK | FIN, ack: seqAdd(e.iss, 2) }));
  assert.equal(e.conn.state, "time-wait");
  assert.deepEqual(h.send(h.seg({ flags: SYN, seq: 5, mss: 1460, wscale: 7 })), []);
  assert.equal(h.transport.opens.length, 2);
  assert.equal(h.conn()!.state, "pending");
  assert.notEqual(h.conn(), e.conn);
  h.transport.last.resolve("ok");
  const [sa] = h.flush();
  assert.equal(sa.flags, SYN | ACK);
  assert.equal(sa.ack, 6);
  assert.notEqual(sa.seq, e.iss);
});

Deno.test("an RST in TIME-WAIT deletes the tombstone", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  e.stream.end();
  h.flush();
  h.send(k(h, e, 1001, { flags: ACK | FIN, ack: seqAdd(e.iss, 2) }));
  assert.deepEqual(h.send(h.seg({ flags: RST, seq: 1002 })), []);
  assert.equal(h.stack.connectionCount, 0);
});

Deno.test("half-close: the remote keeps sending after the kernel's FIN; 2 s of silence closes", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  const una = seqAdd(e.iss, 1);
  h.send(k(h, e, 1001, { flags: ACK | PSH | FIN, payload: text("request") }));
  assert.equal(e.conn.state, "close-wait");
  let sent = 0;
  for (const at of [500, 1500, 3000]) {
    h.runUntil(at);
    assert.equal(e.stream.closed, false, `still open at ${at}`);
    e.stream.push(pattern(1000, at));
    const out = h.flush();
    assert.equal(out.length, 1);
    assert.equal(out[0].seq, seqAdd(una, sent));
    sent += 1000;
    h.send(k(h, e, 1009, { ack: seqAdd(una, sent) }));
  }
  assert.deepEqual(h.runUntil(4999), []);
  assert.equal(e.stream.closed, false);
  const fin = h.runUntil(5000);
  assert.ok(e.stream.closed, "closed after 2 s without a remote byte");
  assert.equal(fin.length, 1);
  assert.equal(fin[0].flags, ACK | FIN);
  assert.equal(fin[0].seq, seqAdd(una, sent));
  assert.equal(e.conn.state, "last-ack");
  h.send(k(h, e, 1009, { ack: seqAdd(una, sent + 1) }));
  assert.equal(h.stack.connectionCount, 0);
  assert.equal(e.stream.aborted, false);
});

Deno.test("half-close: the linger starts once the kernel's bytes are handed over", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  e.stream.setWritable(false);
  h.send(k(h, e, 1001, { flags: ACK | FIN, payload: text("tail") }));
  h.runUntil(10_000);
  assert.equal(e.stream.closed, false, "no linger while bytes wait for the stream");
  e.stream.setWritable(true);
  h.flush();
  assert.equal(new TextDecoder().decode(e.stream.received()), "tail");
  h.runUntil(11_999);
  assert.equal(e.stream.closed, false);
  h.runUntil(12_000);
  assert.ok(e.stream.closed);
});

Deno.test("CLOSE-WAIT with a stalled stream: RST after 60 s idle", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  e.stream.setWritable(false);
  h.send(k(h, e, 1001, { flags: ACK | FIN, payload: text("x") }));
  assert.deepEqual(h.runUntil(59_999), []);
  const out = h.runUntil(60_000);
  assert.equal(out.length, 1);
  assert.equal(out[0].flags, RST | ACK);
  assert.ok(e.stream.aborted);
  assert.equal(h.stack.connectionCount, 0);
});

Deno.test("FIN-WAIT-2: RST after 60 s without the kernel's FIN", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  e.stream.end();
  h.flush();
  h.send(k(h, e, 1001, { ack: seqAdd(e.iss, 2) }));
  assert.equal(e.conn.state, "fin-wait-2");
  assert.deepEqual(h.runUntil(59_999), []);
  const out = h.runUntil(60_000);
  assert.equal(out[0]?.flags, RST | ACK);
  assert.equal(h.stack.connectionCount, 0);
});

Deno.test("the remote ends while kernel bytes wait for it: RST, not a FIN", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  e.stream.setWritable(false);
  h.send(k(h, e, 1001, { payload: text("unsent") }));
  e.stream.end();
  const out = h.flush();
  assert.equal(out.length, 1);
  assert.equal(out[0].flags, RST | ACK);
  assert.equal(out[0].seq, seqAdd(e.iss, 1));
  assert.equal(out[0].ack, 1007);
  assert.equal(h.stack.connectionCount, 0);
  assert.equal(e.stream.writesAfterClose, 0);
});

Deno.test("kernel data after the remote ended: RST (FIN-WAIT-1 and FIN-WAIT-2)", () => {
  for (const acked of [false, true]) {
    const h = new Harness();
    const e = h.establish({ irs: 1000 });
    e.stream.end();
    h.flush();
    if (acked) h.send(k(h, e, 1001, { ack: seqAdd(e.iss, 2) }));
    const out = h.send(k(h, e, 1001, { payload: text("late") }));
    assert.equal(out.length, 1);
    assert.equal(out[0].flags, RST | ACK);
    assert.equal(out[0].seq, seqAdd(e.iss, 2));
    assert.equal(h.stack.connectionCount, 0);
    assert.equal(e.stream.receivedLength, 0);
    assert.equal(h.stack.stats().counters["data-after-close"], 1);
  }
});

Deno.test("the remote aborts: RST|ACK seq SND.NXT ack RCV.NXT, entry gone", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  h.send(k(h, e, 1001, { payload: text("abc") }));
  e.stream.push(pattern(100));
  h.flush();
  h.send(k(h, e, 1004, { ack: seqAdd(e.iss, 101) })); // all acknowledged
  e.stream.fail("session lost");
  const out = h.flush();
  assert.equal(out.length, 1);
  assert.equal(out[0].flags, RST | ACK);
  assert.equal(out[0].seq, seqAdd(e.iss, 101));
  assert.equal(out[0].ack, 1004);
  assert.equal(h.stack.connectionCount, 0);
});

Deno.test("an abort with data in flight resets at SND.UNA and at SND.MAX", () => {
  // The kernel accepts only an RST at exactly its RCV.NXT, somewhere in [SND.UNA, SND.MAX].
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  e.stream.push(pattern(100));
  h.flush();
  e.stream.fail("session lost");
  const out = h.flush();
  assert.deepEqual(out.map((s) => [s.flags, s.seq, s.ack]), [
    [RST | ACK, seqAdd(e.iss, 1), 1001],
    [RST | ACK, seqAdd(e.iss, 101), 1001],
  ]);
  assert.equal(h.stack.connectionCount, 0);
});

Deno.test("NetStack.close resets every connection", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  h.send(h.seg({ flags: SYN, seq: 9, mss: 1460 }, { ...h.tuple, appPort: 40001 }));
  h.stack.close();
  const out = h.take();
  assert.deepEqual(out.map((s) => s.flags).sort(), [RST | ACK, RST | ACK]);
  assert.ok(e.stream.aborted);
  assert.equal(h.stack.connectionCount, 0);
});
