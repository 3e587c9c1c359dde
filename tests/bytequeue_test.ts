import assert from "node:assert/strict";
import fc from "fast-check";
import { ByteQueue, concat } from "../src/bytequeue.ts";

Deno.test("ByteQueue: take, skip and copyOut agree with one flat buffer however it is cut", () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 0, maxLength: 50 }), { maxLength: 20 }),
      fc.array(fc.tuple(fc.constantFrom("take", "skip", "copy"), fc.nat(60), fc.nat(60))),
      (chunks, ops) => {
        const q = new ByteQueue();
        for (const c of chunks) q.push(c);
        let flat = concat(chunks);
        for (const [op, a, b] of ops) {
          assert.equal(q.length, flat.length);
          if (op === "copy") {
            const off = Math.min(a, flat.length);
            const n = Math.min(b, flat.length - off);
            const out = new Uint8Array(n + 2);
            q.copyOut(off, n, out, 1);
            assert.deepEqual(out.subarray(1, 1 + n), flat.subarray(off, off + n));
            assert.equal(q.length, flat.length, "copyOut consumes nothing");
            continue;
          }
          const n = Math.min(a, flat.length);
          if (op === "take") assert.deepEqual(q.take(n), flat.subarray(0, n));
          else q.skip(n);
          flat = flat.subarray(n);
        }
        q.clear();
        assert.equal(q.length, 0);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("ByteQueue: copyOut past the end is a RangeError", () => {
  const q = new ByteQueue();
  q.push(new Uint8Array(4));
  assert.throws(() => q.copyOut(2, 3, new Uint8Array(3)), RangeError);
});
