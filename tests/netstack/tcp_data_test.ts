/**
 * The receive path and flow control of the sans-IO TCP core (specs/netstack.md §4.3–§5.1, §6,
 * §12.2 scenarios 5, 6 and 16): trimming, duplicates and gaps, the window tied to the stream's
 * backpressure, and 100 KB each way across the 2^32 wrap against a scripted kernel.
 */
import assert from "node:assert/strict";
import {
  ACK,
  describe,
  type Established,
  Harness,
  pattern,
  PSH,
  type Seg,
} from "./support/harness.ts";
import { exchange, KernelPeer } from "./support/kernel_peer.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

/** A data segment from the kernel at `seq` (ACKing everything we sent so far). */
function data(h: Harness, e: Established, seq: number, payload: Uint8Array, window = 502) {
  return h.seg({ flags: ACK | PSH, seq, ack: e.conn.sndNxt, window, payload });
}

function onlyAck(out: Seg[], ack: number, msg: string): Seg {
  assert.equal(out.length, 1, `${msg}: ${out.map(describe).join(", ")}`);
  assert.equal(out[0].flags, ACK, msg);
  assert.equal(out[0].ack, ack, msg);
  assert.equal(out[0].payload.length, 0, msg);
  return out[0];
}

Deno.test("5: in order, 1-byte overlap, fully old, gap: trimmed delivery, held, immediate ACKs", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  onlyAck(h.send(data(h, e, 1001, text("abcdefghij"))), 1011, "in order");
  assert.equal(str(e.stream.received()), "abcdefghij");

  onlyAck(h.send(data(h, e, 1010, text("jKLMN"))), 1015, "overlap by one");
  assert.equal(str(e.stream.received()), "abcdefghijKLMN", "the old byte is trimmed");

  onlyAck(h.send(data(h, e, 1001, text("abcdefghij"))), 1015, "fully old: ACKed at once");
  assert.equal(e.stream.receivedLength, 14, "and not delivered again");

  const gap = data(h, e, 1020, text("UVWXY"));
  onlyAck(h.send(gap), 1015, "a gap: duplicate ACK");
  assert.equal(e.stream.receivedLength, 14, "out-of-order payload held, not delivered");
  assert.equal(h.stack.stats().counters["out-of-order"], 1);

  onlyAck(
    h.send(data(h, e, 1015, text("PQRST"))),
    1025,
    "the hole is filled: the held segment follows at once",
  );
  assert.equal(str(e.stream.received()), "abcdefghijKLMNPQRSTUVWXY");
  onlyAck(h.send(gap), 1025, "its retransmission is old now");
  assert.equal(str(e.stream.received()), "abcdefghijKLMNPQRSTUVWXY", "delivered once");
});

Deno.test("5: a batch of segments draws one ACK; ACKs ride on data when there is some", () => {
  const h = new Harness();
  const e = h.establish({ irs: 1000 });
  h.input(
    data(h, e, 1001, text("aaaa")),
    data(h, e, 1005, text("bbbb")),
    data(h, e, 1009, text("cccc")),
  );
  onlyAck(h.flush(), 1013, "one ACK for the batch");
  h.input(data(h, e, 1013, text("dd")));
  e.stream.push(text("reply"));
  const out = h.flush();
  assert.equal(out.length, 1, "the ACK rides on the reply");
  assert.equal(out[0].ack, 1015);
  assert.equal(out[0].flags, ACK | PSH);
  assert.equal(str(out[0].payload), "reply");
});

Deno.test("5: a segment reaching past the window is cut at RCV.ADV (and its FIN dropped)", () => {
  const h = new Harness({ limits: { rcvCap: 4096 } });
  const e = h.establish({ irs: 1000 });
  e.stream.setWritable(false);
  const big = pattern(5000);
  const out = h.send(
    h.seg({ flags: ACK | PSH | 0x01, seq: 1001, ack: e.conn.sndNxt, payload: big }),
  );
  onlyAck(out, 1001 + 4096, "only the window's worth is taken, not the FIN");
  assert.equal(out[0].window, 0);
  assert.equal(e.conn.state, "established");
  e.stream.setWritable(true);
  assert.deepEqual(e.stream.received(), big.subarray(0, 4096));
});

