/**
 * IPv4 address rewriting for a tunnel spread over several instances (spread.ts). Each instance's
 * agent gives the tunnel its own address and drops packets from any other source, while the
 * laptop's tun has one address A: a flow placed on an instance whose address is B leaves with
 * source A rewritten to B and comes back with destination B rewritten to A. Checksums are
 * updated incrementally (RFC 1624, eqn. 3): the IPv4 header's, TCP's and UDP's (their
 * pseudo-header holds the addresses; ICMP has none). ICMP errors quote the packet that caused
 * them, so the quoted header is rewritten too (otherwise the laptop's kernel could not match a
 * "fragmentation needed" to its socket, and path MTU discovery would stall). Pure; in place.
 */
import { parseIpv4 } from "../net/cidr.ts";

const TCP = 6;
const UDP = 17;
const ICMP = 1;
/** ICMP types that quote the offending datagram: unreachable, source quench, redirect, time exceeded, parameter problem. */
const ICMP_ERRORS = new Set([3, 4, 5, 11, 12]);

function read16(p: Uint8Array, at: number): number {
  return (p[at] << 8) | p[at + 1];
}

function write16(p: Uint8Array, at: number, v: number): void {
  p[at] = v >> 8;
  p[at + 1] = v & 0xff;
}

function read32(p: Uint8Array, at: number): number {
  return ((p[at] << 24) | (p[at + 1] << 16) | (p[at + 2] << 8) | p[at + 3]) >>> 0;
}

function write32(p: Uint8Array, at: number, v: number): void {
  p[at] = v >>> 24;
  p[at + 1] = (v >>> 16) & 0xff;
  p[at + 2] = (v >>> 8) & 0xff;
  p[at + 3] = v & 0xff;
}

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), for 16-bit words `from` → `to` (same length). */
export function adjustChecksum(sum: number, from: number[], to: number[]): number {
  let s = ~sum & 0xffff;
  for (const m of from) s += ~m & 0xffff;
  for (const m of to) s += m;
  return ~fold(s) & 0xffff;
}

function words32(v: number): number[] {
  return [v >>> 16, v & 0xffff];
}

/** The checksum at `at` after a covered 32-bit value changed from `from` to `to`. */
function fix32(p: Uint8Array, at: number, from: number, to: number): void {
  write16(p, at, adjustChecksum(read16(p, at), words32(from), words32(to)));
}

/** Replace a 16-bit field, fixing the checksums at `sums` that cover it. */
function replace16(p: Uint8Array, at: number, v: number, sums: number[]): void {
  const old = read16(p, at);
  if (old === v) return;
  for (const s of sums) write16(p, s, adjustChecksum(read16(p, s), [old], [v]));
  write16(p, at, v);
}

/**
 * Where the TCP or UDP checksum of the IPv4 packet at `ip` sits, when its transport header is
 * in `p` (first fragment, long enough) and it carries one; UDP's 0 means "none" and stays.
 */
function l4ChecksumAt(p: Uint8Array, ip: number, end: number): number | undefined {
  const ihl = (p[ip] & 0x0f) * 4;
  if (((p[ip + 6] & 0x1f) << 8 | p[ip + 7]) !== 0) return undefined; // not the first fragment
  const l4 = ip + ihl;
  const proto = p[ip + 9];
  const at = proto === TCP ? l4 + 16 : proto === UDP ? l4 + 6 : -1;
  if (at < 0 || at + 2 > end) return undefined;
  if (proto === UDP && read16(p, at) === 0) return undefined;
  return at;
}

/** Rewrite the address at offset `field` (12: source, 16: destination) of the header at `ip`. */
function rewriteHeader(
  p: Uint8Array,
  ip: number,
  field: 12 | 16,
  to: number,
  outer: number[],
): void {
  const from = read32(p, ip + field);
  const l4 = l4ChecksumAt(p, ip, p.length);
  if (l4 !== undefined) {
    let v = adjustChecksum(read16(p, l4), words32(from), words32(to));
    if (v === 0 && p[ip + 9] === UDP) v = 0xffff; // 0 would mean "no checksum"
    replace16(p, l4, v, outer);
  }
  const ipSum = ip + 10;
  replace16(
    p,
    ipSum,
    adjustChecksum(read16(p, ipSum), words32(from), words32(to)),
    outer,
  );
  write32(p, ip + field, to);
  // The address bytes themselves are covered by the enclosing checksums (ICMP's, for a quote).
  for (const s of outer) fix32(p, s, from, to);
}

function isIpv4(p: Uint8Array): boolean {
  return p.length >= 20 && p[0] >> 4 === 4 && (p[0] & 0x0f) >= 5 && p.length >= (p[0] & 0x0f) * 4;
}

/** The quoted datagram of an ICMP error (its IPv4 header offset), if it is one and is whole. */
function quoted(p: Uint8Array): number | undefined {
  const ihl = (p[0] & 0x0f) * 4;
  if (p[9] !== ICMP || ((p[6] & 0x1f) << 8 | p[7]) !== 0) return undefined;
  if (p.length < ihl + 8 + 20 || !ICMP_ERRORS.has(p[ihl])) return undefined;
  const q = ihl + 8;
  if (p[q] >> 4 !== 4 || (p[q] & 0x0f) < 5 || p.length < q + (p[q] & 0x0f) * 4) return undefined;
  return q;
}

/**
 * Rewrite one address of an IPv4 packet in place: `field` 12 (source) or 16 (destination), from
 * `from` to `to`; a packet whose address is not `from` is left alone. For an ICMP error, the
 * quoted datagram's opposite address (it went the other way) is rewritten too. Returns whether
 * anything changed.
 */
export function rewriteAddress(p: Uint8Array, field: 12 | 16, from: number, to: number): boolean {
  if (from === to || !isIpv4(p) || read32(p, field) !== from) return false;
  const ihl = (p[0] & 0x0f) * 4;
  const q = quoted(p);
  if (q !== undefined) {
    const inner = field === 12 ? 16 : 12;
    if (read32(p, q + inner) === from) {
      // Only ICMP's own checksum covers the quote, and ICMP has no pseudo-header.
      rewriteHeader(p, q, inner, to, [ihl + 2]);
    }
  }
  rewriteHeader(p, 0, field, to, []);
  return true;
}

/** Outbound: a packet from the tun (source `tunAddress`) leaving through an instance that gave the tunnel `instanceAddress`. */
export function toInstance(p: Uint8Array, tunAddress: number, instanceAddress: number): boolean {
  return rewriteAddress(p, 12, tunAddress, instanceAddress);
}

/** Inbound: a packet for `instanceAddress` coming back to the tun (`tunAddress`). */
export function fromInstance(p: Uint8Array, instanceAddress: number, tunAddress: number): boolean {
  return rewriteAddress(p, 16, instanceAddress, tunAddress);
}

/** Dotted quad → 32-bit unsigned; an agent's address that is not one is a protocol error. */
export function ipv4Number(text: string): number {
  const n = parseIpv4(text);
  if (n === undefined) throw new Error(`${JSON.stringify(text)} is not an IPv4 address`);
  return n;
}
