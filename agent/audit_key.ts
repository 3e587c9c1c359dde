/**
 * A packet's flow key for the audit (audit.ts), read in place into one reused FlowKey so that
 * nothing allocates per packet. Pure.
 *
 * The key is oriented by the tunnel: "client" is the tunnel's side (the source of an "up"
 * packet, the destination of a "down" one), "remote" the VPC's, so both directions of a flow
 * read the same key. ICMP echo request and reply carry the echo id in the client port (the
 * remote port stays none) so a ping is one flow; other ICMP has no ports. IPv6 extension headers
 * are walked as rules_compile.ts walks them; a header cut short, or too many of them, leaves the
 * protocol at the header that could not be passed. A non-first fragment shows no ports: its
 * fragment id lets audit.ts find the flow of its first fragment.
 */

export const TCP = 6;
export const UDP = 17;
export const ICMP = 1;
export const ICMP6 = 58;

/** FlowKey.frag: not a fragment, a first fragment (ports shown), a later one (no ports). */
export const NOT_FRAGMENT = 0, FIRST_FRAGMENT = 1, LATER_FRAGMENT = 2;
/** FlowKey.flags: what a TCP segment says about the end of its connection. */
export const FIN = 1, RST = 4;

const MAX_EXTENSION_HEADERS = 8;

export class FlowKey {
  /** 4, 6, or 0 for bytes that are not an IP packet (no addresses, protocol -1). */
  v = 0;
  /** IP protocol; -1 when not IP. */
  proto = -1;
  /** Client address as 32-bit words (IPv4: c0 only, the rest 0). */
  c0 = 0;
  c1 = 0;
  c2 = 0;
  c3 = 0;
  /** Remote address, likewise. */
  r0 = 0;
  r1 = 0;
  r2 = 0;
  r3 = 0;
  /** Ports (or the echo id in cport); -1: none. */
  cport = -1;
  rport = -1;
  /** FIN and RST of a TCP segment. */
  flags = 0;
  frag = NOT_FRAGMENT;
  /** The IP identification of a fragment (IPv4: 16 bits, IPv6: 32). */
  fragId = 0;
}

const word = (p: Uint8Array, at: number): number =>
  (p[at] << 24) | (p[at + 1] << 16) | (p[at + 2] << 8) | p[at + 3];

/** Fill `k` from packet `p` travelling `dir`. Never throws, whatever the bytes. */
export function readKey(p: Uint8Array, up: boolean, k: FlowKey): void {
  k.cport = k.rport = -1;
  k.flags = 0;
  k.frag = NOT_FRAGMENT;
  k.fragId = 0;
  k.c1 =
    k.c2 =
    k.c3 =
    k.r1 =
    k.r2 =
    k.r3 =
      0;
  const version = p.length ? p[0] >> 4 : 0;
  if (version === 4 && p.length >= 20) {
    k.v = 4;
    k.proto = p[9];
    const s = word(p, 12), d = word(p, 16);
    k.c0 = up ? s : d;
    k.r0 = up ? d : s;
    const offset = ((p[6] & 0x1f) << 8) | p[7];
    if (offset !== 0 || (p[6] & 0x20) !== 0) {
      k.frag = offset !== 0 ? LATER_FRAGMENT : FIRST_FRAGMENT;
      k.fragId = (p[4] << 8) | p[5];
      if (offset !== 0) return;
    }
    const ihl = (p[0] & 0x0f) * 4;
    if (ihl >= 20) readPorts(p, ihl, up, k);
    return;
  }
  if (version === 6 && p.length >= 40) {
    k.v = 6;
    const s0 = word(p, 8), s1 = word(p, 12), s2 = word(p, 16), s3 = word(p, 20);
    const d0 = word(p, 24), d1 = word(p, 28), d2 = word(p, 32), d3 = word(p, 36);
    if (up) {
      k.c0 = s0, k.c1 = s1, k.c2 = s2, k.c3 = s3, k.r0 = d0, k.r1 = d1, k.r2 = d2, k.r3 = d3;
    } else {
      k.c0 = d0, k.c1 = d1, k.c2 = d2, k.c3 = d3, k.r0 = s0, k.r1 = s1, k.r2 = s2, k.r3 = s3;
    }
    let next = p[6];
    let at = 40;
    for (let i = 0; i < MAX_EXTENSION_HEADERS; i++) {
      if (next === 0 || next === 60 || next === 43 || next === 51) {
        // Hop-by-hop, destination options, routing: 8-byte units after the first 8; AH: 4-byte.
        if (p.length < at + 8) break;
        const length = next === 51 ? (p[at + 1] + 2) * 4 : (p[at + 1] + 1) * 8;
        next = p[at];
        at += length;
      } else if (next === 44) {
        if (p.length < at + 8) break;
        const offset = ((p[at + 2] << 8) | p[at + 3]) >> 3;
        k.frag = offset !== 0 ? LATER_FRAGMENT : FIRST_FRAGMENT;
        k.fragId = word(p, at + 4);
        next = p[at];
        at += 8;
        if (offset !== 0) break;
      } else {
        k.proto = next;
        readPorts(p, at, up, k);
        return;
      }
    }
    k.proto = next;
    return;
  }
  k.v = 0;
  k.proto = -1;
  k.c0 = k.r0 = 0;
}

/** Ports (TCP, UDP), echo id (ICMP echo) and TCP end flags from the header at `at`. */
function readPorts(p: Uint8Array, at: number, up: boolean, k: FlowKey): void {
  const proto = k.proto;
  if (proto === TCP || proto === UDP) {
    if (p.length < at + 4) return;
    const s = (p[at] << 8) | p[at + 1], d = (p[at + 2] << 8) | p[at + 3];
    k.cport = up ? s : d;
    k.rport = up ? d : s;
    if (proto === TCP && p.length >= at + 14) k.flags = p[at + 13] & (FIN | RST);
  } else if (proto === ICMP || proto === ICMP6) {
    if (p.length < at + 6) return;
    const type = p[at];
    const echo = proto === ICMP ? type === 8 || type === 0 : type === 128 || type === 129;
    if (echo) k.cport = (p[at + 4] << 8) | p[at + 5];
  }
}

/** murmur3's finalizer step, kept to 30 bits so the Map key stays a small integer. */
const mix = (h: number, x: number): number => {
  h = Math.imul(h ^ x, 0xcc9e2d51);
  return (h << 15) | (h >>> 17);
};

/** A hash of the key and a tunnel's number: a Map key (a small integer, so no allocation). */
export function keyHash(tunnel: number, k: FlowKey): number {
  let h = mix(tunnel, (k.v << 24) ^ ((k.proto & 0xff) << 16));
  h = mix(h, k.c0);
  h = mix(h, k.r0);
  if (k.v === 6) {
    h = mix(h, k.c1);
    h = mix(h, k.c2);
    h = mix(h, k.c3);
    h = mix(h, k.r1);
    h = mix(h, k.r2);
    h = mix(h, k.r3);
  }
  h = mix(h, (k.cport << 16) ^ k.rport);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h & 0x3fffffff;
}

/** A fragment's hash: its id, protocol and addresses (a later fragment shows nothing else). */
export function fragmentHash(tunnel: number, k: FlowKey): number {
  let h = mix(tunnel, k.fragId);
  h = mix(h, (k.v << 8) | (k.proto & 0xff));
  h = mix(h, k.c0 ^ k.c1 ^ k.c2 ^ k.c3);
  h = mix(h, k.r0 ^ k.r1 ^ k.r2 ^ k.r3);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h & 0x3fffffff;
}