Deno.test("5: a FIN right after data that fills the window lies outside it: not taken", () => {
  const h = new Harness({ limits: { rcvCap: 4096 } });
  const e = h.establish({ irs: 1000 });
  e.stream.setWritable(false);
  const bytes = pattern(4096);
  const out = h.send(h.seg({ flags: ACK | 0x01, seq: 1001, ack: e.conn.sndNxt, payload: bytes }));
  onlyAck(out, 1001 + 4096, "the data is taken, the FIN (at RCV.ADV) is not");
  assert.equal(e.conn.state, "established");
  assert.ok(e.conn.rcvNxt === e.conn.rcvAdv, "RCV.NXT never passes RCV.ADV");
  // Once the window reopens, the retransmitted FIN is taken.
  e.stream.setWritable(true);
  h.flush();
  onlyAck(h.send(h.seg({ flags: ACK | 0x01, seq: 1001 + 4096, ack: e.conn.sndNxt })), 5098, "FIN");
  assert.equal(e.conn.state, "close-wait");
});

Deno.test("6: the stream stalls: window 0, probes answered, an update once ≥ sMSS drains", () => {
  const h = new Harness({ limits: { rcvCap: 8192 } });
  const e = h.establish({ irs: 1000 });
  assert.equal(e.conn.rShift, 0);
  e.stream.setWritable(false);
  const bytes = pattern(8192);
  let edge = 0;
  const edges = (segs: Seg[]) => {
    for (const s of segs) {
      const right = s.ack + s.window; // R = 0
      assert.ok(right >= edge, `the right edge moved left: ${describe(s)}`);
      edge = right;
    }
    return segs;
  };
  for (let at = 0; at < 8192; at += 512) {
    const out = edges(h.send(data(h, e, 1001 + at, bytes.subarray(at, at + 512))));
    assert.equal(out.length, 1);
    assert.equal(out[0].window, 8192 - at - 512);
  }
  assert.equal(e.stream.receivedLength, 0);
  assert.equal(e.conn.recvQueued, 8192);

  // Linux probes a zero window with an empty segment at its SND.UNA−1, at its RTO and faster
  // than our 500 ms challenge-ACK limit: every probe is answered with the current window.
  for (let i = 0; i < 3; i++) {
    const probe = h.seg({ flags: ACK, seq: 1001 + 8192 - 1, ack: e.conn.sndNxt, window: 502 });
    const out = edges(h.send(probe));
    onlyAck(out, 1001 + 8192, `probe ${i}`);
    assert.equal(out[0].window, 0);
    h.advance(200);
  }
  // A one-byte probe of new data is not taken either, but answered.
  const one = edges(h.send(data(h, e, 1001 + 8192, text("z"))));
  onlyAck(one, 1001 + 8192, "one-byte probe");
  assert.equal(one[0].window, 0);

  // The stream takes 512 bytes at a time: no update until ≥ sMSS (1360) is free.
  e.stream.grant(1);
  assert.deepEqual(h.flush(), [], "512 free: no update yet");
  e.stream.grant(1);
  assert.deepEqual(h.flush(), [], "1024 free: no update yet");
  e.stream.grant(1);
  const upd = edges(h.flush());
  onlyAck(upd, 1001 + 8192, "window update");
  assert.equal(upd[0].window, 1536);
  e.stream.setWritable(true);
  const full = edges(h.flush());
  onlyAck(full, 1001 + 8192, "second update (the edge moved ≥ rcvCap/2)");
  assert.equal(full[0].window, 8192);
  assert.deepEqual(e.stream.received(), bytes);
  assert.equal(e.stream.writesWhileBlocked, 0);
});

