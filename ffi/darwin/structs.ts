/**
 * The fixed-size structs the utun and interface ioctls take (os-ffi §4.1, golden bytes §10.1),
 * pure so they test on any OS. Every buffer is the full struct size: the kernel copies in as many
 * bytes as the ioctl number says, whatever we allocated.
 */
import { ifName, StructError } from "../struct.ts";
import {
  AF_INET6,
  AF_SYS_CONTROL,
  AF_SYSTEM,
  MAX_KCTL_NAME,
  ND6_INFINITE_LIFETIME,
  UTUN_CONTROL_NAME,
} from "./constants.ts";
import { maskBytes, sockaddrIn, sockaddrIn6 } from "./sockaddr.ts";

/** ctl_info (100 bytes) for CTLIOCGINFO: ctl_id 0 @0 (filled in by the kernel), name @4. */
export function encodeCtlInfo(name = UTUN_CONTROL_NAME): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length >= MAX_KCTL_NAME) throw new StructError(`control name too long: ${name}`);
  const b = new Uint8Array(100);
  b.set(bytes, 4);
  return b;
}

/** The control id CTLIOCGINFO wrote back (host order u32 @0). */
export function decodeCtlId(ctlInfo: Uint8Array): number {
  return new DataView(ctlInfo.buffer, ctlInfo.byteOffset, 4).getUint32(0, true);
}

/**
 * sockaddr_ctl (32 bytes) for connect(): sc_unit 0 lets utun pick the lowest free unit; N+1 asks
 * for utunN (EBUSY if taken).
 */
export function encodeSockaddrCtl(ctlId: number, unit = 0): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(32);
  const dv = new DataView(b.buffer);
  b[0] = 32;
  b[1] = AF_SYSTEM;
  dv.setUint16(2, AF_SYS_CONTROL, true);
  dv.setUint32(4, ctlId >>> 0, true);
  dv.setUint32(8, unit >>> 0, true);
  return b;
}

/** in_aliasreq (64 bytes) for SIOCAIFADDR: name, local, destination (peer), netmask. */
export function encodeInAliasreq(
  ifname: string,
  local: Uint8Array,
  peer: Uint8Array,
  prefixLength: number,
): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(64);
  b.set(ifName(ifname));
  b.set(sockaddrIn(local), 16);
  // A point-to-point interface refuses a zero destination with EDESTADDRREQ (os-ffi §6).
  if (peer.every((x) => x === 0)) throw new StructError("a utun address needs a non-zero peer");
  b.set(sockaddrIn(peer), 32);
  b.set(sockaddrIn(maskBytes(prefixLength, 4)), 48);
  return b;
}

/**
 * in6_aliasreq (128 bytes) for SIOCAIFADDR_IN6: name @0, addr @16, dstaddr @44, prefixmask @72,
 * flags i32 @100, lifetime @104 (vltime @120, pltime @124). A p2p destination requires /128; no
 * peer leaves dstaddr all zeros (AF_UNSPEC), which xnu accepts with any prefix. Infinite
 * lifetimes, because vltime 0 makes the address expire at once (os-ffi §6).
 */
export function encodeIn6Aliasreq(
  ifname: string,
  local: Uint8Array,
  peer: Uint8Array | undefined,
  prefixLength: number,
  flags = 0,
): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(128);
  const dv = new DataView(b.buffer);
  b.set(ifName(ifname));
  b.set(sockaddrIn6(local), 16);
  if (peer) b.set(sockaddrIn6(peer), 44);
  b.set(sockaddrIn6(maskBytes(prefixLength, 16)), 72);
  dv.setInt32(100, flags, true);
  dv.setUint32(120, ND6_INFINITE_LIFETIME, true);
  dv.setUint32(124, ND6_INFINITE_LIFETIME, true);
  return b;
}

/** ifreq (32 bytes on darwin, 40 on Linux) with only the name set: SIOCGIFFLAGS/SIOCGIFMTU. */
export function encodeIfreq(ifname: string): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(32);
  b.set(ifName(ifname));
  return b;
}

/** ifreq for SIOCSIFMTU: ifr_mtu i32 @16. */
export function encodeIfreqMtu(ifname: string, mtu: number): Uint8Array<ArrayBuffer> {
  const b = encodeIfreq(ifname);
  new DataView(b.buffer).setInt32(16, mtu, true);
  return b;
}

/** ifreq for SIOCSIFFLAGS: ifr_flags is 16 bits @16. */
export function encodeIfreqFlags(ifname: string, flags: number): Uint8Array<ArrayBuffer> {
  const b = encodeIfreq(ifname);
  new DataView(b.buffer).setUint16(16, flags & 0xffff, true);
  return b;
}

/** ifreq for SIOCDIFADDR: ifr_addr = the local sockaddr_in @16. */
export function encodeIfreqAddr(ifname: string, local: Uint8Array): Uint8Array<ArrayBuffer> {
  const b = encodeIfreq(ifname);
  b.set(sockaddrIn(local), 16);
  return b;
}

/** ifr_flags as SIOCGIFFLAGS left them: unsigned, because IFF_MULTICAST 0x8000 is the sign bit. */
export function decodeIfreqFlags(ifr: Uint8Array): number {
  return new DataView(ifr.buffer, ifr.byteOffset, ifr.byteLength).getUint16(16, true);
}

/** ifr_mtu as SIOCGIFMTU left it. */
export function decodeIfreqMtu(ifr: Uint8Array): number {
  return new DataView(ifr.buffer, ifr.byteOffset, ifr.byteLength).getInt32(16, true);
}

/**
 * The utun packet header: the address family as a BIG-endian u32 (00 00 00 02 / 00 00 00 1e),
 * chosen from the IP version nibble like wireguard-go does. Undefined for anything else, which
 * the kernel would drop anyway.
 */
export function utunFamily(packet: Uint8Array): number | undefined {
  if (packet.length === 0) return undefined;
  const v = packet[0] >> 4;
  return v === 4 ? 2 : v === 6 ? AF_INET6 : undefined;
}

/** Write header + packet into `out` (length ≥ packet + 4); returns the frame length or 0. */
export function frameUtunPacket(packet: Uint8Array, out: Uint8Array): number {
  const af = utunFamily(packet);
  if (af === undefined || out.length < packet.length + 4) return 0;
  out[0] = 0;
  out[1] = 0;
  out[2] = 0;
  out[3] = af;
  out.set(packet, 4);
  return packet.length + 4;
}
