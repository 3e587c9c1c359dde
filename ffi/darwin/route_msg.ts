/**
 * PF_ROUTE messages, pure (os-ffi §7, golden bytes §10.1): `rt_msghdr` (92 bytes) followed by the
 * sockaddrs named in `rtm_addrs`, ascending, each padded to 4 bytes (a zero-length one still takes
 * 4). Replies carry the error in `rtm_errno` at offset 24 — golang/net reads 28 (`rtm_use`), which
 * is golang/go#70593; do not copy that.
 */
import { type Cidr, StructError } from "../struct.ts";
import {
  AF_INET,
  AF_INET6,
  RTAX_DST,
  RTAX_GATEWAY,
  RTAX_IFA,
  RTAX_IFP,
  RTAX_MAX,
  RTAX_NETMASK,
  RTF_GATEWAY,
  RTF_HOST,
  RTF_IFSCOPE,
  RTF_STATIC,
  RTF_UP,
  RTM_ADD,
  RTM_DELETE,
  RTM_GET,
  RTM_VERSION,
} from "./constants.ts";
import {
  type DecodedSockaddr,
  decodeSockaddr,
  sockaddrDl,
  sockaddrIp,
  sockaddrMask,
} from "./sockaddr.ts";

export const RT_MSGHDR_SIZE = 92;

/** A routing-socket reply that does not parse. */
export class RouteDecodeError extends StructError {
  override name = "RouteDecodeError";
}

/** ROUNDUP32 from xnu: sockaddrs take sa_len rounded up to 4 bytes, and 4 when sa_len is 0. */
export const roundup32 = (n: number) => (n === 0 ? 4 : (n + 3) & ~3);

export interface RtMsgFields {
  type: number;
  flags: number;
  seq: number;
  /** The kernel overwrites it with ours; 0 is fine. */
  pid?: number;
  /** Scope ifindex, only with RTF_IFSCOPE. */
  index?: number;
  errno?: number;
  /** Sockaddrs by RTAX slot; `rtm_addrs` is derived from which slots are present. */
  addrs: (Uint8Array | undefined)[];
}

/** rt_msghdr + padded sockaddrs; `rtm_msglen` must equal the write() length. */
export function encodeRtMsg(m: RtMsgFields): Uint8Array<ArrayBuffer> {
  let len = RT_MSGHDR_SIZE;
  let addrs = 0;
  for (let i = 0; i < RTAX_MAX; i++) {
    const sa = m.addrs[i];
    if (!sa) continue;
    addrs |= 1 << i;
    len += roundup32(sa.length);
  }
  const b = new Uint8Array(len);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, len, true);
  b[2] = RTM_VERSION;
  b[3] = m.type;
  dv.setUint16(4, m.index ?? 0, true);
  dv.setInt32(8, m.flags, true);
  dv.setInt32(12, addrs, true);
  dv.setInt32(16, m.pid ?? 0, true);
  dv.setInt32(20, m.seq, true);
  dv.setInt32(24, m.errno ?? 0, true);
  let off = RT_MSGHDR_SIZE;
  for (let i = 0; i < RTAX_MAX; i++) {
    const sa = m.addrs[i];
    if (!sa) continue;
    b.set(sa, off);
    off += roundup32(sa.length);
  }
  return b;
}

export interface RouteTarget {
  dst: Cidr;
  ifindex: number;
  ifname: string;
  seq: number;
}

function dstAndMask(dst: Cidr): [Uint8Array, Uint8Array] {
  const size = dst.address.length === 4 ? 4 : 16;
  return [sockaddrIp(dst.address), sockaddrMask(dst.prefixLength, size)];
}

/**
 * `route -n add -net CIDR -interface IFNAME`: RTF_UP|RTF_STATIC (no RTF_GATEWAY: the gateway is
 * the interface's sockaddr_dl), DST|GATEWAY|NETMASK. A host route (/32, /128) adds RTF_HOST and
 * no netmask, as route(8) does.
 */
