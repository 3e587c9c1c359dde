/**
 * Just enough IP header reading for the tunnel: version, addresses, protocol, ports, and a
 * flow hash. Pure; never throws on short or odd packets (they get `undefined`).
 */

export interface PacketInfo {
  version: 4 | 6;
  /** Source and destination as dotted quad / IPv6 text. */
  src: string;
  dst: string;
  protocol: number;
  srcPort: number;
  dstPort: number;
}

const PORT_PROTOCOLS = new Set([6, 17, 132]); // TCP, UDP, SCTP

export function ipVersion(p: Uint8Array): number {
  return p.length > 0 ? p[0] >> 4 : 0;
}

export function ipv4ToString(p: Uint8Array, at: number): string {
  return `${p[at]}.${p[at + 1]}.${p[at + 2]}.${p[at + 3]}`;
}

/** IPv4 source address as a 32-bit unsigned number, or -1 if not IPv4. */
export function ipv4Src(p: Uint8Array): number {
  if (p.length < 20 || p[0] >> 4 !== 4) return -1;
  return ((p[12] << 24) | (p[13] << 16) | (p[14] << 8) | p[15]) >>> 0;
}

/** IPv4 destination address as a 32-bit unsigned number, or -1 if not IPv4. */
export function ipv4Dst(p: Uint8Array): number {
  if (p.length < 20 || p[0] >> 4 !== 4) return -1;
  return ((p[16] << 24) | (p[17] << 16) | (p[18] << 8) | p[19]) >>> 0;
}

export function parsePacket(p: Uint8Array): PacketInfo | undefined {
  const v = ipVersion(p);
  if (v === 4) {
    if (p.length < 20) return undefined;
    const ihl = (p[0] & 0x0f) * 4;
    if (ihl < 20 || p.length < ihl) return undefined;
    const protocol = p[9];
    const fragOffset = ((p[6] & 0x1f) << 8) | p[7];
    const ports = PORT_PROTOCOLS.has(protocol) && fragOffset === 0 && p.length >= ihl + 4;
    return {
      version: 4,
      src: ipv4ToString(p, 12),
      dst: ipv4ToString(p, 16),
      protocol,
      srcPort: ports ? (p[ihl] << 8) | p[ihl + 1] : 0,
      dstPort: ports ? (p[ihl + 2] << 8) | p[ihl + 3] : 0,
    };
  }
  if (v === 6) {
    if (p.length < 40) return undefined;
    const protocol = p[6];
    const ports = PORT_PROTOCOLS.has(protocol) && p.length >= 44;
    return {
      version: 6,
      src: ipv6ToString(p.subarray(8, 24)),
      dst: ipv6ToString(p.subarray(24, 40)),
      protocol,
      srcPort: ports ? (p[40] << 8) | p[41] : 0,
      dstPort: ports ? (p[42] << 8) | p[43] : 0,
    };
  }
  return undefined;
}

function ipv6ToString(b: Uint8Array): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[i] << 8) | b[i + 1]).toString(16));
  return parts.join(":");
}

/**
 * Whether the client sends packet `p` to the agent: IPv4 always; IPv6 only when the tunnel has
 * an IPv6 address (`address6`, 16 bytes) and the packet comes from it. Once a tun has IPv6 the
 * kernel also sends its own chatter into it (router solicitations, MLD, from fe80:: or ::):
 * that stays here, as the agent would drop it as spoofed anyway.
 */
export function carried(p: Uint8Array, address6: Uint8Array | undefined): boolean {
  const v = ipVersion(p);
  if (v === 4) return true;
  if (v !== 6 || !address6 || p.length < 40) return false;
  for (let i = 0; i < 16; i++) if (p[8 + i] !== address6[i]) return false;
  return true;
}

/**
 * A hash of the flow (addresses, protocol, ports) that is the same in both directions, so that
 * client and agent, choosing among the same live stripes, keep a flow on one stripe and in order.
 * FNV-1a over the header bytes that identify the flow, with the two endpoints in sorted order,
 * then a final avalanche (murmur3's fmix32): without it the low bits, which `% n` keeps, depend
 * only on the low bits of each byte, and Linux picks even ephemeral ports, so with 2, 4 or 8
 * stripes half of them (or more) were never chosen.
 */
export function flowHash(p: Uint8Array): number {
  const v = ipVersion(p);
  let a: Uint8Array, b: Uint8Array, proto: number, l4: number;
  if (v === 4 && p.length >= 20) {
    const ihl = (p[0] & 0x0f) * 4;
    a = p.subarray(12, 16);
    b = p.subarray(16, 20);
    proto = p[9];
    l4 = ihl;
  } else if (v === 6 && p.length >= 40) {
    a = p.subarray(8, 24);
    b = p.subarray(24, 40);
    proto = p[6];
    l4 = 40;
  } else {
    return 0;
  }
  const hasPorts = PORT_PROTOCOLS.has(proto) && p.length >= l4 + 4;
  const pa = hasPorts ? (p[l4] << 8) | p[l4 + 1] : 0;
  const pb = hasPorts ? (p[l4 + 2] << 8) | p[l4 + 3] : 0;
  let swap = false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      swap = a[i] > b[i];
      break;
    }
  }
  if (!swap && a.every((x, i) => x === b[i])) swap = pa > pb;
  const [x, y, px, py] = swap ? [b, a, pb, pa] : [a, b, pa, pb];
  let h = 0x811c9dc5;
  const mix = (byte: number) => {
    h ^= byte;
    h = Math.imul(h, 0x01000193);
  };
  for (const byte of x) mix(byte);
  for (const byte of y) mix(byte);
  mix(proto);
  mix(px >> 8);
  mix(px & 0xff);
  mix(py >> 8);
  mix(py & 0xff);
  return fmix32(h);
}

/** murmur3's finalizer: every input bit flips each output bit with probability about 1/2. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Pick one of `live` stripe indexes (sorted) for a packet, stable while `live` is unchanged: the
 * fallback for flows no flow table knows (and what agents before flow tables do).
 */
export function pickStripe(p: Uint8Array, live: number[]): number | undefined {
  if (live.length === 0) return undefined;
  return live[flowHash(p) % live.length];
}
