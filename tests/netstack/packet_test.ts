import assert from "node:assert/strict";
import fc from "fast-check";
import { checksum, pseudoSum } from "../../src/netstack/checksum.ts";
import {
  ACK,
  addrText,
  buildTcp,
  buildUdp,
  buildUnreachable,
  FIN,
  mssFor,
  newParsed,
  parse,
  parseAddr,
  type ParsedPacket,
  RST,
  SYN,
  type TcpSegment,
  v4Number,
} from "../../src/netstack/packet.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!, (h) => parseInt(h, 16));
const ip = (s: string) => parseAddr(s)!;
const cat = (...parts: ArrayLike<number>[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, (o += p.length) - p.length);
  return out;
};

const CLIENT = ip("10.99.0.1");
const SERVER = ip("10.200.0.5");
const CLIENT6 = ip("fd00::1");
const SERVER6 = ip("2001:db8::5");

/** The §2.6 SYN, client to server; IRS 0xa1220626. */
const synSeg = (over: Partial<TcpSegment> = {}): TcpSegment => ({
  family: 4,
  src: CLIENT,
  dst: SERVER,
  sport: 40000,
  dport: 8080,
  seq: 0xa1220626,
  ack: 0,
  flags: SYN,
  window: 64240,
  mss: 1460,
  wscale: 10,
  ...over,
});
const syn6 = (over: Partial<TcpSegment> = {}) =>
  synSeg({ family: 6, src: CLIENT6, dst: SERVER6, ...over });
const REPLY = { src: SERVER, dst: CLIENT, sport: 8080, dport: 40000 };

function parsed(pkt: Uint8Array): ParsedPacket {
  const p = newParsed();
  const why = parse(pkt, p);
  assert.equal(why, null, `dropped: ${why}`);
  return p;
}
const reason = (pkt: Uint8Array) => parse(pkt, newParsed());
const pick = <K extends keyof ParsedPacket>(p: ParsedPacket, ...keys: K[]) => keys.map((k) => p[k]);

/** Set the IPv4 total length to the packet's length and recompute the header checksum. */
function fixIp4(pkt: Uint8Array, hl = 20): Uint8Array {
  pkt[2] = pkt.length >> 8;
  pkt[3] = pkt.length;
  pkt[10] = pkt[11] = 0;
  const c = checksum(pkt, 0, hl);
  pkt[10] = c >> 8;
  pkt[11] = c;
  return pkt;
}

/**
 * Recompute lengths and checksums after a test edits a packet: the IP length fields, the IPv4
 * header checksum, and the upper-layer checksum at `l4` (IPv6 extension headers are not walked).
 */
function seal(pkt: Uint8Array, l4?: number, l4proto?: number): Uint8Array {
  const v4 = pkt[0] >> 4 === 4;
  const at = l4 ?? (v4 ? (pkt[0] & 15) * 4 : 40);
  const proto = l4proto ?? (v4 ? pkt[9] : pkt[6]);
  if (v4) fixIp4(pkt, at);
  else [pkt[4], pkt[5]] = [(pkt.length - 40) >> 8, pkt.length - 40];
  const ck = at + ({ 6: 16, 17: 6, 1: 2, 58: 2 }[proto] ?? 0);
  pkt[ck] = pkt[ck + 1] = 0;
  const [a, n] = v4 ? [12, 4] : [8, 16];
  const [src, dst] = [pkt.subarray(a, a + n), pkt.subarray(a + n, a + 2 * n)];
  const acc = v4 && proto === 1 ? 0 : pseudoSum(v4 ? 4 : 6, src, dst, proto, pkt.length - at);
  const c = checksum(pkt, at, pkt.length, acc);
  pkt[ck] = c >> 8;
  pkt[ck + 1] = c;
  return pkt;
}

/** A copy of `pkt` with bytes replaced, resealed unless `raw`. */
function mut(pkt: Uint8Array, edits: Record<number, number>, raw = false): Uint8Array {
  const out = pkt.slice();
  for (const [at, v] of Object.entries(edits)) out[Number(at)] = v;
  return raw ? out : seal(out);
}