export function encodeRouteChange(type: typeof RTM_ADD | typeof RTM_DELETE, t: RouteTarget) {
  const [dst, mask] = dstAndMask(t.dst);
  const host = t.dst.prefixLength === t.dst.address.length * 8;
  return encodeRtMsg({
    type,
    flags: RTF_UP | RTF_STATIC | (host ? RTF_HOST : 0),
    seq: t.seq,
    addrs: [dst, sockaddrDl(t.ifindex, t.ifname), host ? undefined : mask],
  });
}

export const encodeRouteAdd = (t: RouteTarget) => encodeRouteChange(RTM_ADD, t);
export const encodeRouteDelete = (t: RouteTarget) => encodeRouteChange(RTM_DELETE, t);

export interface PinTarget extends RouteTarget {
  /** Next hop (4 or 16 bytes, the family of `dst`); absent = on-link on the interface. */
  gateway?: Uint8Array;
}

/**
 * A full tunnel's endpoint pin (macos-dns-routes §5.3). With a gateway: `route -n add -host DST
 * GW`, RTF_UP|RTF_GATEWAY|RTF_HOST|RTF_STATIC (0x807), DST|GATEWAY with GATEWAY a sockaddr_in; the
 * kernel finds the interface from the gateway. Never RTF_IFSCOPE: unbound sockets skip scoped
 * routes (§1 trap 12). Without a gateway it is the interface form of encodeRouteChange. A prefix
 * that is not a host drops RTF_HOST and adds its netmask.
 */
export function encodePinChange(type: typeof RTM_ADD | typeof RTM_DELETE, t: PinTarget) {
  if (!t.gateway) return encodeRouteChange(type, t);
  if (t.gateway.length !== t.dst.address.length) {
    throw new StructError("destination and gateway are of different families");
  }
  const [dst, mask] = dstAndMask(t.dst);
  const host = t.dst.prefixLength === t.dst.address.length * 8;
  return encodeRtMsg({
    type,
    flags: RTF_UP | RTF_GATEWAY | RTF_STATIC | (host ? RTF_HOST : 0),
    seq: t.seq,
    addrs: [dst, sockaddrIp(t.gateway), host ? undefined : mask],
  });
}

export const encodePinAdd = (t: PinTarget) => encodePinChange(RTM_ADD, t);
export const encodePinDelete = (t: PinTarget) => encodePinChange(RTM_DELETE, t);

/**
 * RTM_GET. With a prefix (`route -n get -net CIDR`) it is an exact-prefix lookup: ESRCH unless
 * that very prefix is in the table. With a host address it is a longest-prefix match. Either way
 * the empty sockaddr_dl in IFP asks the kernel to report the interface and source (IFP, IFA).
 */
export function encodeRouteGet(dst: Cidr, seq: number): Uint8Array<ArrayBuffer> {
  const host = dst.prefixLength === dst.address.length * 8;
  const [sa, mask] = dstAndMask(dst);
  const addrs: (Uint8Array | undefined)[] = [];
  addrs[RTAX_DST] = sa;
  if (!host) addrs[RTAX_NETMASK] = mask;
  addrs[RTAX_IFP] = sockaddrDl();
  return encodeRtMsg({
    type: RTM_GET,
    flags: RTF_UP | RTF_GATEWAY | RTF_STATIC | (host ? RTF_HOST : 0),
    seq,
    addrs,
  });
}

/**
 * RTM_GET of exactly 0.0.0.0/0 (DST|NETMASK|IFP), asking for the default route itself rather than
 * the longest match, which our half-defaults would win. With `scope` (an ifindex) it is the
 * scoped lookup of macos-dns-routes §5.3: RTF_IFSCOPE and `rtm_index` = scope find that
 * interface's own default, which configd keeps (scoped) for the physical service while the utun
 * is primary. The mask is a full 16-byte zero sockaddr_in: a trimmed one would be zero-length
 * and end the kernel's parse before IFP.
 */
export function encodeDefaultGet(seq: number, scope?: number): Uint8Array<ArrayBuffer> {
  const addrs: (Uint8Array | undefined)[] = [];
  addrs[RTAX_DST] = sockaddrIp(new Uint8Array(4));
  addrs[RTAX_NETMASK] = sockaddrMask(0, 4);
  addrs[RTAX_IFP] = sockaddrDl();
  return encodeRtMsg({
    type: RTM_GET,
    flags: RTF_UP | RTF_GATEWAY | (scope ? RTF_IFSCOPE : 0),
    seq,
    index: scope ?? 0,
    addrs,
  });
}

