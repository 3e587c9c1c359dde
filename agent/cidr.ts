/**
 * IPv4 addresses and CIDR blocks as unsigned 32-bit numbers. Pure. The agent's data path
 * compares numbers (ipv4Src/ipv4Dst from packet.ts) rather than strings, so everything that
 * classifies addresses works on u32.
 */

export interface Cidr {
  /** Network address (host bits zero). */
  base: number;
  prefix: number;
}

/** Parse dotted-quad text; undefined when it is not exactly four decimal octets. */
export function parseIpv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255 || (m[i].length > 1 && m[i][0] === "0")) return undefined;
    n = n * 256 + o;
  }
  return n;
}

export function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * Parse "a.b.c.d/n" (or a bare address as /32). With `strict`, host bits must be zero so a typo
 * like 10.0.0.1/8 is reported instead of silently meaning 10.0.0.0/8.
 */
export function parseCidr(text: string, strict = true): Cidr | undefined {
  const [addr, len, ...rest] = text.split("/");
  if (rest.length) return undefined;
  const ip = parseIpv4(addr);
  if (ip === undefined) return undefined;
  const prefix = len === undefined ? 32 : /^\d{1,2}$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 0 && prefix <= 32)) return undefined;
  const base = (ip & maskOf(prefix)) >>> 0;
  if (strict && base !== ip) return undefined;
  return { base, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.base)}/${c.prefix}`;
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ((ip & maskOf(c.prefix)) >>> 0) === c.base;
}
