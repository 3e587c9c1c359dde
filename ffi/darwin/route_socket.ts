/**
 * Route add/delete/get over a PF_ROUTE socket (os-ffi §7). One short-lived socket per operation:
 * adds and deletes report failure through write()'s errno (EEXIST, ESRCH, EPERM...) so nothing is
 * read back; a get reads until it finds the reply carrying our pid and sequence number, skipping
 * the other routing events every PF_ROUTE socket also receives.
 */
import { type Cidr, formatIP } from "../struct.ts";
import { DARWIN_E, OsError } from "../libc.ts";
import { F_GETFL, F_SETFL, O_NONBLOCK, PF_ROUTE, POLLIN, RTM_GET, SOCK_RAW } from "./constants.ts";
import {
  decodeRouteReply,
  encodeDefaultGet,
  encodePinAdd,
  encodePinDelete,
  encodeRouteAdd,
  encodeRouteDelete,
  encodeRouteGet,
  isReplyTo,
  type RouteReply,
  splitRtMessages,
} from "./route_msg.ts";
import { type DarwinSys, fcntl, indexToName, sysCheck, sysError } from "./sys.ts";
import { errnoName } from "../libc.ts";

/** Large enough for any single routing message (route(8) uses 2 KiB). */
const READ_SIZE = 8192;

let seq = 0;
/** Sequence numbers for our requests, so replies can be matched. */
export function nextRouteSeq(): number {
  seq = (seq % 0x7fffffff) + 1;
  return seq;
}

export interface RouteSpec {
  dst: Cidr;
  ifindex: number;
  ifname: string;
}

const cidrText = (c: Cidr) => `${formatIP(c.address)}/${c.prefixLength}`;

function openRouteSocket(sys: DarwinSys): number {
  return sysCheck(sys, "socket PF_ROUTE", sys.socket(PF_ROUTE, SOCK_RAW, 0));
}

/** Write one whole message; an error is the kernel's answer (write returns -1 with errno). */
function send(sys: DarwinSys, fd: number, msg: Uint8Array<ArrayBuffer>, what: string): void {
  const n = sysCheck(sys, what, sys.write(fd, msg, BigInt(msg.length)));
  if (n !== msg.length) throw new Error(`${what}: short write (${n} of ${msg.length} bytes)`);
}

/** One add or delete on a fresh socket; the kernel's errno is the whole answer. */
function change(sys: DarwinSys, msg: Uint8Array<ArrayBuffer>, what: string): void {
  const fd = openRouteSocket(sys);
  try {
    send(sys, fd, msg, what);
  } finally {
    sys.close(fd);
  }
}

/** `route -n add -net CIDR -interface IFNAME`. EEXIST when that prefix is already routed. */
export function routeAdd(sys: DarwinSys, r: RouteSpec): void {
  change(sys, encodeRouteAdd({ ...r, seq: nextRouteSeq() }), `RTM_ADD ${cidrText(r.dst)}`);
}

/**
 * Delete by destination and mask: the kernel does not compare the gateway (os-ffi §7.5), so a
 * caller who must not remove someone else's route checks with routeGet first. ESRCH when absent.
 */
export function routeDelete(sys: DarwinSys, r: RouteSpec): void {
  change(sys, encodeRouteDelete({ ...r, seq: nextRouteSeq() }), `RTM_DELETE ${cidrText(r.dst)}`);
}

export interface PinSpec extends RouteSpec {
  /** Next hop; absent = on-link on `ifname` (the interface form of routeAdd). */
  gateway?: Uint8Array;
}

const pinText = (r: PinSpec) =>
  `${cidrText(r.dst)}${r.gateway ? ` via ${formatIP(r.gateway)}` : ` -interface ${r.ifname}`}`;

/**
 * `route -n add -host DST GW` (macos-dns-routes §5.3). EEXIST when DST is already routed,
 * ENETUNREACH when GW is not on a directly connected network.
 */
export function routePinAdd(sys: DarwinSys, r: PinSpec): void {
  change(sys, encodePinAdd({ ...r, seq: nextRouteSeq() }), `RTM_ADD ${pinText(r)}`);
}

/** Like routeDelete, the kernel matches DST (and mask) only: check ownership with routeGet. */
export function routePinDelete(sys: DarwinSys, r: PinSpec): void {
  change(sys, encodePinDelete({ ...r, seq: nextRouteSeq() }), `RTM_DELETE ${pinText(r)}`);
}

/**
 * RTM_GET: a prefix is an exact lookup, a host address (/32, /128) a longest-prefix match.
 * Undefined when there is no such route (ESRCH). Works without root.
 */
