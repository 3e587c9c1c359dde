/** CIDR subtraction for `--exclude`. Pure. */
import { type Cidr, formatIpv4, mask } from "../net/cidr.ts";

function cidrOf(base: number, prefix: number): Cidr {
  return { base, prefix, text: `${formatIpv4(base)}/${prefix}` };
}

/** True when every address of `inner` is in `outer`. */
export function within(inner: Cidr, outer: Cidr): boolean {
  return inner.prefix >= outer.prefix && ((inner.base & mask(outer.prefix)) >>> 0) === outer.base;
}

/**
 * `from` minus `cut`, as the fewest CIDRs, in address order. Two CIDRs are nested or disjoint, so:
 * all of `from` when they are disjoint, nothing when `cut` covers it, and otherwise one block
 * per bit between the two prefixes (the halves that do not hold `cut`, halving down to it).
 */
export function subtract(from: Cidr, cut: Cidr): Cidr[] {
  if (within(from, cut)) return [];
  if (!within(cut, from)) return [from];
  const out: Cidr[] = [];
  let base = from.base;
  for (let p = from.prefix + 1; p <= cut.prefix; p++) {
    const bit = 2 ** (32 - p);
    const upper = (base + bit) >>> 0;
    // Which half of the current block holds the cut decides which half is kept whole.
    if (((cut.base & mask(p)) >>> 0) === upper) {
      out.push(cidrOf(base, p));
      base = upper;
    } else {
      out.push(cidrOf(upper, p));
    }
  }
  return out.sort((a, b) => a.base - b.base);
}
