/** IPv4 CIDR arithmetic for route checks. Pure. */
import { ExitCode, UserError } from "../errors.ts";

export interface Cidr {
  /** Network address as an unsigned 32-bit number. */
  base: number;
  prefix: number;
  text: string;
}

export function parseIpv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

export function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parse "a.b.c.d/n" (a bare address means /32). Host bits must be zero, as routes need. */
export function parseCidr(s: string): Cidr {
  const [addr, p, extra] = s.trim().split("/");
  const base = parseIpv4(addr);
  const prefix = p === undefined ? 32 : Number(p);
  if (
    base === undefined || extra !== undefined || !Number.isInteger(prefix) || prefix < 0 ||
    prefix > 32 || (p !== undefined && !/^\d+$/.test(p))
  ) {
    throw new UserError(
      `${JSON.stringify(s)} is not an IPv4 CIDR like 10.0.0.0/16`,
      ExitCode.Usage,
    );
  }
  if ((base & ~mask(prefix)) >>> 0 !== 0) {
    const net = formatIpv4((base & mask(prefix)) >>> 0);
    throw new UserError(`${s} has host bits set: did you mean ${net}/${prefix}?`, ExitCode.Usage);
  }
  return { base, prefix, text: `${formatIpv4(base)}/${prefix}` };
}

export function contains(c: Cidr, ip: number): boolean {
  return ((ip & mask(c.prefix)) >>> 0) === c.base;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & mask(p)) >>> 0) === ((b.base & mask(p)) >>> 0);
}

/**
 * The VPC resolver (Amazon Route 53 Resolver, "AmazonProvidedDNS") for a VPC's primary IPv4
 * CIDR: the network's base address + 2 (DESIGN §9). Undefined for text that is not an IPv4
 * CIDR, or a network too small to hold base + 2 (AWS allows /16 to /28). Host bits in the text
 * are ignored, as EC2 never returns them.
 */
export function vpcResolverAddress(vpcCidr: string): string | undefined {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(vpcCidr.trim());
  const addr = m ? parseIpv4(m[1]) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (addr === undefined || !(prefix <= 30)) return undefined;
  return formatIpv4(((addr & mask(prefix)) >>> 0) + 2);
}
