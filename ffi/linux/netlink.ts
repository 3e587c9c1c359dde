/**
 * rtnetlink messages, pure: encoders produce exactly what iproute2 sends (os-ffi §9.3, golden bytes
 * in §10.2) and decoders turn kernel replies — or garbage — into values or a NetlinkDecodeError.
 * The socket side lives in netlink_socket.ts.
 */
import { StructError } from "../struct.ts";

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const RTM_NEWLINK = 16;
export const RTM_NEWADDR = 20;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
/** NLM_F_ROOT|NLM_F_MATCH: every entry of the table, as a multipart reply ending in NLMSG_DONE. */
export const NLM_F_DUMP = 0x300;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

const AF_INET = 2;
const AF_INET6 = 10;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_F_NODAD = 0x2;
const IFLA_MTU = 4;
const IFF_UP = 0x1;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RTA_TABLE = 15;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_NOWHERE = 255;
const RTN_UNICAST = 1;
const RTM_F_LOOKUP_TABLE = 0x1000;
const RTNH_F_DEAD = 0x1;
const RTNH_F_LINKDOWN = 0x10;
const HDR = 16;

/** A kernel reply that does not parse. */
export class NetlinkDecodeError extends StructError {
  override name = "NetlinkDecodeError";
}

type Attr = [type: number, payload: Uint8Array];

const align4 = (n: number) => (n + 3) & ~3;

function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

function family(addr: Uint8Array): number {
  if (addr.length === 4) return AF_INET;
  if (addr.length === 16) return AF_INET6;
  throw new StructError(`address of ${addr.length} bytes`);
}

/** nlmsghdr + fixed family header + attributes, each padded to 4 (os-ffi §9.2). */
export function encodeMessage(
  type: number,
  flags: number,
  seq: number,
  fixed: Uint8Array,
  attrs: Attr[],
): Uint8Array<ArrayBuffer> {
  let len = HDR + align4(fixed.length);
  for (const [, p] of attrs) len += align4(4 + p.length);
  const out = new Uint8Array(len);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, len, true);
  dv.setUint16(4, type, true);
  dv.setUint16(6, flags, true);
  dv.setUint32(8, seq >>> 0, true);
  dv.setUint32(12, 0, true); // pid 0: the kernel is the destination
  out.set(fixed, HDR);
  let off = HDR + align4(fixed.length);
  for (const [t, p] of attrs) {
    dv.setUint16(off, 4 + p.length, true); // rta_len is unpadded
    dv.setUint16(off + 2, t, true);
    out.set(p, off + 4);
    off += align4(4 + p.length);
  }
  return out;
}

/**
 * `ip addr add LOCAL peer PEER/PREFIX dev IDX`: IFA_LOCAL is ours, IFA_ADDRESS the far end; the
 * kernel then installs PEER/PREFIX as an on-link route. IPv6 skips duplicate address detection.
 */
export function encodeNewAddr(
  a: { seq: number; index: number; local: Uint8Array; peer: Uint8Array; prefixLength: number },
): Uint8Array<ArrayBuffer> {
  const fam = family(a.local);
  if (family(a.peer) !== fam) throw new StructError("local and peer are of different families");
  const fixed = new Uint8Array(8);
  fixed[0] = fam;
  fixed[1] = a.prefixLength;
  fixed[2] = fam === AF_INET6 ? IFA_F_NODAD : 0;
  new DataView(fixed.buffer).setUint32(4, a.index, true);
  return encodeMessage(
    RTM_NEWADDR,
    NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE,
    a.seq,
    fixed,
    [[IFA_LOCAL, a.local], [IFA_ADDRESS, a.peer]],
  );
}

/** `ip link set IDX mtu MTU up|down`. */
export function encodeNewLink(
  a: { seq: number; index: number; mtu: number; up: boolean },
): Uint8Array<ArrayBuffer> {
  const fixed = new Uint8Array(16);
  const dv = new DataView(fixed.buffer);
  dv.setInt32(4, a.index, true);
  dv.setUint32(8, a.up ? IFF_UP : 0, true);
  dv.setUint32(12, IFF_UP, true); // ifi_change: only the UP bit is being set
  return encodeMessage(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, a.seq, fixed, [
    [IFLA_MTU, u32le(a.mtu)],
  ]);
}

export interface RouteSpec {
  seq: number;
  /** Network bytes, 4 or 16. */
  dst: Uint8Array;
  dstLen: number;
  index: number;
}

function rtmsg(
  fam: number,
  dstLen: number,
  table: number,
  protocol: number,
  scope: number,
  type: number,
  flags = 0,
): Uint8Array {
  const m = new Uint8Array([fam, dstLen, 0, 0, table, protocol, scope, type, 0, 0, 0, 0]);
  new DataView(m.buffer).setUint32(8, flags, true);
  return m;
}

