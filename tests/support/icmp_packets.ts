/**
 * Packets for the ICMP "administratively prohibited" tests (agent/icmp_reject.ts,
 * src/net/icmp_prohibited.ts): a one's-complement sum written apart from src/netstack/checksum.ts
 * to cross-check it, fast-check arbitraries for IPv4/IPv6 packets together with the RFC 1122 /
 * RFC 4443 verdict the test expects for each, and a libc UDP socket whose pending error (SO_ERROR)
 * shows what the kernel made of an ICMP error.
 */
import fc from "fast-check";
import assert from "node:assert/strict";
import { linuxPlatform } from "../../src/net/linux.ts";
import type { Tun } from "../../src/net/types.ts";
import { inNetns, netnsAvailable, withNetns } from "./netns.ts";

/**
 * The one's-complement sum of the 16-bit words of the chunks laid end to end, with the carry
 * added back at every step. Data carrying a valid checksum sums to 0xffff.
 */
export function onesSum(...chunks: Uint8Array[]): number {
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  let s = 0;
  for (let i = 0; i < all.length; i += 2) {
    s += all[i] * 256 + (i + 1 < all.length ? all[i + 1] : 0);
    if (s > 0xffff) s -= 0xffff;
  }
  return s;
}

/** Both checksums of an IPv4 ICMP message hold. */
export function checksums4Ok(p: Uint8Array): boolean {
  const hl = (p[0] & 15) * 4;
  return onesSum(p.subarray(0, hl)) === 0xffff && onesSum(p.subarray(hl)) === 0xffff;
}

/** The ICMPv6 checksum (over the RFC 8200 §8.1 pseudo-header) of a packet with no extensions holds. */
export function checksum6Ok(p: Uint8Array): boolean {
  const len = p.length - 40;
  const pseudo = new Uint8Array(40);
  pseudo.set(p.subarray(8, 40));
  new DataView(pseudo.buffer).setUint32(32, len);
  pseudo[39] = p[6];
  return onesSum(pseudo, p.subarray(40)) === 0xffff;
}

// ---- IPv4 ----------------------------------------------------------------------------------

export interface V4Spec {
  words: number;
  id: number;
  mf: boolean;
  frag: number;
  proto: number;
  src: number[];
  dst: number[];
  l4: Uint8Array;
  badChecksum: boolean;
  /** Bytes past the total length (link padding). */
  pad: Uint8Array;
  /** Cut the packet to this fraction of its total length (a truncated read). */
  cut: number | null;
}