export interface RtMsg {
  msglen: number;
  version: number;
  type: number;
  index: number;
  flags: number;
  addrs: number;
  pid: number;
  seq: number;
  errno: number;
  /** Raw sockaddrs by RTAX slot (a zero-length one is an empty array). */
  sockaddrs: (Uint8Array | undefined)[];
}

/** One message at the start of `b` (which may hold more). */
export function decodeRtMsg(b: Uint8Array): RtMsg {
  if (b.length < 4) throw new RouteDecodeError(`routing message of ${b.length} bytes`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const msglen = dv.getUint16(0, true);
  if (msglen < 4 || msglen > b.length) {
    throw new RouteDecodeError(`routing message length ${msglen} in ${b.length} bytes`);
  }
  const version = b[2], type = b[3];
  if (version !== RTM_VERSION || msglen < RT_MSGHDR_SIZE) {
    // Some other kind of message (RTM_IFINFO, RTM_NEWADDR, ...): header fields only.
    return {
      msglen,
      version,
      type,
      index: 0,
      flags: 0,
      addrs: 0,
      pid: 0,
      seq: 0,
      errno: 0,
      sockaddrs: [],
    };
  }
  const m: RtMsg = {
    msglen,
    version,
    type,
    index: dv.getUint16(4, true),
    flags: dv.getInt32(8, true),
    addrs: dv.getInt32(12, true),
    pid: dv.getInt32(16, true),
    seq: dv.getInt32(20, true),
    errno: dv.getInt32(24, true),
    sockaddrs: [],
  };
  let off = RT_MSGHDR_SIZE;
  for (let i = 0; i < RTAX_MAX; i++) {
    if (!(m.addrs & (1 << i))) continue;
    if (off >= msglen) throw new RouteDecodeError(`sockaddr ${i} past the end of the message`);
    const salen = b[off];
    if (off + salen > msglen) throw new RouteDecodeError(`sockaddr ${i} overruns the message`);
    m.sockaddrs[i] = b.slice(off, off + salen);
    off += roundup32(salen);
  }
  return m;
}

/** Every message in one read() (the socket delivers whole messages, possibly several). */
export function splitRtMessages(b: Uint8Array): RtMsg[] {
  const out: RtMsg[] = [];
  let off = 0;
  while (off + 4 <= b.length) {
    const m = decodeRtMsg(b.subarray(off));
    out.push(m);
    off += m.msglen;
  }
  return out;
}

export interface RouteReply {
  errno: number;
  /** rtm_index: the outgoing interface. */
  index: number;
  flags: number;
  dst?: DecodedSockaddr;
  gateway?: DecodedSockaddr;
  netmask?: DecodedSockaddr;
  ifp?: DecodedSockaddr;
  ifa?: DecodedSockaddr;
}

/** The fields of an RTM_GET answer that matter, masks read with the destination's family. */
export function decodeRouteReply(m: RtMsg): RouteReply {
  const s = m.sockaddrs;
  const dst = s[RTAX_DST] && decodeSockaddr(s[RTAX_DST]!);
  const fam = dst?.family === AF_INET6 ? AF_INET6 : AF_INET;
  return {
    errno: m.errno,
    index: m.index,
    flags: m.flags,
    dst,
    gateway: s[RTAX_GATEWAY] && decodeSockaddr(s[RTAX_GATEWAY]!),
    netmask: s[RTAX_NETMASK] && decodeSockaddr(s[RTAX_NETMASK]!, fam),
    ifp: s[RTAX_IFP] && decodeSockaddr(s[RTAX_IFP]!),
    ifa: s[RTAX_IFA] && decodeSockaddr(s[RTAX_IFA]!),
  };
}

/** True when `m` answers our request: right version, type, pid and sequence number. */
export function isReplyTo(m: RtMsg, type: number, pid: number, seq: number): boolean {
  return m.version === RTM_VERSION && m.type === type && m.pid === pid && m.seq === seq;
}