/** A bare IP packet around `l4` bytes between the default endpoints, sealed. */
function ipPacket(family: 4 | 6, proto: number, l4: ArrayLike<number>): Uint8Array {
  const h = family === 4 ? 20 : 40;
  const pkt = new Uint8Array(h + l4.length);
  pkt.set(l4, h);
  if (family === 4) pkt.set([0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, ...CLIENT, ...SERVER]);
  else pkt.set([0x60, 0, 0, 0, 0, 0, proto, 64, ...CLIENT6, ...SERVER6]);
  return seal(pkt);
}

const icmp = (family: 4 | 6, type: number, code = 0, body: ArrayLike<number> = [1, 2, 3, 4]) =>
  ipPacket(family, family === 4 ? 1 : 58, cat([type, code, 0, 0, 0, 0, 0, 0], body));
/** UDP 1234 -> 53, client to server unless addresses are given. */
function udp(family: 4 | 6, payload: ArrayLike<number> = [1, 2, 3], s?: string, d?: string) {
  const [src, dst] = s && d ? [ip(s), ip(d)] : family === 4 ? [CLIENT, SERVER] : [CLIENT6, SERVER6];
  return buildUdp(family, src, dst, 1234, 53, Uint8Array.from(payload));
}

// ---------------------------------------------------------------- golden vectors (§2.6, §10.2)

Deno.test("packet: buildTcp reproduces the §2.6 SYN-ACK and RST|ACK byte for byte", () => {
  const synAck = "4500 0030 0000 4000 4006 2598 0ac8 0005 0a63 0001 1f90 9c40 0000 03e8 " +
    "a122 0627 7012 ffff 07dd 0000 0204 05b4 0103 0300";
  const rstAck = "4500 0028 0000 4000 4006 25a0 0ac8 0005 0a63 0001 1f90 9c40 0000 0000 " +
    "a122 0627 5014 0000 3786 0000";
  const sa = buildTcp(
    synSeg({ ...REPLY, seq: 1000, ack: 2703361575, flags: SYN | ACK, window: 65535, wscale: 0 }),
  );
  assert.equal(hex(sa), hex(unhex(synAck)));
  const got = pick(parsed(sa), "seq", "ack", "flags", "window", "mss", "wscale");
  assert.deepEqual(got, [1000, 2703361575, 0x12, 65535, 1460, 0]);
  const ra = buildTcp({
    family: 4,
    ...REPLY,
    seq: 0,
    ack: 0xa1220627,
    flags: RST | ACK,
    window: 0,
  });
  assert.equal(hex(ra), hex(unhex(rstAck)));
  assert.equal(parsed(ra).flags, RST | ACK);
  // MSS only: doff 6.
  const mssOnly = buildTcp(synSeg({ wscale: undefined }));
  assert.deepEqual([mssOnly.length, mssOnly[32], hex(mssOnly.subarray(40))], [
    44,
    0x60,
    "020405b4",
  ]);
});

Deno.test("packet: buildUnreachable matches the §10.2 3/13 vector", () => {
  const syn = buildTcp(synSeg());
  const first28 = syn.subarray(0, 28);
  const err = buildUnreachable(first28, parsed(syn))!;
  const head = "4500 0038 0000 0000 4001 6595 0ac8 0005 0a63 0001 030d 99d9 0000 0000";
  assert.equal(hex(err), hex(unhex(head)) + hex(first28));
});