/** `ip route add DST/LEN dev IDX`: fails with EEXIST if the same route exists. */
export function encodeNewRoute(r: RouteSpec): Uint8Array<ArrayBuffer> {
  const fam = family(r.dst);
  const scope = fam === AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  return encodeMessage(
    RTM_NEWROUTE,
    NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE,
    r.seq,
    rtmsg(fam, r.dstLen, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST),
    [[RTA_DST, r.dst], [RTA_OIF, u32le(r.index)]],
  );
}

/** `ip route del DST/LEN dev IDX`: ESRCH when no such route. */
export function encodeDelRoute(r: RouteSpec): Uint8Array<ArrayBuffer> {
  return encodeMessage(
    RTM_DELROUTE,
    NLM_F_REQUEST | NLM_F_ACK,
    r.seq,
    rtmsg(family(r.dst), r.dstLen, RT_TABLE_MAIN, 0, RT_SCOPE_NOWHERE, 0),
    [[RTA_DST, r.dst], [RTA_OIF, u32le(r.index)]],
  );
}

export interface GatewayRouteSpec extends RouteSpec {
  /** Next hop, same family as `dst`. */
  gateway: Uint8Array;
}

function gatewayAttrs(r: GatewayRouteSpec): Attr[] {
  if (family(r.gateway) !== family(r.dst)) {
    throw new StructError("destination and gateway are of different families");
  }
  // iproute2's order: DST, GATEWAY, OIF.
  return [[RTA_DST, r.dst], [RTA_GATEWAY, r.gateway], [RTA_OIF, u32le(r.index)]];
}

/**
 * `ip route add DST/LEN via GW dev IDX`: scope UNIVERSE (the next hop is not on-link), EEXIST if a
 * route to DST/LEN exists, ENETUNREACH if GW is not reachable on IDX.
 */
export function encodeNewGatewayRoute(r: GatewayRouteSpec): Uint8Array<ArrayBuffer> {
  const attrs = gatewayAttrs(r);
  return encodeMessage(
    RTM_NEWROUTE,
    NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE,
    r.seq,
    rtmsg(family(r.dst), r.dstLen, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST),
    attrs,
  );
}

/**
 * `ip route del DST/LEN via GW dev IDX`: the kernel deletes only a route through that very next
 * hop, ESRCH otherwise, so a route someone else put there since is left alone.
 */
export function encodeDelGatewayRoute(r: GatewayRouteSpec): Uint8Array<ArrayBuffer> {
  const attrs = gatewayAttrs(r);
  return encodeMessage(
    RTM_DELROUTE,
    NLM_F_REQUEST | NLM_F_ACK,
    r.seq,
    rtmsg(family(r.dst), r.dstLen, RT_TABLE_MAIN, 0, RT_SCOPE_NOWHERE, 0),
    attrs,
  );
}

/** `ip route get ADDR`: the kernel answers with one RTM_NEWROUTE (or an error). */
export function encodeGetRoute(a: { seq: number; dst: Uint8Array }): Uint8Array<ArrayBuffer> {
  const fam = family(a.dst);
  return encodeMessage(
    RTM_GETROUTE,
    NLM_F_REQUEST,
    a.seq,
    rtmsg(fam, a.dst.length * 8, 0, 0, 0, 0, RTM_F_LOOKUP_TABLE),
    [[RTA_DST, a.dst]],
  );
}

/**
 * `ip route show default`: a dump of the IPv4 routes, RTA_TABLE naming the main table. Only a
 * socket with NETLINK_GET_STRICT_CHK makes the kernel honour that filter; ours has none, so the
 * answer holds every table and pickDefaultRoute filters it.
 */
export function encodeDumpRoutes(a: { seq: number }): Uint8Array<ArrayBuffer> {
  return encodeMessage(
    RTM_GETROUTE,
    NLM_F_REQUEST | NLM_F_DUMP,
    a.seq,
    rtmsg(AF_INET, 0, 0, 0, RT_SCOPE_UNIVERSE, 0),
    [[RTA_TABLE, u32le(RT_TABLE_MAIN)]],
  );
}

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Everything after the 16-byte header (view into the input). */
  body: Uint8Array;
}

/** Split a recv() buffer into messages; any inconsistency → NetlinkDecodeError. */
export function splitMessages(buf: Uint8Array): NlMessage[] {
  const out: NlMessage[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < HDR) throw new NetlinkDecodeError(`truncated header at ${off}`);
    const len = dv.getUint32(off, true);
    if (len < HDR || len > buf.length - off) {
      throw new NetlinkDecodeError(`bad nlmsg_len ${len} at ${off} (have ${buf.length - off})`);
    }
    out.push({
      type: dv.getUint16(off + 4, true),
      flags: dv.getUint16(off + 6, true),
      seq: dv.getUint32(off + 8, true),
      pid: dv.getUint32(off + 12, true),
      body: buf.subarray(off + HDR, off + len),
    });
    off += Math.min(align4(len), buf.length - off);
  }
  return out;
}

