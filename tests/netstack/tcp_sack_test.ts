/**
 * SACK as a receiver only (§4.4 with the v2 option taken): when the kernel offers it, our
 * duplicate ACKs list the segments we hold past a hole, so the kernel's sender recovers by SACK
 * instead of by doubling RTOs. Blocks from the kernel are ignored.
 */
import assert from "node:assert/strict";
import { Reassembly } from "../../src/netstack/reassembly.ts";
import { ACK, Harness, seqAdd, SYN } from "./support/harness.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** The SACK blocks of an emitted segment's options, as [left, right] pairs. */
function sackOf(options: Uint8Array): number[] {
  for (let o = 0; o < options.length;) {
    const kind = options[o];
    if (kind === 0) break;
    if (kind === 1) {
      o++;
      continue;
    }
    const len = options[o + 1];
    if (kind === 5) {
      const v = new DataView(options.buffer, options.byteOffset + o + 2, len - 2);
      return Array.from({ length: (len - 2) / 4 }, (_, i) => v.getUint32(4 * i));
    }
    o += len;
  }
  return [];
}

function connect(h: Harness, sack: boolean) {
  const irs = 1000;
  h.send(h.seg({ flags: SYN, seq: irs, mss: 1460, wscale: 7, options: sack ? [4, 2] : [] }));
  const stream = h.transport.last;
  stream.resolve("ok");
  const [sa] = h.flush();
  h.send(h.seg({ flags: ACK, seq: irs + 1, ack: seqAdd(sa.seq, 1), window: 502 }));
  const data = (seq: number, s: string) =>
    h.seg({ flags: ACK, seq, ack: seqAdd(sa.seq, 1), window: 502, payload: text(s) });
  return { stream, data };
}

Deno.test("sack: a gap's duplicate ACK lists what we hold, the newest block first", () => {
  const h = new Harness();
  const { stream, data } = connect(h, true);
  const [a] = h.send(data(1011, "KLMNO")); // 1001..1010 lost
  assert.equal(a.ack, 1001);
  assert.deepEqual(sackOf(a.options), [1011, 1016]);
  const [b] = h.send(data(1021, "UVWXY")); // another hole at 1016..1020
  assert.deepEqual(sackOf(b.options), [1021, 1026, 1011, 1016]);
  const [c] = h.send(data(1016, "PQRST")); // fills the second hole: one block
  assert.deepEqual(sackOf(c.options), [1011, 1026]);
  const [d] = h.send(data(1001, "abcdefghij")); // the first hole: all delivered, no blocks
  assert.equal(d.ack, 1026);
  assert.deepEqual(sackOf(d.options), []);
  assert.equal(new TextDecoder().decode(stream.received()), "abcdefghijKLMNOPQRSTUVWXY");
});

Deno.test("sack: without SACK-permitted in the SYN, no blocks are ever sent", () => {
  const h = new Harness();
  const { data } = connect(h, false);
  const [a] = h.send(data(1011, "KLMNO"));
  assert.equal(a.ack, 1001);
  assert.deepEqual(sackOf(a.options), []);
});

Deno.test("reassembly: SACK blocks merge touching segments and stop at four", () => {
  const r = new Reassembly();
  for (const seq of [100, 200, 300, 400, 500]) r.add(seq, new Uint8Array(10), false);
  r.add(110, new Uint8Array(10), false); // touches 100..110: one block 100..120
  assert.deepEqual(r.sackBlocks(), [100, 120, 200, 210, 300, 310, 400, 410]);
  r.add(0xfffffff0, new Uint8Array(0x20), false); // across the wrap, most recent: first
  assert.deepEqual(r.sackBlocks().slice(0, 2), [0xfffffff0, 0x10]);
});