Deno.test("packet: unreachables quote up to 576 (v4) / 1280 (v6) bytes with valid checksums", () => {
  const syn = buildTcp(synSeg());
  const whole = buildUnreachable(syn, parsed(syn))!;
  assert.deepEqual(whole.subarray(28), syn);
  const big4 = udp(4, new Uint8Array(1400));
  const e4 = buildUnreachable(big4, parsed(big4))!;
  assert.equal(e4.length, 576);
  assert.deepEqual(e4.subarray(28), big4.subarray(0, 548));
  assert.deepEqual([checksum(e4, 0, 20), checksum(e4, 20, e4.length), e4[6]], [0, 0, 0]); // DF 0
  const big6 = udp(6, new Uint8Array(1400));
  const e6 = buildUnreachable(big6, parsed(big6))!;
  assert.equal(e6.length, 1280);
  assert.deepEqual([e6[6], e6[7], e6[40], e6[41]], [58, 64, 1, 1]);
  assert.deepEqual([e6.subarray(8, 24), e6.subarray(24, 40)], [SERVER6, CLIENT6]);
  assert.deepEqual(e6.subarray(48), big6.subarray(0, 1232));
  assert.equal(checksum(e6, 40, e6.length, pseudoSum(6, SERVER6, CLIENT6, 58, 1240)), 0);
  // The quote follows the IP length, not trailing bytes the TUN may have handed over.
  const padded = cat(syn, [9, 9, 9]);
  assert.equal(buildUnreachable(padded, parsed(padded))!.length, 28 + syn.length);
});

Deno.test("packet: echo and unknown protocols get an unreachable; ICMP errors never do", () => {
  const echo = icmp(4, 8);
  assert.equal(buildUnreachable(echo, parsed(echo))![20], 3);
  const echo6 = icmp(6, 128);
  assert.equal(buildUnreachable(echo6, parsed(echo6))![40], 1);
  for (const other of [ipPacket(4, 47, new Uint8Array(12)), ipPacket(6, 59, new Uint8Array(8))]) {
    assert.equal(parsed(other).proto, other[0] === 0x45 ? 47 : 59);
    assert.ok(buildUnreachable(other, parsed(other)));
  }
  // parse drops these first; buildUnreachable still refuses them on its own.
  for (const [family, type] of [[4, 3], [4, 11], [6, 1], [6, 127]] as const) {
    const p = newParsed();
    const pkt = icmp(family, type);
    assert.equal(parse(pkt, p), "icmp-error");
    assert.equal(buildUnreachable(pkt, p), null);
  }
});

Deno.test("packet: buildUnreachable refuses bad sources and multicast destinations", () => {
  const v4 = [["0.0.0.0", "10.200.0.5"], ["127.0.0.1", "10.200.0.5"], ["224.0.0.1", "10.200.0.5"]];
  v4.push(["10.99.0.1", "224.0.0.251"], ["10.99.0.1", "255.255.255.255"]);
  const v6 = [["::", "2001:db8::5"], ["::1", "2001:db8::5"], ["ff02::1", "::5"], [
    "::2",
    "ff02::2",
  ]];
  for (const [s, d] of [...v4, ...v6]) {
    const pkt = udp(s.includes(":") ? 6 : 4, [], s, d);
    const p = newParsed();
    assert.notEqual(parse(pkt, p), null, `${s} -> ${d} accepted`);
    assert.equal(buildUnreachable(pkt, p), null, `${s} -> ${d}`);
  }
});

// ---------------------------------------------------------------- IP parsing

Deno.test("packet: IPv4 options are skipped", () => {
  const syn = buildTcp(synSeg());
  const withOpts = cat([0x47], syn.subarray(1, 20), [0x94, 4, 0, 0, 1, 1, 1, 0], syn.subarray(20));
  const p = parsed(seal(withOpts, 28));
  const got = pick(p, "l4", "l4Len", "sport", "dport", "mss", "wscale");
  assert.deepEqual(got, [28, 28, 40000, 8080, 1460, 10]);
});

Deno.test("packet: every truncation point of a valid packet is dropped as short", () => {
  const payload = new Uint8Array(37).fill(0xab);
  for (const pkt of [buildTcp(synSeg({ payload })), buildTcp(syn6({ payload }))]) {
    for (let n = 0; n < pkt.length; n++) {
      assert.equal(reason(pkt.subarray(0, n)), "short", `n=${n}`);
    }
    assert.equal(parsed(pkt).dataLen, 37);
  }
});

