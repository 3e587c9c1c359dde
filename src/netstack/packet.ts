/**
 * Parse, validate and build bare IPv4/IPv6 packets (specs/netstack.md §2, §10.2, §11). Pure:
 * no I/O, no state. The parser fills a reused scratch record so the hot path allocates only the
 * two address views.
 */

import { formatIP, parseIPv4, parseIPv6 } from "../../ffi/struct.ts";
import { checksum, pseudoSum } from "./checksum.ts";

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;
export const URG = 0x20;

/** A reused scratch record: `parse` overwrites every field. */
export interface ParsedPacket {
  family: 4 | 6;
  /** Views into the packet, 4 or 16 bytes: copy them before the packet's memory is reused. */
  src: Uint8Array;
  dst: Uint8Array;
  /** Upper-layer protocol, after any IPv6 extension headers. */
  proto: number;
  /** Offset and length of the upper-layer header and data (UDP: trimmed to the UDP length). */
  l4: number;
  l4Len: number;
  /** TCP/UDP, else 0. */
  sport: number;
  dport: number;
  /** TCP, as uint32. */
  seq: number;
  ack: number;
  /** TCP byte 13, whole: CWR/ECE stay in so callers classify on `flags & 0x17` (§2.3). */
  flags: number;
  /** TCP window field, unscaled. */
  window: number;
  /** TCP MSS option; 0 when absent or 0; values below 48 are raised to 48. */
  mss: number;
  /** TCP window-scale shift; -1 when absent; clamped to 14. */
  wscale: number;
  /** TCP SACK-permitted option present (kind 4). */
  sackOk: boolean;
  /** Payload offset and length: after the TCP/UDP header, after the 8-byte ICMP header. */
  data: number;
  dataLen: number;
  /** ICMP/ICMPv6, else -1. */
  icmpType: number;
  icmpCode: number;
}

const EMPTY = new Uint8Array(0);

export function newParsed(): ParsedPacket {
  const p = {} as ParsedPacket;
  reset(p);
  return p;
}

// Every field, in one fixed order, so all records share one V8 shape.
function reset(p: ParsedPacket): void {
  p.family = 4;
  p.src = p.dst = EMPTY;
  p.proto = p.l4 = p.l4Len = 0;
  p.sport = p.dport = p.seq = 0;
  p.ack = p.flags = p.window = 0;
  p.mss = p.data = p.dataLen = 0;
  p.wscale = p.icmpType = p.icmpCode = -1;
  p.sackOk = false;
}

const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const u32 = (b: Uint8Array, o: number) =>
  ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

/** The address as a uint32 (IPv4, or 4 bytes of an IPv6 address at `off`). */
export function v4Number(a: Uint8Array, off = 0): number {
  return u32(a, off);
}

const MAX_EXT_HEADERS = 8;
const MIN_MSS = 48; // Linux tcp_min_snd_mss: a tiny MSS only multiplies per-segment work

/**
 * Validate and parse one bare IP packet (no link header). Returns null when accepted, else a
 * stable drop reason for counters. Never throws, whatever the bytes. Reasons:
 * - "short": fewer bytes than a header or a length field needs (IPv4/IPv6 total length > read)
 * - "version": neither 4 nor 6
 * - "header": IHL < 5, total length < IHL·4, IPv6 payload length 0 (jumbogram)
 * - "ip-checksum": bad IPv4 header checksum
 * - "fragment": IPv4 MF/offset, IPv6 Fragment header
 * - "ext-headers": more than 8, Hop-by-Hop not first, one past the payload, Routing with
 *   Segments Left ≠ 0
 * - "multicast": multicast or broadcast destination (224/4, 255.255.255.255, ff00::/8)
 * - "link-local": fe80::/10 destination
 * - "source": 0/8, 127/8, 224/4, 240/4 (incl. broadcast), ::, ::1, ff00::/8, ::ffff:0:0/96
 * - "proto-header": TCP/UDP/ICMP header truncated or inconsistent (doff, UDP length)
 * - "checksum": bad TCP, UDP or ICMP checksum; IPv6 UDP checksum 0
 * - "port0": a TCP or UDP port is 0
 * - "flags": SYN with FIN or RST
 * - "icmp-error": ICMPv4 3, 4, 5, 11, 12; ICMPv6 < 128
 * - "ndp": ICMPv6 130-137 and 143 (MLD, RS/RA, NS/NA, redirect, MLDv2)
 * Other upper-layer protocols are accepted with only `proto`/`l4` set: the caller answers them
 * with an unreachable (§10.1).
 */