/** NLMSG_ERROR body → positive errno, 0 for an ACK. */
export function decodeError(msg: NlMessage): number {
  if (msg.type !== NLMSG_ERROR) throw new NetlinkDecodeError(`type ${msg.type} is not an error`);
  if (msg.body.length < 4) throw new NetlinkDecodeError("NLMSG_ERROR shorter than 4 bytes");
  const e = new DataView(msg.body.buffer, msg.body.byteOffset, 4).getInt32(0, true);
  if (e > 0 || e < -4095) throw new NetlinkDecodeError(`implausible error code ${e}`);
  return e === 0 ? 0 : -e;
}

/** rtattrs of a body region → type → payload (last one wins). */
export function parseAttrs(b: Uint8Array): Map<number, Uint8Array> {
  const attrs = new Map<number, Uint8Array>();
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let off = 0;
  while (off + 4 <= b.length) {
    const len = dv.getUint16(off, true);
    if (len < 4 || len > b.length - off) {
      throw new NetlinkDecodeError(`bad rta_len ${len} at ${off}`);
    }
    attrs.set(dv.getUint16(off + 2, true) & 0x3fff, b.subarray(off + 4, off + len));
    off += align4(len);
  }
  return attrs;
}

export interface RouteReply {
  family: number;
  dstLen: number;
  table: number;
  type: number;
  /** rtm_flags: RTNH_F_DEAD, RTNH_F_LINKDOWN (the carrier is gone), RTM_F_* ... */
  flags: number;
  /** RTA_PRIORITY, the metric; absent means 0. */
  priority?: number;
  dst?: Uint8Array;
  oif?: number;
  gateway?: Uint8Array;
  prefsrc?: Uint8Array;
}

/** An RTM_NEWROUTE (route get reply or dump entry). */
export function decodeRoute(msg: NlMessage): RouteReply {
  if (msg.type !== RTM_NEWROUTE) throw new NetlinkDecodeError(`type ${msg.type} is not a route`);
  if (msg.body.length < 12) throw new NetlinkDecodeError("rtmsg shorter than 12 bytes");
  const b = msg.body;
  const fam = b[0];
  if (fam !== AF_INET && fam !== AF_INET6) throw new NetlinkDecodeError(`route family ${fam}`);
  const alen = fam === AF_INET ? 4 : 16;
  const attrs = parseAttrs(b.subarray(12));
  const addr = (t: number, name: string) => {
    const v = attrs.get(t);
    if (v === undefined) return undefined;
    if (v.length !== alen) throw new NetlinkDecodeError(`${name} of ${v.length} bytes`);
    return v.slice();
  };
  const u32 = (t: number, name: string) => {
    const v = attrs.get(t);
    if (v === undefined) return undefined;
    if (v.length !== 4) throw new NetlinkDecodeError(`${name} of ${v.length} bytes`);
    return new DataView(v.buffer, v.byteOffset, 4).getUint32(0, true);
  };
  return {
    family: fam,
    dstLen: b[1],
    table: u32(RTA_TABLE, "RTA_TABLE") ?? b[4],
    type: b[7],
    flags: new DataView(b.buffer, b.byteOffset + 8, 4).getUint32(0, true),
    priority: u32(RTA_PRIORITY, "RTA_PRIORITY"),
    dst: addr(RTA_DST, "RTA_DST"),
    oif: u32(RTA_OIF, "RTA_OIF"),
    gateway: addr(RTA_GATEWAY, "RTA_GATEWAY"),
    prefsrc: addr(RTA_PREFSRC, "RTA_PREFSRC"),
  };
}

/**
 * The routes of a dump. An entry that does not parse (another table's, with attributes of a kind
 * decodeRoute does not know) is left out rather than failing the whole answer.
 */
export function decodeRoutes(msgs: NlMessage[]): RouteReply[] {
  return msgs.flatMap((m) => {
    try {
      return [decodeRoute(m)];
    } catch (e) {
      if (e instanceof NetlinkDecodeError) return [];
      throw e;
    }
  });
}

/**
 * The system's own IPv4 default route among dumped routes: main table, prefix 0, unicast, with an
 * interface (a multipath default has none at the top level and is not ours to pick from). Among
 * several, one whose link is up wins, then the lowest metric, as the kernel itself would choose.
 */
export function pickDefaultRoute(routes: RouteReply[]): RouteReply | undefined {
  const down = (r: RouteReply) => (r.flags & (RTNH_F_DEAD | RTNH_F_LINKDOWN) ? 1 : 0);
  return routes
    .filter((r) =>
      r.family === AF_INET && r.dstLen === 0 && r.table === RT_TABLE_MAIN &&
      r.type === RTN_UNICAST && r.oif !== undefined
    )
    .sort((a, b) => down(a) - down(b) || (a.priority ?? 0) - (b.priority ?? 0))[0];
}