Deno.test("packet: IPv4 header inconsistencies and fragments", () => {
  const syn = buildTcp(synSeg());
  const ihl15 = fixIp4(cat([0x4f], syn.subarray(1, 40)));
  assert.equal(reason(ihl15), "header"); // a 60-byte header in a 40-byte packet
  assert.equal(reason(mut(syn, { 0: 0x44 }, true)), "header");
  assert.equal(reason(mut(syn, { 0: 0x55 }, true)), "version");
  assert.equal(reason(mut(syn, { 3: syn[3] + 1 }, true)), "short"); // total length > read
  assert.equal(reason(mut(syn, { 10: syn[10] ^ 1 }, true)), "ip-checksum");
  const u = udp(4, new Uint8Array(20));
  assert.equal(reason(mut(u, { 6: 0x20 })), "fragment"); // MF
  assert.equal(reason(mut(u, { 7: 1 })), "fragment"); // offset 8
  assert.equal(reason(mut(u, { 6: 0x1f, 7: 0xff })), "fragment");
  assert.equal(reason(mut(u, { 6: 0x40 })), null); // DF alone
});

Deno.test("packet: trailing bytes past the IP length are ignored", () => {
  for (const pkt of [buildTcp(synSeg({ payload: Uint8Array.of(1, 2, 3) })), udp(6)]) {
    const p = parsed(cat(pkt, [0xde, 0xad, 0xbe, 0xef]));
    assert.deepEqual([p.dataLen, p.l4 + p.l4Len], [3, pkt.length]);
  }
});

Deno.test("packet: source and destination rules (§2.2, §2.5)", () => {
  const cases: [string, string, string | null][] = [
    ["0.0.0.0", "10.200.0.5", "source"],
    ["0.1.2.3", "10.200.0.5", "source"],
    ["127.0.0.1", "10.200.0.5", "source"],
    ["224.0.0.5", "10.200.0.5", "source"],
    ["240.0.0.1", "10.200.0.5", "source"],
    ["255.255.255.255", "10.200.0.5", "source"],
    ["10.99.0.1", "224.0.0.251", "multicast"],
    ["10.99.0.1", "239.255.255.250", "multicast"],
    ["0.0.0.0", "255.255.255.255", "multicast"], // DHCP discover: the destination rule comes first
    ["192.168.1.2", "8.8.8.8", null],
    ["fe80::1", "ff02::2", "multicast"], // the kernel's Router Solicitation
    ["fd00::1", "fe80::1", "link-local"],
    ["::", "2001:db8::5", "source"],
    ["::1", "2001:db8::5", "source"],
    ["ff02::1", "2001:db8::5", "source"],
    ["::ffff:10.0.0.1", "2001:db8::5", "source"],
    ["fe80::1", "2001:db8::5", null],
    ["::2", "2001:db8::5", null],
  ];
  for (const [s, d, want] of cases) {
    assert.equal(reason(udp(s.includes(":") ? 6 : 4, [], s, d)), want, `${s} -> ${d}`);
  }
});

/** Insert extension headers ([type, total length, byte 3]) between the fixed header and TCP. */
function withExt(pkt: Uint8Array, hdrs: [number, number, number?][]): Uint8Array {
  const chain = hdrs.flatMap(([, len, b3], i) => {
    const h = new Array(len).fill(0);
    [h[0], h[1], h[3]] = [i + 1 < hdrs.length ? hdrs[i + 1][0] : pkt[6], len / 8 - 1, b3 ?? 0];
    return h;
  });
  const out = cat(pkt.subarray(0, 40), chain, pkt.subarray(40));
  if (hdrs.length) out[6] = hdrs[0][0];
  // The TCP checksum stays valid: its pseudo-header carries the upper-layer length only.
  return mut(out, { 4: (out.length - 40) >> 8, 5: (out.length - 40) & 0xff }, true);
}

Deno.test("packet: IPv6 Hop-by-Hop + Destination Options + TCP", () => {
  const syn = buildTcp(syn6({ payload: Uint8Array.of(5, 6, 7) }));
  const p = parsed(withExt(syn, [[0, 8], [60, 16]]));
  assert.deepEqual(pick(p, "proto", "l4", "l4Len", "dataLen"), [6, 64, syn.length - 40, 3]);
  const tcp = pick(p, "sport", "dport", "seq", "mss", "wscale");
  assert.deepEqual(tcp, [40000, 8080, 0xa1220626, 1460, 10]);
  assert.deepEqual([p.src, p.dst], [CLIENT6, SERVER6]);
});