export function parse(pkt: Uint8Array, out: ParsedPacket): string | null {
  reset(out);
  if (pkt.length < 1) return "short";
  const version = pkt[0] >> 4;
  let end: number;
  if (version === 4) {
    if (pkt.length < 20) return "short";
    const hl = (pkt[0] & 15) * 4;
    end = u16(pkt, 2);
    if (hl < 20 || end < hl) return "header";
    if (end > pkt.length) return "short";
    if (checksum(pkt, 0, hl) !== 0) return "ip-checksum";
    if ((u16(pkt, 6) & 0x3fff) !== 0) return "fragment";
    out.family = 4;
    out.src = pkt.subarray(12, 16);
    out.dst = pkt.subarray(16, 20);
    const d = pkt[16];
    if (d >= 224 && (d < 240 || u32(pkt, 16) === 0xffffffff)) return "multicast";
    const s = pkt[12];
    if (s === 0 || s === 127 || s >= 224) return "source";
    out.proto = pkt[9];
    out.l4 = hl;
  } else if (version === 6) {
    if (pkt.length < 40) return "short";
    const plen = u16(pkt, 4);
    if (plen === 0) return "header";
    end = 40 + plen;
    if (end > pkt.length) return "short";
    out.family = 6;
    out.src = pkt.subarray(8, 24);
    out.dst = pkt.subarray(24, 40);
    if (pkt[24] === 0xff) return "multicast";
    if (pkt[24] === 0xfe && (pkt[25] & 0xc0) === 0x80) return "link-local";
    if (badV6Source(pkt)) return "source";
    let nh = pkt[6];
    let off = 40;
    // Walk the extension headers we may skip; anything else is the upper layer (§2.2).
    for (let n = 0; nh === 0 || nh === 60 || nh === 43 || nh === 44; n++) {
      if (nh === 44) return "fragment";
      if (n === MAX_EXT_HEADERS || (nh === 0 && n > 0) || off + 8 > end) return "ext-headers";
      const len = (pkt[off + 1] + 1) * 8;
      if (off + len > end || (nh === 43 && pkt[off + 3] !== 0)) return "ext-headers";
      nh = pkt[off];
      off += len;
    }
    out.proto = nh;
    out.l4 = off;
  } else {
    return "version";
  }
  out.l4Len = end - out.l4;
  out.data = out.l4;
  out.dataLen = out.l4Len;
  if (out.proto === IPPROTO_TCP) return parseTcp(pkt, out);
  if (out.proto === IPPROTO_UDP) return parseUdp(pkt, out);
  if (out.proto === (out.family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6)) return parseIcmp(pkt, out);
  return null;
}

function badV6Source(pkt: Uint8Array): boolean {
  if (pkt[8] === 0xff) return true;
  for (let i = 8; i < 18; i++) if (pkt[i] !== 0) return false;
  const w5 = u16(pkt, 18);
  if (w5 === 0xffff) return true; // v4-mapped: a v4 packet in disguise
  if (w5 !== 0) return false;
  // :: and ::1 (loopback never arrives through a TUN legitimately)
  return u16(pkt, 20) === 0 && u16(pkt, 22) <= 1;
}