export async function routeGet(
  sys: DarwinSys,
  dst: Cidr,
  timeoutMs = 1000,
): Promise<RouteReply | undefined> {
  const s = nextRouteSeq();
  return await get(sys, encodeRouteGet(dst, s), s, `RTM_GET ${cidrText(dst)}`, timeoutMs);
}

/**
 * The default route 0.0.0.0/0 itself (exact prefix, so half-defaults do not answer), or with
 * `scope` the default scoped to that ifindex (macos-dns-routes §5.3). Undefined when absent.
 */
export async function routeGetDefault(
  sys: DarwinSys,
  scope?: number,
  timeoutMs = 1000,
): Promise<RouteReply | undefined> {
  const s = nextRouteSeq();
  const what = `RTM_GET 0.0.0.0/0${scope ? ` scoped to ifindex ${scope}` : ""}`;
  return await get(sys, encodeDefaultGet(s, scope), s, what, timeoutMs);
}

/** Loopback and tunnels (ours, another VPN's): never the physical uplink. */
const isTunnel = (ifname: string) => /^(lo|utun|ipsec)\d/.test(ifname);

/**
 * The physical uplink's default route, also while a utun is primary. Not primary (no full-tunnel
 * DNS): the unscoped default is it. Primary: configd keeps each physical service's default scoped
 * to its interface (macos-dns-routes §5.3), so each interface but loopback and tunnels is asked,
 * `prefer` first. Undefined when no interface has one.
 */
export async function routeGetUplinkDefault(
  sys: DarwinSys,
  prefer: number | undefined,
  timeoutMs = 1000,
): Promise<RouteReply | undefined> {
  const name = (r: RouteReply) => r.ifp?.link?.name || indexToName(sys, r.index) || "";
  const unscoped = await routeGetDefault(sys, undefined, timeoutMs);
  if (unscoped && !isTunnel(name(unscoped))) return unscoped;
  for (const index of scopeCandidates(sys, prefer)) {
    // An interface the kernel will not scope a lookup to (no IPv4, going away) has no default.
    const r = await routeGetDefault(sys, index, timeoutMs).catch((e) => {
      if (e instanceof OsError) return undefined;
      throw e;
    });
    // Without a route of its own the kernel may answer another interface's: only its own counts.
    if (r && r.index === index && !isTunnel(name(r))) return r;
  }
  return undefined;
}

/**
 * `first`, then every existing interface but loopback and tunnels. Indexes are dense (xnu reuses
 * free ones), so the walk ends after 16 missing in a row.
 */
function scopeCandidates(sys: DarwinSys, first: number | undefined): number[] {
  const out = first ? [first] : [];
  for (let index = 1, missing = 0; missing < 16 && index < 1024; index++) {
    const name = indexToName(sys, index);
    missing = name === undefined ? missing + 1 : 0;
    if (name !== undefined && index !== first && !isTunnel(name)) out.push(index);
  }
  return out;
}

/** Write one RTM_GET and read until its answer (our pid and `s`), skipping other events. */
async function get(
  sys: DarwinSys,
  msg: Uint8Array<ArrayBuffer>,
  s: number,
  what: string,
  timeoutMs: number,
): Promise<RouteReply | undefined> {
  const fd = openRouteSocket(sys);
  try {
    // Nonblocking, so a reply that never comes costs a poll timeout, not a hung event loop.
    fcntl(sys, fd, F_SETFL, fcntl(sys, fd, F_GETFL) | O_NONBLOCK);
    const pid = sys.getpid();
    const ret = Number(sys.write(fd, msg, BigInt(msg.length)));
    if (ret < 0) {
      const e = sysError(sys, what);
      if (e.errno === DARWIN_E.ESRCH) return undefined;
      throw e;
    }
    const buf = new Uint8Array(READ_SIZE);
    const pfd = new Uint8Array(8);
    const dv = new DataView(pfd.buffer);
    dv.setInt32(0, fd, true);
    dv.setInt16(4, POLLIN, true);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const n = Number(sys.read(fd, buf, BigInt(buf.length)));
      if (n < 0) {
        const e = sysError(sys, `read ${what}`);
        if (e.errno === DARWIN_E.EINTR) continue;
        if (e.errno !== DARWIN_E.EAGAIN) throw e;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`${what}: no reply from the kernel within ${timeoutMs} ms`);
        await sys.poll_nb(pfd, 1, left);
        continue;
      }
      for (const m of splitRtMessages(buf.subarray(0, n))) {
        if (!isReplyTo(m, RTM_GET, pid, s)) continue;
        if (m.errno === DARWIN_E.ESRCH) return undefined;
        if (m.errno !== 0) throw new OsError(what, m.errno, errnoName(m.errno, "darwin"));
        return decodeRouteReply(m);
      }
    }
  } finally {
    sys.close(fd);
  }
}