Deno.test("packet: IPv6 extension-header drops", () => {
  const syn = buildTcp(syn6());
  assert.equal(reason(withExt(syn, [[44, 8]])), "fragment");
  assert.equal(reason(withExt(syn, [[0, 8], [44, 8]])), "fragment");
  assert.equal(reason(withExt(syn, [[43, 24, 1]])), "ext-headers"); // Segments Left 1
  assert.equal(reason(withExt(syn, [[43, 24, 0]])), null);
  assert.equal(reason(withExt(syn, [[60, 8], [0, 8]])), "ext-headers"); // HBH not first
  const nine = Array.from({ length: 9 }, (): [number, number] => [60, 8]);
  assert.equal(reason(withExt(syn, nine)), "ext-headers");
  assert.equal(parsed(withExt(syn, nine.slice(1))).l4, 40 + 64);
  assert.equal(reason(mut(withExt(syn, [[60, 8]]), { 41: 200 }, true)), "ext-headers"); // 1608 B
  assert.equal(reason(mut(syn, { 4: 0, 5: 0 }, true)), "header"); // jumbogram
});

// ---------------------------------------------------------------- TCP, UDP, ICMP

/** A v4 SYN whose option bytes are exactly `opts` (padded with EOL to a multiple of 4). */
function synWithOptions(opts: number[], payload: number[] = []): Uint8Array {
  const padded = [...opts, ...new Array((4 - (opts.length % 4)) % 4).fill(0)];
  const data = Uint8Array.from([...padded, ...payload]);
  const pkt = buildTcp(synSeg({ mss: undefined, wscale: undefined, payload: data }));
  return mut(pkt, { 32: (5 + padded.length / 4) << 4 });
}

Deno.test("packet: TCP option walk (§2.3)", () => {
  const opt = (opts: number[]) => pick(parsed(synWithOptions(opts)), "mss", "wscale");
  assert.deepEqual(opt([2, 4, 0, 0]), [0, -1]); // MSS 0 = absent
  assert.deepEqual(opt([2, 4, 0, 20]), [48, -1]);
  assert.deepEqual(opt([2, 4, 0xff, 0xff]), [65535, -1]);
  assert.deepEqual(opt([3, 3, 15]), [0, 14]);
  assert.deepEqual(opt([3, 3, 14]), [0, 14]);
  assert.deepEqual(opt([1, 1, 1, 2]), [0, -1]); // a lone kind-2 byte at the end
  assert.deepEqual(opt([2, 0, 5, 0xb4, 3, 3, 7, 1]), [0, -1]); // length 0 stops the walk
  assert.deepEqual(opt([2, 1, 5, 0xb4, 3, 3, 7, 1]), [0, -1]); // length 1
  assert.deepEqual(opt([3, 3, 7, 2, 255, 5, 0xb4, 1]), [0, 7]); // length 255 runs past the end
  assert.deepEqual(opt([0, 2, 4, 5, 0xb4]), [0, -1]); // EOL ends the walk
  assert.deepEqual(opt([2, 5, 5, 0xb4, 0, 3, 3, 7]), [0, 7]); // odd MSS length: skipped whole
  const linux = [2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 10];
  assert.deepEqual(opt(linux), [1460, 10]); // MSS, SACK-OK, TS, NOP, WS
  const nops = parsed(synWithOptions(new Array(40).fill(1), [9, 9]));
  assert.deepEqual(pick(nops, "data", "dataLen", "mss", "wscale"), [80, 2, 0, -1]);
});

