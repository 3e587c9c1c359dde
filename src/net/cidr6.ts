/** IPv6 CIDRs as the user types them (`--cidr 2001:db8:10::/56`): parsed, checked, normalised. Pure. */
import { formatIP, parseIPv6 } from "../../ffi/struct.ts";
import { ExitCode, UserError } from "../errors.ts";

export interface Cidr6 {
  /** The network's 16 bytes (host bits zero). */
  bytes: Uint8Array;
  prefix: number;
  /** Canonical text (RFC 5952), e.g. "2001:db8:10::/56". */
  text: string;
}

/** The agent's IPv6 pool unless its config says otherwise (agent/config.ts `pool6`). */
export const DEFAULT_POOL6 = "fd7a:5353:5d8b::/48";

/** ::/0 as two routes more specific than any default route, like 0.0.0.0/1 + 128.0.0.0/1. */
export const HALF_DEFAULTS6 = ["::/1", "8000::/1"] as const;

export function isIpv6Text(s: string): boolean {
  return s.includes(":");
}

/** Parse "addr/n" (a bare address means /128). Host bits must be zero, as routes need. */
export function parseCidr6(s: string): Cidr6 {
  const [addr, p, extra] = s.trim().split("/");
  const bytes = parseIPv6(addr);
  const prefix = p === undefined ? 128 : Number(p);
  if (
    !bytes || addr.includes("%") || extra !== undefined || !Number.isInteger(prefix) ||
    prefix < 0 || prefix > 128 || (p !== undefined && !/^\d+$/.test(p))
  ) {
    throw new UserError(
      `${JSON.stringify(s)} is not an IPv6 CIDR like 2001:db8:10::/56`,
      ExitCode.Usage,
    );
  }
  const net = masked6(bytes, prefix);
  if (!equal(net, bytes)) {
    throw new UserError(
      `${s} has host bits set: did you mean ${formatIP(net)}/${prefix}?`,
      ExitCode.Usage,
    );
  }
  return { bytes: net, prefix, text: `${formatIP(net)}/${prefix}` };
}

export function contains6(c: Cidr6, address: Uint8Array): boolean {
  return address.length === 16 && equal(masked6(address, c.prefix), c.bytes);
}

export function overlaps6(a: Cidr6, b: Cidr6): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return equal(masked6(a.bytes, p), masked6(b.bytes, p));
}

/** The network part of an address: its first `prefix` bits, the rest zero (also the agent's). */
export function masked6(b: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = b[i] & ((0xff00 >> bits) & 0xff);
  }
  return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
