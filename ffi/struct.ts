/**
 * Pure helpers for building C structs by hand: IP address bytes (network order, as sockaddrs and
 * netlink attributes carry them), CIDRs, fixed-size C name fields. No FFI here, so they test on
 * any OS.
 */

/** Bad input to an encoder or a decoder (never a crash). */
export class StructError extends Error {
  override name = "StructError";
}

/** "10.1.2.3" → 4 bytes. Strict: four decimal octets, no leading "+" or spaces. */
export function parseIPv4(s: string): Uint8Array<ArrayBuffer> | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^\d{1,3}$/.test(parts[i])) return undefined;
    const v = Number(parts[i]);
    if (v > 255) return undefined;
    out[i] = v;
  }
  return out;
}

/** "fd7a::1" → 16 bytes (also accepts a trailing dotted IPv4 part, "::ffff:1.2.3.4"). */
export function parseIPv6(s: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  if (s.includes(".")) {
    // Rewrite the dotted tail as two hex groups, then parse as usual.
    const at = s.lastIndexOf(":");
    const v4 = at < 0 ? undefined : parseIPv4(s.slice(at + 1));
    if (!v4) return undefined;
    const hi = ((v4[0] << 8) | v4[1]).toString(16), lo = ((v4[2] << 8) | v4[3]).toString(16);
    s = `${s.slice(0, at + 1)}${hi}:${lo}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const head = groups(halves[0]);
  const rest = halves.length === 2 ? groups(halves[1]) : [];
  for (const g of [...head, ...rest]) if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
  const total = head.length + rest.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const words = [
    ...head.map((g) => parseInt(g, 16)),
    ...new Array<number>(8 - total).fill(0),
    ...rest.map((g) => parseInt(g, 16)),
  ];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** Either family; throws StructError naming the bad text. */
export function parseIP(s: string): Uint8Array<ArrayBuffer> {
  const b = parseIPv4(s) ?? (s.includes(":") ? parseIPv6(s) : undefined);
  if (!b) throw new StructError(`not an IP address: ${JSON.stringify(s)}`);
  return b;
}

/** 4 or 16 bytes → text (IPv6 in RFC 5952 short form, IPv4-mapped as `::ffff:a.b.c.d`, §5). */
export function formatIP(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join(".");
  if (b.length !== 16) throw new StructError(`address of ${b.length} bytes`);
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((b[i] << 8) | b[i + 1]);
  if (w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff) {
    return `::ffff:${Array.from(b.subarray(12)).join(".")}`;
  }
  // Longest run of at least two zero words becomes "::".
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

export interface Cidr {
  /** Network address bytes with host bits cleared. */
  address: Uint8Array<ArrayBuffer>;
  prefixLength: number;
}

/** "10.0.0.0/8" (or a bare address = host route) → bytes + prefix, host bits cleared. */
export function parseCidr(s: string): Cidr {
  const slash = s.indexOf("/");
  const address = parseIP(slash < 0 ? s : s.slice(0, slash));
  const max = address.length * 8;
  const lenText = slash < 0 ? String(max) : s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) {
    throw new StructError(`bad prefix length in ${JSON.stringify(s)}`);
  }
  const prefixLength = Number(lenText);
  for (let bit = prefixLength; bit < max; bit++) address[bit >> 3] &= ~(0x80 >> (bit & 7));
  return { address, prefixLength };
}

/** Interface name → fixed IFNAMSIZ (16) field: at most 15 bytes plus NUL. */
export function ifName(name: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length === 0 || bytes.length > 15 || bytes.includes(0)) {
    throw new StructError(`interface name must be 1-15 bytes: ${JSON.stringify(name)}`);
  }
  const out = new Uint8Array(16);
  out.set(bytes);
  return out;
}

/** Text up to the first NUL (or the end) of a fixed C char field. */
export function readCString(b: Uint8Array): string {
  const end = b.indexOf(0);
  return new TextDecoder().decode(end < 0 ? b : b.subarray(0, end));
}