Deno.test("packet: TCP header drops: doff, ports, SYN+FIN, SYN+RST, checksum", () => {
  const syn = buildTcp(synSeg({ payload: Uint8Array.of(1, 2, 3, 4) })); // TCP length 32
  assert.equal(reason(mut(syn, { 32: 0x40 })), "proto-header"); // doff 4
  assert.equal(reason(mut(syn, { 32: 0xf0 })), "proto-header"); // 60 > 32
  assert.equal(reason(mut(syn, { 32: 0x90 })), "proto-header"); // 36 > 32
  assert.equal(reason(mut(syn, { 32: 0x80 })), null); // 32 ≤ 32: the payload is read as options
  assert.equal(reason(mut(syn, { 20: 0, 21: 0 })), "port0");
  assert.equal(reason(mut(syn, { 22: 0, 23: 0 })), "port0");
  assert.equal(reason(mut(syn, { 33: SYN | FIN })), "flags");
  assert.equal(reason(mut(syn, { 33: SYN | RST })), "flags");
  assert.equal(reason(mut(syn, { 33: FIN | RST | ACK })), null);
  assert.equal(reason(mut(syn, { [syn.length - 1]: 0 }, true)), "checksum");
  assert.equal(reason(ipPacket(4, 6, new Uint8Array(19))), "proto-header");
});

Deno.test("packet: ECN and AccECN SYNs keep their flags and are still SYNs", () => {
  const pkt = buildTcp(synSeg({ flags: 0xc0 | SYN }));
  const p = parsed(mut(pkt, { 32: pkt[32] | 1 })); // AE
  assert.deepEqual([p.flags, p.flags & 0x17, p.data - p.l4], [0xc2, SYN, 28]);
});

Deno.test("packet: UDP checksum and length rules", () => {
  // Checksum 0: "none" on IPv4, invalid on IPv6.
  assert.equal(reason(mut(udp(4), { 26: 0, 27: 0 }, true)), null);
  assert.equal(reason(mut(udp(6), { 46: 0, 47: 0 }, true)), "checksum");
  assert.equal(reason(mut(udp(4), { 30: 0xff }, true)), "checksum");
  assert.equal(reason(mut(udp(4), { 25: 12 })), "proto-header"); // UDP length > IP payload
  assert.equal(reason(mut(udp(4), { 25: 7 })), "proto-header");
  assert.equal(reason(ipPacket(4, 17, new Uint8Array(7))), "proto-header");
  // UDP length 10 in a 12-byte IP payload: the last two bytes are IP padding.
  const trimmed = ipPacket(4, 17, [4, 0xd2, 0, 53, 0, 10, 0, 0, 1, 2]);
  const p = parsed(fixIp4(cat(trimmed, [0, 0])));
  assert.deepEqual(pick(p, "data", "dataLen", "l4Len"), [28, 2, 10]);
});

Deno.test("packet: ICMP errors, NDP and MLD are silenced; echo is parsed", () => {
  for (const t of [3, 4, 5, 11, 12]) assert.equal(reason(icmp(4, t)), "icmp-error", `v4 ${t}`);
  for (const t of [0, 1, 2, 3, 4, 100, 127]) {
    assert.equal(reason(icmp(6, t)), "icmp-error", `v6 ${t}`);
  }
  for (const t of [130, 131, 132, 133, 134, 135, 136, 137, 143]) {
    assert.equal(reason(icmp(6, t)), "ndp");
  }
  const e = parsed(icmp(4, 8, 0, [0, 1, 0, 2, 9]));
  assert.deepEqual(pick(e, "icmpType", "icmpCode", "data", "dataLen", "sport"), [8, 0, 28, 5, 0]);
  assert.deepEqual(pick(parsed(icmp(6, 128)), "icmpType", "data", "dataLen"), [128, 48, 4]);
  assert.equal(reason(mut(icmp(4, 8), { 25: 0xff }, true)), "checksum");
  // ICMPv6's checksum covers the pseudo-header: another source breaks it.
  assert.equal(reason(mut(icmp(6, 128), { 23: 2 }, true)), "checksum");
  assert.equal(reason(ipPacket(4, 1, new Uint8Array(7))), "proto-header");
});

Deno.test("packet: the scratch record is fully overwritten by each parse", () => {
  const p = newParsed();
  assert.equal(parse(buildTcp(synSeg()), p), null);
  assert.equal(parse(icmp(4, 8), p), null);
  const tcp = pick(p, "sport", "dport", "seq", "ack", "flags", "window", "mss", "wscale");
  assert.deepEqual(tcp, [0, 0, 0, 0, 0, 0, 0, -1]);
  assert.equal(parse(udp(6), p), null);
  const udpFields = pick(p, "family", "proto", "icmpType", "icmpCode", "sport");
  assert.deepEqual(udpFields, [6, 17, -1, -1, 1234]);
});