const byte = fc.integer({ min: 0, max: 255 });
/** Mostly ordinary unicast, often enough one of the addresses that get no answer. */
const addr4 = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(fc.integer({ min: 1, max: 223 }), byte, byte, byte).map((a): number[] => a),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom(0, 10, 127, 223, 224, 239, 240, 255), byte, byte, byte)
      .map((a): number[] => a),
  },
  { weight: 1, arbitrary: fc.constant([255, 255, 255, 255]).map((a) => [...a]) },
);
const rare = <T>(usual: fc.Arbitrary<T>, unusual: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 6, arbitrary: usual }, { weight: 1, arbitrary: unusual });
/** A payload whose first byte is often an interesting ICMP type. */
const l4 = (types: number[]) =>
  fc.oneof(
    { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
    {
      weight: 6,
      arbitrary: fc.tuple(
        fc.oneof(fc.constantFrom(...types), fc.integer({ min: 0, max: 255 })),
        fc.uint8Array({ maxLength: 1500 }),
      ).map(([t, rest]) => Uint8Array.of(t, ...rest)),
    },
  );

export const arbV4: fc.Arbitrary<V4Spec> = fc.record({
  words: fc.integer({ min: 5, max: 15 }),
  id: fc.integer({ min: 0, max: 0xffff }),
  mf: fc.boolean(),
  frag: rare(fc.constant(0), fc.integer({ min: 1, max: 8191 })),
  proto: fc.oneof(fc.constantFrom(1, 6, 17), fc.integer({ min: 0, max: 255 })),
  src: addr4,
  dst: addr4,
  l4: l4([0, 3, 4, 5, 8, 11, 12, 13]),
  badChecksum: rare(fc.constant(false), fc.constant(true)),
  pad: fc.uint8Array({ maxLength: 4 }),
  cut: rare(fc.constant(null), fc.double({ min: 0, max: 0.999, noNaN: true })),
});

export function buildV4(s: V4Spec): Uint8Array {
  const hl = s.words * 4;
  const total = hl + s.l4.length;
  const p = new Uint8Array(total + s.pad.length);
  const v = new DataView(p.buffer);
  p[0] = 0x40 | s.words;
  v.setUint16(2, total);
  v.setUint16(4, s.id);
  v.setUint16(6, (s.mf ? 0x2000 : 0) | s.frag);
  p[8] = 64;
  p[9] = s.proto;
  p.set(s.src, 12);
  p.set(s.dst, 16);
  for (let i = 20; i < hl; i++) p[i] = 1; // NOP options
  v.setUint16(10, (~onesSum(p.subarray(0, hl)) & 0xffff) ^ (s.badChecksum ? 1 : 0));
  p.set(s.l4, hl);
  p.set(s.pad, total);
  return s.cut === null ? p : p.slice(0, Math.floor(total * s.cut));
}

/** Does RFC 1122 §3.2.2 (or plain malformation) forbid answering this packet? */
export function forbidden4(s: V4Spec): boolean {
  const [s0] = s.src;
  const [d0] = s.dst;
  return s.cut !== null || s.badChecksum || s.frag !== 0 ||
    s0 === 0 || s0 === 127 || s0 >= 224 ||
    (d0 >= 224 && d0 < 240) || s.dst.every((b) => b === 255) ||
    (s.proto === 1 && (s.l4.length === 0 || [3, 4, 5, 11, 12].includes(s.l4[0])));
}

// ---- IPv6 ----------------------------------------------------------------------------------

export type Ext6 = { nh: 0 | 43 | 60 | 135 | 139 | 140 | 51; units: number } | {
  nh: 44;
  offset: number;
};

export interface V6Spec {
  src: Uint8Array;
  dst: Uint8Array;
  ext: Ext6[];
  nh: number;
  l4: Uint8Array;
  pad: Uint8Array;
  cut: number | null;
}

const special6 = ["::", "::1", "ff02::1", "fe80::1", "fd00:64::2", "2001:db8::1"].map(bytes6);
const addr6 = fc.oneof(
  fc.constantFrom(...special6),
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
);
const ext6: fc.Arbitrary<Ext6> = fc.oneof(
  fc.record({
    nh: fc.constantFrom(0 as const, 43 as const, 60 as const, 135 as const, 139 as const),
    units: fc.integer({ min: 0, max: 3 }),
  }),
  fc.record({ nh: fc.constantFrom(51 as const), units: fc.constantFrom(0, 2, 4) }),
  fc.record({
    nh: fc.constant(44 as const),
    offset: rare(fc.constant(0), fc.integer({ min: 1, max: 8191 })),
  }),
);
const EXT_CODES = [0, 43, 44, 51, 60, 135, 139, 140];

export const arbV6: fc.Arbitrary<V6Spec> = fc.record({
  src: addr6,
  dst: addr6,
  ext: fc.array(ext6, { maxLength: 4 }),
  nh: fc.oneof(
    fc.constantFrom(58, 6, 17, 59),
    fc.integer({ min: 0, max: 255 }).filter((n) => !EXT_CODES.includes(n)),
  ),
  l4: l4([1, 2, 3, 4, 127, 128, 129, 133, 135, 137]),
  pad: fc.uint8Array({ maxLength: 4 }),
  cut: rare(fc.constant(null), fc.double({ min: 0, max: 0.999, noNaN: true })),
});

export function buildV6(s: V6Spec): Uint8Array {
  const heads = s.ext.map((e) => {
    const h = new Uint8Array(e.nh === 44 ? 8 : e.nh === 51 ? (e.units + 2) * 4 : (e.units + 1) * 8);
    if (e.nh === 44) new DataView(h.buffer).setUint16(2, e.offset << 3);
    else h[1] = e.units;
    return h;
  });
  const plen = heads.reduce((n, h) => n + h.length, 0) + s.l4.length;
  const p = new Uint8Array(40 + plen + s.pad.length);
  p[0] = 0x60;
  new DataView(p.buffer).setUint16(4, plen);
  p[7] = 64;
  p.set(s.src, 8);
  p.set(s.dst, 24);
  let nextAt = 6;
  let at = 40;
  s.ext.forEach((e, i) => {
    p[nextAt] = e.nh;
    p.set(heads[i], at);
    nextAt = at;
    at += heads[i].length;
  });
  p[nextAt] = s.nh;
  p.set(s.l4, at);
  p.set(s.pad, 40 + plen);
  return s.cut === null ? p : p.slice(0, Math.floor((40 + plen) * s.cut));
}

/** Does RFC 4443 §2.4(e) (or plain malformation) forbid answering this packet? */
export function forbidden6(s: V6Spec): boolean {
  const zeroTo = (a: Uint8Array, n: number) => a.subarray(0, n).every((b) => b === 0);
  const plen = buildV6({ ...s, pad: new Uint8Array(0), cut: null }).length - 40;
  return s.cut !== null || plen === 0 ||
    s.src[0] === 0xff || (zeroTo(s.src, 15) && s.src[15] <= 1) || s.dst[0] === 0xff ||
    s.ext.some((e) => e.nh === 44 && e.offset !== 0) ||
    (s.nh === 58 && (s.l4.length === 0 || s.l4[0] < 128 || s.l4[0] === 137));
}

export function bytes6(text: string): Uint8Array {
  const [head, tail] = text.split("::");
  const words = (t: string | undefined) => (t ? t.split(":").map((w) => parseInt(w, 16)) : []);
  const h = words(head);
  const t = tail === undefined ? [] : words(tail);
  const all = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  const b = new Uint8Array(16);
  all.forEach((w, i) => new DataView(b.buffer).setUint16(i * 2, w));
  return b;
}

// ---- a connected UDP socket through libc ---------------------------------------------------

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

/**
 * A UDP socket connected to `host`:`port` (IPv4 or IPv6 bytes). node:dgram in Deno does not
 * surface a connected socket's ICMP errors, so this asks the kernel directly: `pendingError`
 * is getsockopt(SO_ERROR), the errno an ICMP error left on the socket (0: none).
 */
export class ConnectedUdp {
  #lib = Deno.dlopen("libc.so.6", SYMBOLS);
  #fd: number;

  constructor(host: Uint8Array, port: number) {
    const v6 = host.length === 16;
    this.#fd = this.#lib.symbols.socket(v6 ? 10 : 2, 2, /* SOCK_DGRAM */ 0);
    if (this.#fd < 0) throw new Error("socket() failed");
    const sa = new Uint8Array(v6 ? 28 : 16);
    const v = new DataView(sa.buffer);
    v.setUint16(0, v6 ? 10 : 2, true);
    v.setUint16(2, port);
    sa.set(host, v6 ? 8 : 4);
    if (this.#lib.symbols.connect(this.#fd, sa, sa.length) !== 0) {
      this.close();
      throw new Error("connect() failed");
    }
  }

  send(data: Uint8Array<ArrayBuffer>): void {
    if (this.#lib.symbols.send(this.#fd, data, BigInt(data.length), 0) < 0) {
      throw new Error("send() failed");
    }
  }

  /** SO_ERROR: reading it clears it, as the next send or recv would. */
  pendingError(): number {
    const val = new Uint8Array(4);
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, 4, true);
    if (this.#lib.symbols.getsockopt(this.#fd, 1, 4, val, len) !== 0) {
      throw new Error("getsockopt(SO_ERROR) failed");
    }
    return new DataView(val.buffer).getInt32(0, true);
  }

  close(): void {
    this.#lib.symbols.close(this.#fd);
    this.#lib.close();
  }
}

// ---- a kernel on the other side of a tun (the two kernel tests) ----------------------------

/** The tun both kernel scenarios write their packets into (100.64.0.2 and fd00:64::2 on it). */
export function openScenarioTun(): Promise<Tun> {
  return linuxPlatform().openTun({
    name: "ssmpt0",
    mtu: 1400,
    address: "100.64.0.2",
    peer: "100.64.0.1",
    prefixLength: 32,
    address6: "fd00:64::2",
  });
}

/**
 * A Deno.test running `url` (a test file that is also a script) with the argument `kernel` in a
 * fresh network namespace; the scenario prints "kernel ok" when every check held.
 */
export function kernelScenarioTest(name: string, ns: string, url: string): void {
  Deno.test({
    name,
    ignore: Deno.build.os !== "linux",
    async fn() {
      const a = netnsAvailable();
      if (!a.ok) throw new Error(`this test needs root and /dev/net/tun on Linux: ${a.why}`);
      await withNetns([ns], async (n) => {
        const o = await inNetns(n, url, ["kernel"]);
        assert.equal(o.code, 0, `kernel scenario failed:\n${o.stdout}\n${o.stderr}`);
        assert.match(o.stdout, /kernel ok/);
      });
    },
  });
}
