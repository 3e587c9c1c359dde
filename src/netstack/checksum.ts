/**
 * The RFC 1071 internet checksum (specs/netstack.md §2.4). Sums are kept unfolded in a plain
 * number: a double holds 2^53, far more than any packet's worth of 16-bit words, so folding can
 * wait until `finish`.
 */

/**
 * Unfolded sum of the big-endian 16-bit words of `buf[start, end)`, added to `acc`. An odd
 * trailing byte counts as the high byte of a word whose low byte is zero.
 */
export function sum16(buf: Uint8Array, start: number, end: number, acc = 0): number {
  let s = acc;
  let i = start;
  const pairs = end - 1;
  for (; i < pairs; i += 2) s += (buf[i] << 8) | buf[i + 1];
  if (i < end) s += buf[i] << 8;
  return s;
}

/**
 * Fold an unfolded sum to 16 bits and complement it. The division keeps the carry exact past
 * 2^32, where `>>> 16` would silently drop bits.
 */
export function finish(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return ~s & 0xffff;
}

/** The checksum of `buf[start, end)` on top of `acc`. Over data that includes a valid checksum it is 0. */
export function checksum(buf: Uint8Array, start: number, end: number, acc = 0): number {
  return finish(sum16(buf, start, end, acc));
}

/**
 * Unfolded sum of the TCP/UDP/ICMPv6 pseudo-header. IPv4: src, dst, zero, proto, length.
 * IPv6: src, dst, 32-bit length, three zeros, the upper-layer protocol (not the first NH).
 */
export function pseudoSum(
  family: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  l4Len: number,
): number {
  const n = family === 4 ? 4 : 16;
  const s = sum16(dst, 0, n, sum16(src, 0, n));
  return s + proto + Math.floor(l4Len / 65536) + (l4Len & 0xffff);
}