// ---------------------------------------------------------------- round trips

const unicast4 = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat(0xffffff))
  .filter(([a]) => a !== 127)
  .map(([a, rest]) => Uint8Array.of(a, rest >> 16, rest >> 8, rest));
const unicast6 = fc.uint8Array({ minLength: 15, maxLength: 15 }).map((a) =>
  Uint8Array.of(0x20, ...a)
);
const endpoints = fc.oneof(
  fc.record({ family: fc.constant(4 as const), src: unicast4, dst: unicast4 }),
  fc.record({ family: fc.constant(6 as const), src: unicast6, dst: unicast6 }),
);
const port = fc.integer({ min: 1, max: 65535 });
const u32 = fc.nat({ max: 0xffffffff });
const optional = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

Deno.test("packet property: buildTcp and buildUdp output parses back to the same fields", () => {
  const seg = fc.record({
    sport: port,
    dport: port,
    seq: u32,
    ack: u32,
    flags: fc.nat(255).filter((f) => !(f & SYN && f & (FIN | RST))),
    window: fc.nat(65535),
    mss: optional(fc.integer({ min: 48, max: 65535 })),
    wscale: optional(fc.nat(14)),
    payload: fc.uint8Array({ maxLength: 200 }),
  });
  fc.assert(
    fc.property(endpoints, seg, (ends, s) => {
      const pkt = buildTcp({ ...ends, ...s });
      const p = parsed(pkt);
      const keys = ["sport", "dport", "seq", "ack", "flags", "window"] as const;
      const want = [ends.family, 6, ...keys.map((k) => s[k])];
      assert.deepEqual(pick(p, "family", "proto", ...keys), want);
      assert.deepEqual([p.mss, p.wscale], [s.mss ?? 0, s.wscale ?? -1]);
      assert.deepEqual([p.src, p.dst], [ends.src, ends.dst]);
      assert.deepEqual(pkt.subarray(p.data, p.data + p.dataLen), s.payload);
      assert.equal(pkt[ends.family === 4 ? 6 : 0], ends.family === 4 ? 0x40 : 0x60); // DF, v6
      const u = buildUdp(ends.family, ends.src, ends.dst, s.sport, s.dport, s.payload);
      const q = parsed(u);
      const udpWant = [17, s.sport, s.dport, ends.src, ends.dst];
      assert.deepEqual(pick(q, "proto", "sport", "dport", "src", "dst"), udpWant);
      assert.deepEqual(u.subarray(q.data, q.data + q.dataLen), s.payload);
      assert.notEqual(u[q.l4 + 6] | u[q.l4 + 7], 0); // a computed 0 goes out as 0xffff
    }),
    { numRuns: 400 },
  );
});

// ---------------------------------------------------------------- fuzzing

function checkInvariants(pkt: Uint8Array, p: ParsedPacket, why: string | null) {
  assert.ok(why === null || typeof why === "string");
  if (why !== null) return;
  assert.equal(p.src.length, p.family === 4 ? 4 : 16);
  assert.equal(p.dst.length, p.src.length);
  assert.ok(p.l4 >= (p.family === 4 ? 20 : 40) && p.l4 + p.l4Len <= pkt.length);
  assert.ok(p.data >= p.l4 && p.dataLen >= 0 && p.data + p.dataLen <= p.l4 + p.l4Len);
  assert.ok(p.mss === 0 || (p.mss >= 48 && p.mss <= 65535));
  assert.ok(p.wscale >= -1 && p.wscale <= 14);
}

Deno.test("packet fuzz: random bytes never throw", () => {
  const p = newParsed();
  const first = fc.constantFrom(0x45, 0x46, 0x4f, 0x60, -1);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), first, (b, v) => {
      if (b.length && v >= 0) b[0] = v;
      checkInvariants(b, p, parse(b, p));
    }),
    { numRuns: 3000 },
  );
});

