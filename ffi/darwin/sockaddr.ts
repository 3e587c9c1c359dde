/**
 * BSD socket addresses as darwin lays them out (os-ffi §4.1): `sa_len` u8 then `sa_family` u8,
 * unlike Linux's u16 family. Pure encoders and a lenient decoder for what the routing socket sends
 * back (truncated netmasks, family 0/0xff on masks, zero-length placeholders).
 */
import { StructError } from "../struct.ts";
import { AF_INET, AF_INET6, AF_LINK, IFT_OTHER } from "./constants.ts";

/** sockaddr_in (16 bytes): len, family, port (0), address, zero. */
export function sockaddrIn(addr: Uint8Array): Uint8Array<ArrayBuffer> {
  if (addr.length !== 4) throw new StructError(`IPv4 address of ${addr.length} bytes`);
  const b = new Uint8Array(16);
  b[0] = 16;
  b[1] = AF_INET;
  b.set(addr, 4);
  return b;
}

/** sockaddr_in6 (28 bytes): len, family 30, port 0, flowinfo 0, address @8, scope 0. */
export function sockaddrIn6(addr: Uint8Array): Uint8Array<ArrayBuffer> {
  if (addr.length !== 16) throw new StructError(`IPv6 address of ${addr.length} bytes`);
  const b = new Uint8Array(28);
  b[0] = 28;
  b[1] = AF_INET6;
  b.set(addr, 8);
  return b;
}

/** sockaddr_in or sockaddr_in6 by address length. */
export function sockaddrIp(addr: Uint8Array): Uint8Array<ArrayBuffer> {
  return addr.length === 4 ? sockaddrIn(addr) : sockaddrIn6(addr);
}

/** The prefix as a mask of the address's size (255.255.255.252 for /30). */
export function maskBytes(prefixLength: number, size: 4 | 16): Uint8Array<ArrayBuffer> {
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > size * 8) {
    throw new StructError(`prefix length ${prefixLength} for a ${size * 8}-bit address`);
  }
  const m = new Uint8Array(size);
  for (let bit = 0; bit < prefixLength; bit++) m[bit >> 3] |= 0x80 >> (bit & 7);
  return m;
}

/**
 * A netmask sockaddr trimmed after its last non-zero byte, as route(8) sends it (/8 → len 5).
 * An all-zero mask keeps its full length: a zero-length sockaddr would end the kernel's parse of
 * every later address in the message (os-ffi §1 item 6).
 */
export function sockaddrMask(prefixLength: number, size: 4 | 16): Uint8Array<ArrayBuffer> {
  const full = sockaddrIp(maskBytes(prefixLength, size));
  let end = full.length;
  while (end > 0 && full[end - 1] === 0) end--;
  if (prefixLength === 0) return full;
  full[0] = end;
  return full.slice(0, end);
}

/**
 * sockaddr_dl naming an interface (20 bytes, as route(8) copies it from getifaddrs): the kernel
 * only needs `sdl_index`, the name makes the message readable in a capture. With no index and no
 * name it is the empty sockaddr_dl that asks RTM_GET to report the interface (IFP).
 */
export function sockaddrDl(index = 0, name = ""): Uint8Array<ArrayBuffer> {
  const nameBytes = new TextEncoder().encode(name);
  if (nameBytes.length > 12) throw new StructError(`interface name too long: ${name}`);
  const b = new Uint8Array(20);
  b[0] = 20;
  b[1] = AF_LINK;
  new DataView(b.buffer).setUint16(2, index, true);
  if (index !== 0 || name) b[4] = IFT_OTHER;
  b[5] = nameBytes.length;
  b.set(nameBytes, 8);
  return b;
}

export interface DecodedSockaddr {
  family: number;
  /** AF_INET/AF_INET6 (or a mask read with the destination's family): the address bytes. */
  ip?: Uint8Array;
  /** AF_LINK. */
  link?: { index: number; type: number; name: string };
}

/**
 * Decode one kernel sockaddr. Bytes missing from a truncated sockaddr are zero; `familyHint`
 * interprets masks, whose family may be 0 or 0xff.
 */
export function decodeSockaddr(raw: Uint8Array, familyHint?: number): DecodedSockaddr {
  const len = raw.length;
  const stated = len >= 2 ? raw[1] : 0;
  const family = stated === AF_INET || stated === AF_INET6 || stated === AF_LINK
    ? stated
    : familyHint ?? stated;
  const at = (i: number) => (i < len ? raw[i] : 0);
  if (family === AF_INET) {
    return { family, ip: Uint8Array.from({ length: 4 }, (_, i) => at(4 + i)) };
  }
  if (family === AF_INET6) {
    return { family, ip: Uint8Array.from({ length: 16 }, (_, i) => at(8 + i)) };
  }
  if (family === AF_LINK) {
    const index = at(2) | (at(3) << 8);
    const nlen = Math.min(at(5), Math.max(0, len - 8));
    const name = new TextDecoder().decode(raw.subarray(8, 8 + nlen));
    return { family, link: { index, type: at(4), name } };
  }
  return { family };
}