Deno.test("6: the window reopens before anything was ACKed at 0 (no update is lost)", () => {
  const h = new Harness({ limits: { rcvCap: 4096 } });
  const e = h.establish({ irs: 7 });
  e.stream.setWritable(false);
  h.send(data(h, e, 8, pattern(4096)));
  e.stream.setWritable(true);
  const out = h.flush();
  onlyAck(out, 8 + 4096, "update");
  assert.equal(out[0].window, 4096);
});

// ---- 16: across the wrap, 100 KB each way -------------------------------------------------

function bulk(family: 4 | 6, size: number, chunk: number) {
  const h = new Harness({ family, iss: 0xfffffff0 });
  const up = pattern(size, 11);
  const down = pattern(size, 22);
  const peer = new KernelPeer({ tuple: h.tuple, isn: 0xfffffff0, data: up, close: true });
  let pushed = 0;
  let ended = false;
  const steps = exchange(h, [peer], {
    steps: 20_000,
    feed: () => {
      const s = h.transport.opens[0];
      if (!s) return;
      if (s.result === undefined) s.resolve("ok");
      if (h.conn()?.state === "syn-received" || s.paused || s.done) return;
      if (pushed < size) {
        s.push(down.slice(pushed, pushed + chunk));
        pushed += chunk;
      } else if (!ended) {
        ended = true;
        s.end();
      }
    },
    until: () => peer.allAcked && peer.finIn && h.conn()?.state !== "last-ack",
  });
  return { h, peer, up, down, steps };
}

for (const family of [4, 6] as const) {
  Deno.test(`16: ISS = IRS = 0xFFFFFFF0, 100 KB each way, byte-exact (IPv${family})`, () => {
    const { h, peer, up, down, steps } = bulk(family, 100_000, 3000);
    assert.ok(steps < 20_000, "finished");
    assert.deepEqual(peer.violations, []);
    assert.equal(peer.state, "open");
    const stream = h.transport.opens[0];
    assert.equal(stream.receivedLength, up.length);
    assert.ok(Buffer.from(stream.received()).equals(Buffer.from(up)), "kernel → remote exact");
    assert.equal(peer.gotLen, down.length);
    assert.ok(Buffer.from(peer.received).equals(Buffer.from(down)), "remote → kernel exact");
    assert.ok(peer.finIn, "our FIN arrived after the last byte");
    assert.equal(stream.aborted, false);
    assert.ok(stream.closed);
    // Both sequence spaces crossed zero.
    assert.ok(peer.sndUna < 0xfffffff0 && peer.rcvNxt < 0xfffffff0);
    assert.equal(h.stack.stats().counters["rst-out"], undefined);
    h.runUntil(h.now + 10_000);
    assert.equal(h.stack.connectionCount, 0, "TIME-WAIT expired");
  });
}

Deno.test("the remote stream is paused above sndCap and resumed below half of it", () => {
  const h = new Harness({ limits: { sndCap: 8192 } });
  const e = h.establish({ irs: 1000 });
  const una = e.conn.sndUna;
  e.stream.push(pattern(6000));
  assert.deepEqual(e.stream.pauses, []);
  e.stream.push(pattern(3000, 2));
  assert.deepEqual(e.stream.pauses, [true], "9000 held > 8192");
  assert.equal(h.flush().reduce((n, s) => n + s.payload.length, 0), 9000);
  h.send(h.seg({ flags: ACK, seq: 1001, ack: (una + 4000) >>> 0, window: 502 }));
  assert.deepEqual(e.stream.pauses, [true], "5000 held: still above 4096");
  h.send(h.seg({ flags: ACK, seq: 1001, ack: (una + 5000) >>> 0, window: 502 }));
  assert.deepEqual(e.stream.pauses, [true, false], "4000 held: below sndCap/2");
});