/** Best effort: make checksums right again after a mutation, so fuzzing reaches deeper. */
function reseal(pkt: Uint8Array) {
  if (pkt.length < 20) return;
  const v4 = pkt[0] >> 4 === 4;
  const hl = v4 ? (pkt[0] & 15) * 4 : 40;
  const end = Math.min(pkt.length, v4 ? (pkt[2] << 8) | pkt[3] : 40 + ((pkt[4] << 8) | pkt[5]));
  // v6 seeds with extension headers carry TCP; the sum lands wherever the edits left it.
  if (hl >= 20 && end >= hl + 8) seal(pkt.subarray(0, end), hl, v4 ? pkt[9] : 6);
}

Deno.test("packet fuzz: mutated valid packets never throw and keep offsets consistent", () => {
  const seeds = [
    buildTcp(synSeg({ payload: Uint8Array.of(1, 2, 3) })),
    buildTcp(syn6({ payload: Uint8Array.of(1, 2, 3) })),
    withExt(buildTcp(syn6()), [[0, 8], [60, 16], [43, 8, 0]]),
    synWithOptions([2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 10]),
    udp(4, new Uint8Array(30)),
    udp(6, new Uint8Array(30)),
    icmp(4, 8),
    icmp(6, 128),
  ];
  const p = newParsed();
  const edits = fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 });
  fc.assert(
    fc.property(
      fc.constantFrom(...seeds),
      edits,
      fc.option(fc.nat()),
      fc.boolean(),
      fc.nat(8),
      (seed, edits, cut, fix, extra) => {
        let pkt = cat(seed, new Array(extra).fill(0));
        for (const [at, v] of edits) pkt[at % pkt.length] = v;
        if (cut !== null) pkt = pkt.subarray(0, cut % (pkt.length + 1));
        if (fix) reseal(pkt);
        const why = parse(pkt, p);
        checkInvariants(pkt, p, why);
        if (why === null) buildUnreachable(pkt, p);
      },
    ),
    { numRuns: 4000 },
  );
});

// ---------------------------------------------------------------- addresses and MSS

Deno.test("packet: addrText and parseAddr follow RFC 5952", () => {
  const canon = [
    ["10.99.0.1", "10.99.0.1"],
    ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // the first of two equal runs
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // never "::" for one group
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // the longest run
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ["::ffff:c000:201", "::ffff:192.0.2.1"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
  ];
  for (const [text, want] of canon) assert.equal(addrText(parseAddr(text)!), want, text);
  const bad = ". 1.2.3 256.1.1.1 01.2.3.4 1::2::3 12345:: 1:2:3:4:5:6:7:8:9 1:2:3:4:5:6:7 :1:: " +
    "::: 1.2.3.4:: fe80::1%eth0 ::1.2.3.256 g::";
  for (const text of ["", ...bad.split(" ")]) assert.equal(parseAddr(text), undefined, text);
});

Deno.test("packet property: parseAddr(addrText(a)) is the identity", () => {
  const zeroish = fc.array(fc.constantFrom(0, 0, 0, 1, 0xff), { minLength: 16, maxLength: 16 });
  const addr = fc.oneof(
    fc.uint8Array({ minLength: 4, maxLength: 4 }),
    fc.uint8Array({ minLength: 16, maxLength: 16 }),
    zeroish.map((a) => Uint8Array.from(a)),
  );
  fc.assert(
    fc.property(addr, (a) => assert.deepEqual(parseAddr(addrText(a)), a)),
    { numRuns: 500 },
  );
});

Deno.test("packet: v4Number and mssFor (§11)", () => {
  assert.equal(v4Number(CLIENT), 0x0a630001);
  assert.equal(v4Number(ip("255.255.255.255")), 4294967295);
  assert.equal(v4Number(ip("::ffff:1.2.3.4"), 12), 0x01020304);
  const table = [[1280, 1240, 1220], [1400, 1360, 1340], [1500, 1460, 1440]];
  for (const [mtu, v4, v6] of table) assert.deepEqual([mssFor(4, mtu), mssFor(6, mtu)], [v4, v6]);
});
