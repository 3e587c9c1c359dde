/**
 * Segments for the TCP tests: the test tuples, kernel-side segments built with buildTcp (plus
 * raw options and the AE bit), and the stack's output parsed into plain values.
 */
import assert from "node:assert/strict";
import { checksum, pseudoSum } from "../../../src/netstack/checksum.ts";
import {
  ACK,
  buildTcp,
  FIN,
  newParsed,
  parse,
  parseAddr,
  PSH,
  RST,
  SYN,
} from "../../../src/netstack/packet.ts";

export { ACK, FIN, PSH, RST, SYN };
export const ECE = 0x40;
export const CWR = 0x80;

export interface Tuple {
  family: 4 | 6;
  app: Uint8Array;
  appPort: number;
  remote: Uint8Array;
  remotePort: number;
}

export const TUPLE4: Tuple = {
  family: 4,
  app: parseAddr("10.99.0.1")!,
  appPort: 40000,
  remote: parseAddr("10.200.0.5")!,
  remotePort: 8080,
};

export const TUPLE6: Tuple = {
  family: 6,
  app: parseAddr("fd00::1")!,
  appPort: 40000,
  remote: parseAddr("fd00:200::5")!,
  remotePort: 8080,
};

/** What a test says about a kernel → stack segment; absent fields take the defaults. */
export interface KSeg {
  flags: number;
  seq: number;
  ack?: number;
  window?: number;
  payload?: Uint8Array;
  mss?: number;
  wscale?: number;
  /** Raw option bytes after MSS/WS (padded to 4 with NOPs), e.g. SACK-permitted, TS, TFO. */
  options?: number[];
  /** The AE (formerly NS) bit in byte 12 (accurate ECN). */
  ae?: boolean;
}

/** Build one segment from the app (kernel side) to the remote, on `t`. */
export function kernelSegment(t: Tuple, s: KSeg): Uint8Array {
  const extra = s.options ?? [];
  const padded = [...extra];
  while (padded.length % 4 !== 0) padded.push(1);
  const payload = s.payload ?? new Uint8Array(0);
  const body = new Uint8Array(padded.length + payload.length);
  body.set(padded);
  body.set(payload, padded.length);
  const pkt = buildTcp({
    family: t.family,
    src: t.app,
    dst: t.remote,
    sport: t.appPort,
    dport: t.remotePort,
    seq: s.seq >>> 0,
    ack: (s.ack ?? 0) >>> 0,
    flags: s.flags,
    window: s.window ?? 65535,
    mss: s.mss,
    wscale: s.wscale,
    payload: body,
  });
  if (padded.length === 0 && !s.ae) return pkt;
  // Move the extra options into the header: grow the data offset, set AE, redo the checksum.
  const l4 = t.family === 4 ? 20 : 40;
  const hl = (pkt[l4 + 12] >> 4) * 4 + padded.length;
  assert.ok(hl <= 60, "options too long");
  pkt[l4 + 12] = ((hl / 4) << 4) | (s.ae ? 1 : 0);
  pkt[l4 + 16] = pkt[l4 + 17] = 0;
  const sum = checksum(
    pkt,
    l4,
    pkt.length,
    pseudoSum(t.family, t.app, t.remote, 6, pkt.length - l4),
  );
  pkt[l4 + 16] = sum >> 8;
  pkt[l4 + 17] = sum & 0xff;
  return pkt;
}

/** One packet the stack emitted, parsed into plain values (TCP fields are 0 for ICMP). */
export interface Seg {
  family: 4 | 6;
  /** 6, or 1/58 for the ICMP errors the stack answers other protocols with. */
  proto: number;
  src: Uint8Array;
  dst: Uint8Array;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  /** Byte 13, whole (CWR/ECE included). */
  flags: number;
  /** Byte 12's low nibble (the AE bit and the reserved bits). */
  reserved: number;
  window: number;
  /** -1 when absent. */
  mss: number;
  wscale: number;
  /** The raw option bytes. */
  options: Uint8Array;
  payload: Uint8Array;
  raw: Uint8Array;
}

/**
 * Parse a packet the stack emitted: it must parse (checksums included) and fit the MTU. The
 * parser refuses ICMP errors as input, after their checksum: for our own errors that is a pass.
 */
