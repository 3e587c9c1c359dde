/**
 * TCP sequence arithmetic modulo 2^32 (specs/netstack.md §4.2). Values are kept as uint32 in
 * plain numbers; never compare sequence numbers with a bare `<`.
 */

export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** Signed distance a − b, correct across the wrap while |a − b| < 2^31. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** Is x in [start, start + len)? (len < 2^31) */
export function seqInWindow(x: number, start: number, len: number): boolean {
  return ((x - start) >>> 0) < len;
}
