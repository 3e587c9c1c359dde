/**
 * Recognising the agent's "administratively prohibited" answers (agent/icmp_reject.ts) among the
 * packets the client receives, so it can count them as denied by the agent's policy and say
 * which destination was denied. Pure; never throws, whatever the bytes.
 */
import { formatIP } from "../../ffi/struct.ts";

export interface ProhibitedDestination {
  /** Dotted quad or RFC 5952 IPv6 text. */
  dst: string;
  /** The destination port, for TCP, UDP and SCTP when the quote reaches it. */
  port?: number;
  protocol: "tcp" | "udp" | "icmp" | number;
}

const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];

/**
 * Is `p` an ICMP type 3 code 13 or an ICMPv6 type 1 code 1 (next header 58 right after the IPv6
 * header)? Called on every packet the client receives: the version and protocol bytes turn
 * nearly everything away before anything else is read.
 */
export function isAdminProhibited(p: Uint8Array): boolean {
  if (p.length < 28) return false;
  const v = p[0] >> 4;
  if (v === 4) {
    if (p[9] !== 1) return false;
    const hl = (p[0] & 15) * 4;
    return hl >= 20 && p.length >= hl + 8 && (u16(p, 6) & 0x1fff) === 0 && p[hl] === 3 &&
      p[hl + 1] === 13;
  }
  return v === 6 && p[6] === 58 && p.length >= 48 && p[40] === 1 && p[41] === 1;
}

/**
 * The destination of the packet quoted inside an admin-prohibited error `p` (for "denied:
 * 10.0.9.5:5432/tcp"); undefined when `p` is not one or its quote is too short to say.
 */
export function prohibitedDestination(p: Uint8Array): ProhibitedDestination | undefined {
  if (!isAdminProhibited(p)) return undefined;
  // Bytes past the outer length (link padding) are not part of the quote.
  if (p[0] >> 4 === 4) return quoted4(p.subarray(0, u16(p, 2)), (p[0] & 15) * 4 + 8);
  return quoted6(p.subarray(0, 40 + u16(p, 4)), 48);
}

function quoted4(p: Uint8Array, q: number): ProhibitedDestination | undefined {
  if (p.length < q + 20 || p[q] >> 4 !== 4) return undefined;
  const hl = (p[q] & 15) * 4;
  if (hl < 20) return undefined;
  const first = (u16(p, q + 6) & 0x1fff) === 0;
  return describe(formatIP(p.slice(q + 16, q + 20)), p[q + 9], p, first ? q + hl : -1, 1);
}

function quoted6(p: Uint8Array, q: number): ProhibitedDestination | undefined {
  if (p.length < q + 40 || p[q] >> 4 !== 6) return undefined;
  const dst = formatIP(p.slice(q + 24, q + 40));
  // Past any extension headers to the upper layer, as far as the quote goes.
  let nh = p[q + 6];
  let at = q + 40;
  for (let n = 0; n < 16; n++) {
    if (nh !== 0 && nh !== 43 && nh !== 60 && nh !== 44 && nh !== 51) break;
    if (at + 8 > p.length) return { dst, protocol: nh };
    const next = p[at];
    if (nh === 44 && (u16(p, at + 2) & 0xfff8) !== 0) return describe(dst, next, p, -1, 58);
    at += nh === 44 ? 8 : nh === 51 ? (p[at + 1] + 2) * 4 : (p[at + 1] + 1) * 8;
    nh = next;
  }
  return describe(dst, nh, p, at, 58);
}

/** `l4` is the offset of the upper-layer header in `p`, -1 when the quote has none. */
function describe(
  dst: string,
  proto: number,
  p: Uint8Array,
  l4: number,
  icmp: number,
): ProhibitedDestination {
  const protocol = proto === 6 ? "tcp" : proto === 17 ? "udp" : proto === icmp ? "icmp" : proto;
  const ports = proto === 6 || proto === 17 || proto === 132;
  if (ports && l4 >= 0 && l4 + 4 <= p.length) return { dst, port: u16(p, l4 + 2), protocol };
  return { dst, protocol };
}