export function parseOut(pkt: Uint8Array, mtu: number): Seg {
  assert.ok(pkt.length <= mtu, `emitted ${pkt.length} bytes > MTU ${mtu}`);
  const p = newParsed();
  let why = parse(pkt, p);
  if (why === "source") {
    // The parser refuses 0/8, 127/8, class E, ::, ::1 and v4-mapped as sources but not as
    // destinations (§2.5), so a reply from such a destination does not re-parse as input. Both
    // checksums are symmetric in the two addresses: parse a copy with them swapped instead.
    const copy = pkt.slice();
    const [a, n] = p.family === 4 ? [12, 4] : [8, 16];
    copy.set(pkt.subarray(a + n, a + 2 * n), a);
    copy.set(pkt.subarray(a, a + n), a + n);
    why = parse(copy, p);
    p.src = pkt.subarray(a, a + n);
    p.dst = pkt.subarray(a + n, a + 2 * n);
  }
  if (why === "icmp-error" && (p.icmpType === 3 || p.icmpType === 1)) {
    return {
      ...EMPTY_SEG,
      family: p.family,
      proto: p.proto,
      src: p.src.slice(),
      dst: p.dst.slice(),
      raw: pkt,
    };
  }
  assert.equal(why, null, `the stack emitted a packet that does not parse: ${why}`);
  assert.equal(p.proto, 6, "neither TCP nor an ICMP error");
  const t = p.l4;
  const hl = (pkt[t + 12] >> 4) * 4;
  const options = pkt.slice(t + 20, t + hl);
  return {
    family: p.family,
    proto: 6,
    src: p.src.slice(),
    dst: p.dst.slice(),
    sport: p.sport,
    dport: p.dport,
    seq: p.seq,
    ack: p.ack,
    flags: p.flags,
    reserved: pkt[t + 12] & 0x0f,
    window: p.window,
    mss: hasOption(options, 2) ? p.mss : -1,
    wscale: hasOption(options, 3) ? p.wscale : -1,
    options,
    payload: pkt.slice(p.data, p.data + p.dataLen),
    raw: pkt,
  };
}

const EMPTY_SEG: Seg = {
  family: 4,
  proto: 0,
  src: new Uint8Array(0),
  dst: new Uint8Array(0),
  sport: 0,
  dport: 0,
  seq: 0,
  ack: 0,
  flags: 0,
  reserved: 0,
  window: 0,
  mss: -1,
  wscale: -1,
  options: new Uint8Array(0),
  payload: new Uint8Array(0),
  raw: new Uint8Array(0),
};

function hasOption(opts: Uint8Array, kind: number): boolean {
  for (let o = 0; o < opts.length;) {
    if (opts[o] === 0) return false;
    if (opts[o] === 1) {
      o++;
      continue;
    }
    if (opts[o] === kind) return true;
    o += Math.max(2, opts[o + 1] ?? 2);
  }
  return false;
}

export function flagText(f: number): string {
  const names: [number, string][] = [
    [SYN, "S"],
    [FIN, "F"],
    [RST, "R"],
    [PSH, "P"],
    [ACK, "."],
    [ECE, "E"],
    [CWR, "W"],
  ];
  return names.filter(([b]) => f & b).map(([, n]) => n).join("") || "-";
}

export function describe(s: Seg): string {
  return `[${flagText(s.flags)}] seq ${s.seq} ack ${s.ack} win ${s.window} len ${s.payload.length}`;
}

/** Does `s` belong to tuple `t` (stack → app direction)? */
export function onTuple(s: Seg, t: Tuple): boolean {
  return s.proto === 6 && s.family === t.family && s.sport === t.remotePort &&
    s.dport === t.appPort &&
    sameBytes(s.src, t.remote) && sameBytes(s.dst, t.app);
}

/** The connection tuple a stack → app segment belongs to. */
export function tupleOf(s: Seg): Tuple {
  return { family: s.family, app: s.dst, appPort: s.dport, remote: s.src, remotePort: s.sport };
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export const seqAdd = (a: number, n: number) => (a + n) >>> 0;

/** Recompute the IPv4 header and TCP checksums of a (mutated) packet where the layout allows. */
export function fixChecksums(pkt: Uint8Array): void {
  const v = pkt.length > 0 ? pkt[0] >> 4 : 0;
  let l4 = 0;
  let end = 0;
  let family: 4 | 6 = 4;
  if (v === 4 && pkt.length >= 20) {
    const hl = (pkt[0] & 15) * 4;
    if (hl < 20 || hl > pkt.length) return;
    pkt[10] = pkt[11] = 0;
    const c = checksum(pkt, 0, hl);
    pkt[10] = c >> 8;
    pkt[11] = c & 0xff;
    [l4, end] = [hl, Math.min(pkt.length, (pkt[2] << 8) | pkt[3])];
    if (pkt[9] !== 6) return;
  } else if (v === 6 && pkt.length >= 40 && pkt[6] === 6) {
    [l4, end, family] = [40, Math.min(pkt.length, 40 + ((pkt[4] << 8) | pkt[5])), 6];
  } else return;
  if (end < l4 + 18) return;
  pkt[l4 + 16] = pkt[l4 + 17] = 0;
  const n = family === 4 ? 4 : 16;
  const src = pkt.subarray(family === 4 ? 12 : 8, (family === 4 ? 12 : 8) + n);
  const dst = pkt.subarray(family === 4 ? 16 : 24, (family === 4 ? 16 : 24) + n);
  const c = checksum(pkt, l4, end, pseudoSum(family, src, dst, 6, end - l4));
  pkt[l4 + 16] = c >> 8;
  pkt[l4 + 17] = c & 0xff;
}

/** Deterministic bytes: position-dependent, so any shift or swap shows. */
export function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
