import assert from "node:assert/strict";
import fc from "fast-check";
import { type Cidr, contains, formatIpv4, mask, overlaps, parseCidr } from "../../src/net/cidr.ts";
import { subtract, within } from "../../src/discover/split.ts";

const texts = (cs: Cidr[]) => cs.map((c) => c.text);

Deno.test("split: a /16 minus a /24 is the eight blocks around the hole, in address order", () => {
  assert.deepEqual(texts(subtract(parseCidr("10.0.0.0/16"), parseCidr("10.0.5.0/24"))), [
    "10.0.0.0/22",
    "10.0.4.0/24",
    "10.0.6.0/23",
    "10.0.8.0/21",
    "10.0.16.0/20",
    "10.0.32.0/19",
    "10.0.64.0/18",
    "10.0.128.0/17",
  ]);
  // Disjoint: untouched; covering or equal: nothing left.
  assert.deepEqual(texts(subtract(parseCidr("10.0.0.0/16"), parseCidr("10.1.0.0/24"))), [
    "10.0.0.0/16",
  ]);
  assert.deepEqual(subtract(parseCidr("10.0.5.0/24"), parseCidr("10.0.0.0/8")), []);
  assert.deepEqual(subtract(parseCidr("10.0.5.0/24"), parseCidr("10.0.5.0/24")), []);
  // The top of the address space does not wrap.
  assert.deepEqual(texts(subtract(parseCidr("255.255.255.252/30"), parseCidr("255.255.255.255"))), [
    "255.255.255.252/31",
    "255.255.255.254/32",
  ]);
});

const size = (c: Cidr) => 2 ** (32 - c.prefix);

/** A CIDR from any address and prefix (host bits cleared). */
const cidr = (ip: number, p: number) => parseCidr(`${formatIpv4((ip & mask(p)) >>> 0)}/${p}`);

Deno.test("split property: the pieces are exactly the original minus the exclude", () => {
  const arb = fc.tuple(
    fc.nat({ max: 0xffffffff }),
    fc.integer({ min: 0, max: 32 }),
    fc.nat({ max: 0xffffffff }),
    fc.integer({ min: 0, max: 32 }),
    // Mostly a cut inside the range, the case that splits.
    fc.boolean(),
    fc.array(fc.nat({ max: 0xffffffff }), { minLength: 8, maxLength: 8 }),
  );
  fc.assert(fc.property(arb, ([ip, p, ip2, q, inside, probes]) => {
    const from = cidr(ip, p);
    const cut = inside ? cidr((from.base | (ip2 & ~mask(p))) >>> 0, Math.max(p, q)) : cidr(ip2, q);
    const pieces = subtract(from, cut);
    for (const [n, a] of pieces.entries()) {
      assert.ok(within(a, from), `${a.text} outside ${from.text}`);
      assert.ok(!overlaps(a, cut), `${a.text} overlaps the exclude ${cut.text}`);
      for (const b of pieces.slice(n + 1)) assert.ok(!overlaps(a, b), `${a.text} ∩ ${b.text}`);
    }
    // Inside `from`, outside `cut`, disjoint, and as many addresses as from \ cut: the union.
    const removed = overlaps(from, cut) ? Math.min(size(from), size(cut)) : 0;
    assert.equal(pieces.reduce((s, c) => s + size(c), 0), size(from) - removed);
    // And pointwise, for addresses in and around the range.
    // Each probe also moved into `from` (its high bits from `from`, its low ones random).
    for (const r of [...probes, from.base, cut.base]) {
      const x = ((from.base & mask(p)) | (r & ~mask(p))) >>> 0;
      for (const a of [r, x]) {
        const expected = contains(from, a) && !contains(cut, a);
        assert.equal(pieces.some((c) => contains(c, a)), expected, formatIpv4(a));
      }
    }
  }));
});
