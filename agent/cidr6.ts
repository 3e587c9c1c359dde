/**
 * IPv6 addresses and blocks for the agent, as 16-byte arrays. Pure. The data path tests packet
 * bytes in place (`contains6At`), so nothing here allocates per packet.
 *
 * A tunnel's IPv6 address is derived from its IPv4 lease: the same host index within `pool6` as
 * within `pool` (100.64.0.2 → fd7a:5353:5d8b::2). Leases stay IPv4-only on disk and a tunnel
 * keeps both addresses across restarts of the agent.
 */
import { formatIP, parseIPv6 } from "../ffi/struct.ts";
import type { Cidr } from "./cidr.ts";
import { masked6 } from "../src/net/cidr6.ts";

export { DEFAULT_POOL6 } from "../src/net/cidr6.ts";

export interface Cidr6 {
  /** Network address (host bits zero). */
  bytes: Uint8Array;
  prefix: number;
}

/** Parse "addr/n" (a bare address as /128); with `strict`, host bits must be zero. */
export function parseCidr6(text: string, strict = true): Cidr6 | undefined {
  const [addr, len, ...rest] = text.split("/");
  if (rest.length || addr.includes("%")) return undefined;
  const ip = parseIPv6(addr);
  if (!ip) return undefined;
  const prefix = len === undefined ? 128 : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 0 && prefix <= 128)) return undefined;
  const bytes = masked6(ip, prefix);
  if (strict && bytes.some((b, i) => b !== ip[i])) return undefined;
  return { bytes, prefix };
}

export function formatCidr6(c: Cidr6): string {
  return `${formatIP(c.bytes)}/${c.prefix}`;
}

export const formatIpv6 = (b: Uint8Array): string => formatIP(b);

/** Is the address at `p[off..off+16]` inside `c`? */
export function contains6At(c: Cidr6, p: Uint8Array, off: number): boolean {
  const full = c.prefix >> 3;
  for (let i = 0; i < full; i++) if (p[off + i] !== c.bytes[i]) return false;
  const rem = c.prefix & 7;
  if (rem === 0) return true;
  return (p[off + full] & ((0xff00 >> rem) & 0xff)) === c.bytes[full];
}

export const contains6 = (c: Cidr6, address: Uint8Array): boolean =>
  address.length === 16 && contains6At(c, address, 0);

export function equal6At(a: Uint8Array, p: Uint8Array, off: number): boolean {
  for (let i = 0; i < 16; i++) if (p[off + i] !== a[i]) return false;
  return true;
}

/** Do host bits [from, to) of the address at `p[off..]` all read zero? */
function bitsZero(p: Uint8Array, off: number, from: number, to: number): boolean {
  for (let bit = from; bit < to; bit++) {
    if (p[off + (bit >> 3)] & (0x80 >> (bit & 7))) return false;
  }
  return true;
}

/** Why `pool6` cannot hold `pool`'s host indexes; undefined when it can. */
export function pool6Misfit(pool6: Cidr6, pool: Cidr): string | undefined {
  const need = 32 - pool.prefix;
  const have = 128 - pool6.prefix;
  return have >= need
    ? undefined
    : `/${pool6.prefix} leaves ${have} host bits, fewer than pool /${pool.prefix} needs (${need})`;
}

/**
 * The pair (pool, pool6) and the mapping between them: a tunnel's IPv6 address from its IPv4 one,
 * and back for packets read from the tun.
 */
export class Pool6 {
  readonly #hostBits: number;
  readonly #hostMask: number;

  constructor(readonly cidr: Cidr6, readonly pool: Cidr) {
    const misfit = pool6Misfit(cidr, pool);
    if (misfit) throw new RangeError(`pool6 ${formatCidr6(cidr)}: ${misfit}`);
    this.#hostBits = 32 - pool.prefix;
    this.#hostMask = this.#hostBits === 32 ? 0xffffffff : 2 ** this.#hostBits - 1;
  }

  /** The IPv6 address with the same host index as IPv4 `address` (which must be in the pool). */
  addressOf(address: number): Uint8Array {
    const index = (address - this.pool.base) >>> 0;
    const out = this.cidr.bytes.slice();
    // The pool's host bits all fall in the last 32 bits (pool6Misfit), which are zero in cidr.
    out[12] |= index >>> 24;
    out[13] |= (index >>> 16) & 0xff;
    out[14] |= (index >>> 8) & 0xff;
    out[15] |= index & 0xff;
    return out;
  }

  /** The agent's own tun address: host index 1, like the IPv4 side. */
  get agentAddress(): Uint8Array {
    return this.addressOf(this.pool.base + 1);
  }

  /**
   * The IPv4 pool address with the same host index as the IPv6 address at `p[off..off+16]`, or
   * -1 when that address is outside pool6 or its index does not fit the IPv4 pool.
   */
  ipv4Of(p: Uint8Array, off: number): number {
    if (p.length < off + 16 || !contains6At(this.cidr, p, off)) return -1;
    if (!bitsZero(p, off, this.cidr.prefix, 128 - this.#hostBits)) return -1;
    // The last 32 bits may still hold network bits of a long pool6 prefix: keep the host bits.
    const low = (p[off + 12] << 24) | (p[off + 13] << 16) | (p[off + 14] << 8) | p[off + 15];
    return (this.pool.base + ((low & this.#hostMask) >>> 0)) >>> 0;
  }
}