function l4Sum(pkt: Uint8Array, p: ParsedPacket): number {
  return checksum(pkt, p.l4, p.l4 + p.l4Len, pseudoSum(p.family, p.src, p.dst, p.proto, p.l4Len));
}

function parseTcp(pkt: Uint8Array, p: ParsedPacket): string | null {
  const t = p.l4;
  if (p.l4Len < 20) return "proto-header";
  const hl = (pkt[t + 12] >> 4) * 4;
  if (hl < 20 || hl > p.l4Len) return "proto-header";
  if (l4Sum(pkt, p) !== 0) return "checksum";
  p.sport = u16(pkt, t);
  p.dport = u16(pkt, t + 2);
  if (p.sport === 0 || p.dport === 0) return "port0";
  p.flags = pkt[t + 13];
  if ((p.flags & SYN) !== 0 && (p.flags & (FIN | RST)) !== 0) return "flags";
  p.seq = u32(pkt, t + 4);
  p.ack = u32(pkt, t + 8);
  p.window = u16(pkt, t + 14);
  p.data = t + hl;
  p.dataLen = p.l4Len - hl;
  // A malformed option stops the walk but keeps the segment (gVisor ParseSynOptions).
  const oend = t + hl;
  for (let o = t + 20; o < oend;) {
    const kind = pkt[o];
    if (kind === 0) break;
    if (kind === 1) {
      o++;
      continue;
    }
    if (o + 1 >= oend) break;
    const len = pkt[o + 1];
    if (len < 2 || o + len > oend) break;
    if (kind === 2 && len === 4) {
      const v = u16(pkt, o + 2);
      p.mss = v === 0 ? 0 : Math.max(v, MIN_MSS);
    } else if (kind === 3 && len === 3) {
      p.wscale = Math.min(pkt[o + 2], 14);
    } else if (kind === 4 && len === 2) {
      p.sackOk = true;
    }
    o += len;
  }
  return null;
}

function parseUdp(pkt: Uint8Array, p: ParsedPacket): string | null {
  const u = p.l4;
  if (p.l4Len < 8) return "proto-header";
  const ulen = u16(pkt, u + 4);
  if (ulen < 8 || ulen > p.l4Len) return "proto-header";
  // Bytes past the UDP length are IP padding: the checksum and payload stop at ulen (as Linux).
  p.l4Len = ulen;
  const zero = u16(pkt, u + 6) === 0;
  if (zero ? p.family === 6 : l4Sum(pkt, p) !== 0) return "checksum";
  p.sport = u16(pkt, u);
  p.dport = u16(pkt, u + 2);
  if (p.sport === 0 || p.dport === 0) return "port0";
  p.data = u + 8;
  p.dataLen = ulen - 8;
  return null;
}

function parseIcmp(pkt: Uint8Array, p: ParsedPacket): string | null {
  const i = p.l4;
  if (p.l4Len < 8) return "proto-header";
  const sum = p.family === 4 ? checksum(pkt, i, i + p.l4Len) : l4Sum(pkt, p);
  if (sum !== 0) return "checksum";
  const type = (p.icmpType = pkt[i]);
  p.icmpCode = pkt[i + 1];
  p.data = i + 8;
  p.dataLen = p.l4Len - 8;
  if (p.family === 4 ? isV4Error(type) : type < 128) return "icmp-error";
  if (p.family === 6 && ((type >= 130 && type <= 137) || type === 143)) return "ndp";
  return null;
}

const isV4Error = (t: number) => t === 3 || t === 4 || t === 5 || t === 11 || t === 12;

