/**
 * Just enough pcap to follow one ping through every hop of the lab (bench/hops.ts): read a
 * `tcpdump -i any --time-stamp-precision=nano` capture (LINUX_SLL2), and find a marked ICMP echo
 * wherever it travels: bare on a tun or veth, or inside a TCP stream (the tunnel's frames), also
 * inside a masked WebSocket frame (the client's direction). Pure functions, tested with bytes.
 */

export interface Sighting {
  /** Nanoseconds since the epoch, as the kernel stamped the packet. */
  ns: bigint;
  ifindex: number;
  /** 8: echo request, 0: echo reply. */
  icmpType: number;
  seq: number;
  /** "icmp" when the packet itself is the echo, "tcp" when it rides inside a TCP payload. */
  carrier: "icmp" | "tcp";
  /** TCP ports when carried: which stream it was in. */
  sport?: number;
  dport?: number;
}

const LINKTYPE_LINUX_SLL2 = 276;

/** Every captured packet: timestamp (ns), interface index and the L3 bytes. */
export function* readPcap(
  file: Uint8Array,
): Generator<{ ns: bigint; ifindex: number; l3: Uint8Array }> {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const magic = dv.getUint32(0, true);
  const nano = magic === 0xa1b23c4d;
  if (!nano && magic !== 0xa1b2c3d4) throw new Error("not a little-endian pcap file");
  const link = dv.getUint32(20, true);
  if (link !== LINKTYPE_LINUX_SLL2) throw new Error(`link type ${link}, want LINUX_SLL2 (276)`);
  for (let o = 24; o + 16 <= file.length;) {
    const sec = BigInt(dv.getUint32(o, true));
    const frac = BigInt(dv.getUint32(o + 4, true));
    const caplen = dv.getUint32(o + 8, true);
    const rec = file.subarray(o + 16, o + 16 + caplen);
    o += 16 + caplen;
    if (rec.length < 20) continue;
    const rdv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
    if (rdv.getUint16(0) !== 0x0800) continue; // IPv4 only
    yield {
      ns: sec * 1_000_000_000n + (nano ? frac : frac * 1000n),
      ifindex: rdv.getInt32(4),
      l3: rec.subarray(20),
    };
  }
}

/**
 * ICMP echoes marked with `pattern` (ping -p, 16 bytes) in one IPv4 packet. iputils puts a
 * 16-byte timeval first, so the first whole copy of the pattern starts 24 bytes into the ICMP
 * message.
 */
export function findEchoes(
  l3: Uint8Array,
  pattern: Uint8Array,
): Omit<Sighting, "ns" | "ifindex">[] {
  if (l3.length < 20 || l3[0] >> 4 !== 4) return [];
  const ihl = (l3[0] & 15) * 4;
  const proto = l3[9];
  const body = l3.subarray(ihl);
  if (proto === 1) {
    const e = echoAt(body, pattern);
    return e ? [{ ...e, carrier: "icmp" }] : [];
  }
  if (proto !== 6 || body.length < 20) return [];
  const sport = (body[0] << 8) | body[1];
  const dport = (body[2] << 8) | body[3];
  const payload = body.subarray((body[12] >> 4) * 4);
  if (payload.length === 0) return [];
  const out: Omit<Sighting, "ns" | "ifindex">[] = [];
  for (const bytes of [payload, unmaskWebSocket(payload)]) {
    for (const e of scan(bytes, pattern)) out.push({ ...e, carrier: "tcp", sport, dport });
    if (out.length) break;
  }
  return out;
}

function echoAt(icmp: Uint8Array, pattern: Uint8Array): { icmpType: number; seq: number } | null {
  if (icmp.length < 24 + pattern.length) return null;
  if (icmp[0] !== 0 && icmp[0] !== 8) return null;
  if (indexOf(icmp.subarray(24, 24 + pattern.length), pattern) !== 0) return null;
  return { icmpType: icmp[0], seq: (icmp[6] << 8) | icmp[7] };
}

/** Echoes inside arbitrary bytes (a TCP payload): each first pattern copy names one. */
function scan(bytes: Uint8Array, pattern: Uint8Array): { icmpType: number; seq: number }[] {
  const out: { icmpType: number; seq: number }[] = [];
  for (let i = indexOf(bytes, pattern, 24); i >= 0; i = indexOf(bytes, pattern, i + 1)) {
    const icmp = bytes.subarray(i - 24);
    if (icmp[0] !== 0 && icmp[0] !== 8) continue;
    if (icmp[1] !== 0) continue;
    out.push({ icmpType: icmp[0], seq: (icmp[6] << 8) | icmp[7] });
    i += pattern.length * 2; // skip the rest of this echo's pattern copies
  }
  return out;
}

/**
 * The payloads of the WebSocket frames a TCP segment starts with, unmasked (a client's frames
 * are masked, so the marker is invisible otherwise). Best effort: a segment that does not start
 * on a frame boundary yields garbage, which simply matches nothing.
 */
export function unmaskWebSocket(seg: Uint8Array): Uint8Array {
  const out: Uint8Array[] = [];
  let o = 0;
  while (o + 2 <= seg.length) {
    const masked = (seg[o + 1] & 0x80) !== 0;
    let len = seg[o + 1] & 0x7f;
    let h = 2;
    if (len === 126) {
      if (o + 4 > seg.length) break;
      len = (seg[o + 2] << 8) | seg[o + 3];
      h = 4;
    } else if (len === 127) {
      if (o + 10 > seg.length) break;
      len = Number(new DataView(seg.buffer, seg.byteOffset + o + 2, 8).getBigUint64(0));
      h = 10;
    }
    const key = masked ? seg.subarray(o + h, o + h + 4) : undefined;
    if (masked) h += 4;
    const p = seg.slice(o + h, Math.min(seg.length, o + h + len));
    if (key && key.length === 4) { for (let i = 0; i < p.length; i++) p[i] ^= key[i & 3]; }
    out.push(p);
    o += h + len;
  }
  const all = new Uint8Array(out.reduce((n, p) => n + p.length, 0));
  let w = 0;
  for (const p of out) {
    all.set(p, w);
    w += p.length;
  }
  return all;
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** All sightings in one capture file. */
export function sightings(file: Uint8Array, pattern: Uint8Array): Sighting[] {
  const out: Sighting[] = [];
  for (const p of readPcap(file)) {
    for (const e of findEchoes(p.l3, pattern)) out.push({ ns: p.ns, ifindex: p.ifindex, ...e });
  }
  return out;
}
