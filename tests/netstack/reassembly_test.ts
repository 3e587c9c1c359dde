import assert from "node:assert/strict";
import fc from "fast-check";
import { MAX_HELD_SEGMENTS, Reassembly } from "../../src/netstack/reassembly.ts";
import { seqAdd } from "../../src/netstack/seq.ts";

const bytes = (n: number, from = 0) => new Uint8Array(n).map((_, i) => (from + i) & 0xff);

Deno.test("reassembly: held segments follow the hole in order, once, FIN last", () => {
  const r = new Reassembly();
  assert.ok(r.add(110, bytes(10, 10), true));
  assert.ok(r.add(105, bytes(5, 5), false));
  assert.deepEqual(r.take(100), { chunks: [], fin: false }, "a hole at 100 remains");
  const got = r.take(105);
  assert.deepEqual(got.chunks.map((c) => [...c]), [[...bytes(5, 5)], [...bytes(10, 10)]]);
  assert.equal(got.fin, true);
  assert.equal(r.segments, 0);
  assert.equal(r.bytes, 0);
});

Deno.test("reassembly: overlaps are trimmed, old segments dropped, duplicates kept once", () => {
  const r = new Reassembly();
  r.add(10, bytes(10, 10), false);
  r.add(10, bytes(10, 10), false);
  assert.equal(r.segments, 1, "an exact duplicate is not held twice");
  r.add(15, bytes(10, 15), false);
  r.add(2, bytes(3, 2), false); // wholly before rcvNxt by the time we take
  const got = r.take(12);
  assert.deepEqual([...got.chunks.flatMap((c) => [...c])], [...bytes(13, 12)]);
});

Deno.test("reassembly: bounded number of segments", () => {
  const r = new Reassembly();
  for (let i = 0; i < MAX_HELD_SEGMENTS; i++) assert.ok(r.add(1000 + 10 * i, bytes(5), false));
  assert.equal(r.add(5000, bytes(5), false), false);
});

Deno.test("reassembly: any cut and order of a stream, across the 2^32 wrap, comes out whole", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 30 }),
      fc.infiniteStream(fc.nat()),
      (start, sizes, rand) => {
        const total = sizes.reduce((a, b) => a + b, 0);
        const stream = bytes(total, 7);
        const segs: { seq: number; data: Uint8Array; fin: boolean }[] = [];
        let off = 0;
        for (const [i, n] of sizes.entries()) {
          segs.push({
            seq: seqAdd(start, off),
            data: stream.subarray(off, off + n),
            fin: i === sizes.length - 1,
          });
          off += n;
        }
        // The first segment is the "hole"; the rest arrive shuffled (some twice).
        const rest = segs.slice(1);
        const it = rand[Symbol.iterator]();
        for (let i = rest.length - 1; i > 0; i--) {
          const j = it.next().value % (i + 1);
          [rest[i], rest[j]] = [rest[j], rest[i]];
        }
        const r = new Reassembly();
        for (const s of rest) {
          r.add(s.seq, s.data, s.fin);
          if (it.next().value % 4 === 0) r.add(s.seq, s.data, s.fin);
        }
        const got = r.take(seqAdd(start, segs[0].data.length));
        const out = [...segs[0].data, ...got.chunks.flatMap((c) => [...c])];
        assert.deepEqual(out, [...stream]);
        assert.equal(got.fin, sizes.length > 1, "the FIN came with the last held segment");
        assert.equal(r.bytes, 0);
      },
    ),
    { numRuns: 300 },
  );
});