/** A TCP segment to build. `window` is the 16-bit field as sent (already scaled down). */
export interface TcpSegment {
  family: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  mss?: number;
  wscale?: number;
  /** SYN-ACK: `01 01 04 02` (SACK-permitted) after the MSS, as Linux lays it out. */
  sackPermitted?: boolean;
  /** SACK blocks (RFC 2018): `01 01 05 <len>` then [left, right) pairs, at most 4. */
  sack?: number[];
  payload?: Uint8Array;
  /**
   * Instead of `payload`: `payloadLength` bytes that `writePayload` copies straight into the
   * packet at `at`, so a sender's buffer is copied once per segment, not twice.
   */
  payloadLength?: number;
  writePayload?(out: Uint8Array, at: number): void;
}

/**
 * Write the IP header in front of an L4 part already in `pkt` at 20 or 40, and fill the L4
 * checksum at `ck` (relative to the L4 start) over the pseudo-header unless it is ICMPv4.
 */
function ipWrap(
  pkt: Uint8Array,
  family: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  proto: number,
  df: boolean,
  ck: number,
): Uint8Array {
  const l4 = family === 4 ? 20 : 40;
  const l4Len = pkt.length - l4;
  const acc = proto === IPPROTO_ICMP ? 0 : pseudoSum(family, src, dst, proto, l4Len);
  let c = checksum(pkt, l4, pkt.length, acc);
  if (c === 0 && proto === IPPROTO_UDP) c = 0xffff; // 0 would mean "no checksum"
  put16(pkt, l4 + ck, c);
  if (family === 4) {
    pkt[0] = 0x45;
    put16(pkt, 2, pkt.length);
    if (df) pkt[6] = 0x40; // any ID is fine with DF set (RFC 6864 §4.1)
    pkt[8] = 64;
    pkt[9] = proto;
    pkt.set(src, 12);
    pkt.set(dst, 16);
    put16(pkt, 10, checksum(pkt, 0, 20));
  } else {
    pkt[0] = 0x60;
    put16(pkt, 4, l4Len);
    pkt[6] = proto;
    pkt[7] = 64;
    pkt.set(src, 8);
    pkt.set(dst, 24);
  }
  return pkt;
}

function put16(b: Uint8Array, o: number, v: number) {
  b[o] = v >> 8;
  b[o + 1] = v;
}

function put32(b: Uint8Array, o: number, v: number) {
  put16(b, o, Math.floor((v >>> 0) / 65536));
  put16(b, o + 2, v & 0xffff);
}

/**
 * A TCP segment with options `02 04 <mss>`, `01 01 04 02` (SACK-permitted), `01 03 03 <wscale>`
 * and SACK blocks, each only when given (§2.6).
 */
export function buildTcp(s: TcpSegment): Uint8Array {
  const ip = s.family === 4 ? 20 : 40;
  const blocks = Math.min(4, Math.floor((s.sack?.length ?? 0) / 2));
  const opts = (s.mss !== undefined ? 4 : 0) + (s.sackPermitted ? 4 : 0) +
    (s.wscale !== undefined ? 4 : 0) + (blocks > 0 ? 4 + 8 * blocks : 0);
  const payload = s.payload ?? EMPTY;
  const payloadLength = s.payload ? payload.length : s.payloadLength ?? 0;
  const pkt = new Uint8Array(ip + 20 + opts + payloadLength);
  const t = ip;
  put16(pkt, t, s.sport);
  put16(pkt, t + 2, s.dport);
  put32(pkt, t + 4, s.seq);
  put32(pkt, t + 8, s.ack);
  pkt[t + 12] = ((20 + opts) / 4) << 4;
  pkt[t + 13] = s.flags;
  put16(pkt, t + 14, s.window);
  let o = t + 20;
  if (s.mss !== undefined) put32(pkt, (o += 4) - 4, 0x02040000 + s.mss);
  if (s.sackPermitted) put32(pkt, (o += 4) - 4, 0x01010402);
  // The NOPs keep the options 4-byte aligned, as Linux sends them.
  if (s.wscale !== undefined) put32(pkt, (o += 4) - 4, 0x01030300 + s.wscale);
  if (blocks > 0) {
    put32(pkt, (o += 4) - 4, 0x01010500 + 2 + 8 * blocks);
    for (let i = 0; i < 2 * blocks; i++) put32(pkt, (o += 4) - 4, s.sack![i]);
  }
  if (s.payload) pkt.set(payload, t + 20 + opts);
  else if (payloadLength > 0) s.writePayload!(pkt, t + 20 + opts);
  return ipWrap(pkt, s.family, s.src, s.dst, IPPROTO_TCP, true, 16);
}

