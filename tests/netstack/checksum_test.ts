import assert from "node:assert/strict";
import fc from "fast-check";
import { checksum, finish, pseudoSum, sum16 } from "../../src/netstack/checksum.ts";

/**
 * A second, deliberately naive RFC 1071 implementation: end-around carry after every word. A
 * non-zero sum never becomes 0 (one's complement has no way back to +0), hence the odd reduction.
 */
function naive(bytes: number[], acc = 0): number {
  const b = bytes.length % 2 ? [...bytes, 0] : bytes;
  let s = acc === 0 ? 0 : ((acc - 1) % 0xffff) + 1;
  for (let i = 0; i < b.length; i += 2) {
    s += b[i] * 256 + b[i + 1];
    if (s > 0xffff) s -= 0xffff;
  }
  return (0xffff - s) & 0xffff;
}

Deno.test("checksum: RFC 1071 §3 example gives 0x220d", () => {
  const b = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
  assert.equal(sum16(b, 0, b.length), 0x2ddf0);
  assert.equal(checksum(b, 0, b.length), 0x220d);
});

Deno.test("checksum: an odd trailing byte is the high byte of a zero-padded word", () => {
  const b = Uint8Array.of(0x12, 0x34, 0x56);
  assert.equal(sum16(b, 0, 3), 0x1234 + 0x5600);
  assert.equal(checksum(b, 0, 3), checksum(Uint8Array.of(0x12, 0x34, 0x56, 0), 0, 4));
  assert.equal(sum16(b, 1, 1), 0);
});

Deno.test("checksum: finish folds sums past 2^32 exactly", () => {
  // 2^16 ≡ 1 (mod 0xffff), so 2^40 ≡ 2^8; a `>>> 16` fold would lose the high bits.
  assert.equal(finish(2 ** 40), ~0x100 & 0xffff);
  assert.equal(finish(0xffff * 2 ** 20), 0);
  assert.equal(finish(0), 0xffff);
  assert.equal(finish(0x1ffff), ~1 & 0xffff);
});

Deno.test("checksum: pseudo-headers match the byte layouts of RFC 793 and RFC 8200 §8.1", () => {
  const s4 = Uint8Array.of(10, 99, 0, 1);
  const d4 = Uint8Array.of(10, 200, 0, 5);
  const ph4 = Uint8Array.of(...s4, ...d4, 0, 6, 0x01, 0x2c);
  assert.equal(finish(pseudoSum(4, s4, d4, 6, 300)), checksum(ph4, 0, ph4.length));
  const s6 = Uint8Array.from({ length: 16 }, (_, i) => i * 17);
  const d6 = Uint8Array.from({ length: 16 }, (_, i) => 255 - i);
  const len = 0x12345;
  const ph6 = Uint8Array.of(...s6, ...d6, 0, 1, 0x23, 0x45, 0, 0, 0, 58);
  assert.equal(finish(pseudoSum(6, s6, d6, 58, len)), checksum(ph6, 0, ph6.length));
});

Deno.test("checksum property: agrees with a naive implementation on any range and accumulator", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 3000 }),
      fc.nat(),
      fc.nat(),
      fc.nat({ max: 0xffffff }),
      (b, x, y, acc) => {
        const start = b.length ? x % (b.length + 1) : 0;
        const end = start + (b.length - start ? y % (b.length - start + 1) : 0);
        assert.equal(checksum(b, start, end, acc), naive([...b.subarray(start, end)], acc));
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("checksum property: data carrying its own checksum verifies to 0", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 2, maxLength: 1500 }), fc.nat(), (b, at) => {
      const o = (at % (b.length >> 1)) * 2; // an even, word-aligned checksum field
      b[o] = b[o + 1] = 0;
      const c = checksum(b, 0, b.length);
      b[o] = c >> 8;
      b[o + 1] = c & 0xff;
      assert.equal(checksum(b, 0, b.length), 0);
    }),
    { numRuns: 300 },
  );
});

Deno.test("checksum property: sums split at an even offset add up", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(), (b, at) => {
      const mid = (at % ((b.length >> 1) + 1)) * 2;
      const whole = checksum(b, 0, b.length);
      assert.equal(checksum(b, mid, b.length, sum16(b, 0, mid)), whole);
    }),
    { numRuns: 300 },
  );
});