/** A UDP datagram (DF clear, like Linux's DNS replies). */
export function buildUdp(
  family: 4 | 6,
  src: Uint8Array,
  dst: Uint8Array,
  sport: number,
  dport: number,
  payload: Uint8Array,
): Uint8Array {
  const u = family === 4 ? 20 : 40;
  const pkt = new Uint8Array(u + 8 + payload.length);
  put16(pkt, u, sport);
  put16(pkt, u + 2, dport);
  put16(pkt, u + 4, 8 + payload.length);
  pkt.set(payload, u + 8);
  return ipWrap(pkt, family, src, dst, IPPROTO_UDP, false, 6);
}

/**
 * ICMP "administratively prohibited" (v4 3/13, v6 1/1) back to the sender of `pkt`, quoting as
 * much of it as keeps the error within 576 (v4) or 1280 (v6) bytes (§10.2). `p` is `pkt` parsed.
 * Null where RFC 1122 §3.2.2 / RFC 4443 §2.4(e) forbid an error.
 */
export function buildUnreachable(pkt: Uint8Array, p: ParsedPacket): Uint8Array | null {
  const v4 = p.family === 4;
  if (pkt.length < (v4 ? 20 : 40)) return null;
  if (p.icmpType >= 0 && (v4 ? isV4Error(p.icmpType) : p.icmpType < 128)) return null;
  if (v4 && (u16(pkt, 6) & 0x1fff) !== 0) return null; // non-initial fragment
  if (v4 ? badV4Unicast(p) : badV6Unicast(p)) return null;
  const total = v4 ? u16(pkt, 2) : 40 + u16(pkt, 4);
  const quote = Math.min(total, pkt.length, v4 ? 576 - 28 : 1280 - 48);
  const i = v4 ? 20 : 40;
  const out = new Uint8Array(i + 8 + quote);
  out[i] = v4 ? 3 : 1;
  out[i + 1] = v4 ? 13 : 1;
  out.set(pkt.subarray(0, quote), i + 8);
  const proto = v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  return ipWrap(out, p.family, p.dst, p.src, proto, false, 2);
}

function badV4Unicast(p: ParsedPacket): boolean {
  const d = p.dst[0];
  const s = p.src[0];
  return d >= 224 || s === 0 || s === 127 || s >= 224;
}

function badV6Unicast(p: ParsedPacket): boolean {
  if (p.dst[0] === 0xff || p.src[0] === 0xff) return true;
  for (let i = 0; i < 15; i++) if (p.src[i] !== 0) return false;
  return p.src[15] <= 1; // :: or ::1
}

/** The advertised MSS for a TUN MTU: no options counted (RFC 9293 §3.7.1, §11). */
export function mssFor(family: 4 | 6, mtu: number): number {
  return mtu - (family === 4 ? 40 : 60);
}

/** Dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run compressed, v4-mapped mixed). */
export function addrText(a: Uint8Array): string {
  return formatIP(a);
}

/**
 * IPv4 or IPv6 text to bytes; undefined when it is neither. Stricter than the struct parser on
 * one point: a dotted part with a leading zero is refused, since tools disagree on whether it
 * is octal.
 */
export function parseAddr(text: string): Uint8Array | undefined {
  const dotted = text.slice(text.lastIndexOf(":") + 1);
  if (dotted.includes(".") && /(^|\.)0\d/.test(dotted)) return undefined;
  return text.includes(":") ? parseIPv6(text) : parseIPv4(text);
}
