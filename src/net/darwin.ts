/**
 * NetPlatform on macOS: utun + interface ioctls + PF_ROUTE through libSystem FFI (ffi/darwin),
 * split DNS through marked /etc/resolver files. Never runs ifconfig/route/scutil. OS errors become
 * the same one-line UserErrors as on Linux (`toUserError`, pure). Every FFI call goes through the
 * `sys` option, so the whole platform runs on Linux against a fake libc in tests.
 */
import { OsError } from "../../ffi/libc.ts";
import { addAddress, addAddress6, setMtu, setUp } from "../../ffi/darwin/ifconfig.ts";
import {
  removeResolverFiles,
  removeStaleResolverFiles,
  RESOLVER_DIR,
  ResolverError,
  type ResolverFs,
  type ResolverOwner,
  writeResolverFiles,
} from "../../ffi/darwin/resolver.ts";
import type { RouteReply } from "../../ffi/darwin/route_msg.ts";
import {
  routeAdd,
  routeDelete,
  routeGet,
  routeGetUplinkDefault,
  routePinAdd,
  routePinDelete,
} from "../../ffi/darwin/route_socket.ts";
import { type DarwinSys, darwinSys, indexToName, nameToIndex } from "../../ffi/darwin/sys.ts";
import { UtunDevice } from "../../ffi/darwin/utun.ts";
import { RTF_GATEWAY, RTF_HOST } from "../../ffi/darwin/constants.ts";
import { type Cidr, formatIP, parseCidr, StructError } from "../../ffi/struct.ts";
import { UserError } from "../errors.ts";
import {
  type FullTunnelDns,
  fullTunnelDns,
  type FullTunnelDnsDeps,
} from "../dns/darwin_full_tunnel.ts";
import { coversAll } from "./domain.ts";
import { alive } from "../tunnel/state.ts";
import {
  type Dns,
  type DnsState,
  type NetPlatform,
  type PinRoute,
  RouteExistsError,
  type RouteInfo,
  type Routes,
  type Tun,
  type TunConfig,
} from "./types.ts";
import { commonUserError, configUserError, ip, type Step } from "./oserror.ts";

export interface DarwinPlatformOptions {
  /** libSystem, or a fake in tests. */
  sys?: DarwinSys;
  /** Where resolver files go (tests use a temp dir). */
  resolverDir?: string;
  /** Is the tunnel that wrote a resolver file still running? Default: its utun exists and its pid runs. */
  isAlive?: (owner: Partial<ResolverOwner>) => boolean;
  /** How long RTM_GET waits for the kernel's reply. */
  routeTimeoutMs?: number;
  /** CoreFoundation + SystemConfiguration for full-tunnel DNS, or a fake in tests. */
  sc?: FullTunnelDnsDeps["sc"];
  /** Full-tunnel DNS tuning (convergence wait, watchdog, ExcludedRoutes). */
  fullTunnelDns?: FullTunnelDnsDeps["options"];
}

export type { Step };

/** An OsError from `step` → the line the user sees; anything else keeps its stack trace. */
export function toUserError(step: Step, e: unknown): Error {
  const common = commonUserError(step, e);
  if (common) return common;
  const os = e as OsError;
  const code = os.code;
  switch (step.op) {
    case "tun":
      if (code === "EBUSY") {
        return new UserError(
          "no utun interface could be created: each free unit was taken by another process (another VPN starting?); try again",
        );
      }
      if (os.call.startsWith("CTLIOCGINFO") && code === "ENOENT") {
        return new UserError("the utun kernel control is not available on this Mac");
      }
      if (os.call.startsWith("CTLIOCGINFO") && code === "EFAULT") {
        return new UserError(
          "the kernel could not read the CTLIOCGINFO argument (ioctl argument passing on this CPU): please report this",
        );
      }
      break;
    default:
      return configUserError(step, os, {
        addressRejected: ["EINVAL", "EADDRNOTAVAIL", "EDESTADDRREQ"],
        interfaceGone: ["ENXIO", "ENETUNREACH"],
      });
  }
  return os;
}

function cidrOf(cidr: string) {
  try {
    return parseCidr(cidr);
  } catch (e) {
    if (e instanceof StructError) throw new UserError(`route ${cidr}: ${e.message}`);
    throw e;
  }
}

/** The interface an RTM_GET reply names: IFP's sockaddr_dl, else rtm_index. */
function replyInterface(sys: DarwinSys, r: RouteReply): string {
  const named = r.ifp?.link?.name;
  if (named) return named;
  return indexToName(sys, r.index) ?? `if${r.index}`;
}

/** The tunnel's IPv6 address as 16 bytes; anything else is a UserError. */
function ip6(text: string): Uint8Array {
  const a = ip(text, "tunnel IPv6 address");
  if (a.length !== 16) throw new UserError(`tunnel IPv6 address: ${text} is not an IPv6 address`);
  return a;
}

/** SIOCAIFADDR_IN6 failed: its own line (the IPv4 step's speaks of a peer, this one has none). */
function address6Error(ifname: string, address6: string, e: unknown): Error {
  const step: Step = { op: "address", ifname, address: address6, peer: "", prefixLength: 128 };
  const common = commonUserError(step, e);
  if (common) return common;
  const code = (e as OsError).code;
  return new UserError(
    `macOS rejected IPv6 address ${address6}/128 on ${ifname} (${code}): please report this with your macOS version`,
  );
}

function openTunWith(sys: () => DarwinSys) {
  // async, so every failure is a rejected promise like on Linux, never a synchronous throw.
  // deno-lint-ignore require-await
  return async (cfg: TunConfig): Promise<Tun> => {
    const s = sys();
    const local = ip(cfg.address, "tunnel address");
    const peer = ip(cfg.peer, "tunnel peer");
    const local6 = cfg.address6 === undefined ? undefined : ip6(cfg.address6);
    const name = cfg.name ?? "utun";
    let dev: UtunDevice;
    try {
      // macOS names the device utunN itself: a name like "ssmp%d" just means "any unit".
      dev = UtunDevice.open(s, cfg.name);
    } catch (e) {
      throw toUserError({ op: "tun", name }, e);
    }
    const ifname = dev.name;
    try {
      try {
        addAddress(s, ifname, local, peer, cfg.prefixLength);
      } catch (e) {
        throw toUserError({ op: "address", ifname, ...cfg }, e);
      }
      if (local6) {
        try {
          addAddress6(s, ifname, local6);
        } catch (e) {
          throw address6Error(ifname, cfg.address6!, e);
        }
      }
      try {
        setMtu(s, ifname, cfg.mtu);
        setUp(s, ifname);
      } catch (e) {
        throw toUserError({ op: "link", ifname, mtu: cfg.mtu }, e);
      }
    } catch (e) {
      dev.close(); // destroys the interface and anything we did to it
      throw e;
    }
    return {
      name: ifname,
      index: dev.index,
      mtu: cfg.mtu,
      read: (timeoutMs: number) => dev.read(timeoutMs),
      write: (packet: Uint8Array) => dev.write(packet),
      close: () => dev.close(),
    };
  };
}

/** EEXIST → RouteExistsError saying where the existing route points: ours or another way. */
async function existsError(
  s: DarwinSys,
  cidr: string,
  dst: Cidr,
  ifname: string,
  timeoutMs: number,
): Promise<RouteExistsError> {
  const r = await routeGet(s, dst, timeoutMs).catch(() => undefined);
  const via = r ? replyInterface(s, r) : undefined;
  return new RouteExistsError(
    via && via !== ifname
      ? `a route to ${cidr} already exists via ${via}`
      : `a route to ${cidr} already exists`,
  );
}

const sameBytes = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Is the route RTM_GET found the pin itself? Same destination (a host pin must be a host route,
 * not a wider one the longest match fell back to), interface and next hop.
 */
function isPin(r: RouteReply, dst: Cidr, ifindex: number, ifname: string, gw?: Uint8Array) {
  if (r.index !== ifindex && r.ifp?.link?.name !== ifname) return false;
  if (!r.dst?.ip || !sameBytes(r.dst.ip, dst.address)) return false;
  if (dst.prefixLength === dst.address.length * 8 && !(r.flags & RTF_HOST)) return false;
  const hop = r.flags & RTF_GATEWAY ? r.gateway?.ip : undefined;
  return gw ? hop !== undefined && sameBytes(hop, gw) : hop === undefined;
}

function pinOf(s: DarwinSys, p: PinRoute) {
  const dst = cidrOf(p.cidr);
  const gateway = p.gateway === undefined ? undefined : ip(p.gateway, `gateway of ${p.cidr}`);
  if (gateway && gateway.length !== dst.address.length) {
    throw new UserError(`cannot pin ${p.cidr} via ${p.gateway}: not the same address family`);
  }
  return { dst, gateway, ifindex: nameToIndex(s, p.ifname), ifname: p.ifname };
}

function darwinRoutes(sys: () => DarwinSys, timeoutMs: number): Routes {
  let lastUplink: number | undefined;
  return {
    async add(cidr, ifname) {
      const s = sys();
      const dst = cidrOf(cidr);
      const ifindex = nameToIndex(s, ifname);
      if (ifindex === 0) throw new UserError(`cannot route ${cidr}: no interface ${ifname}`);
      try {
        routeAdd(s, { dst, ifindex, ifname });
      } catch (e) {
        if (e instanceof OsError && e.code === "EEXIST") {
          throw await existsError(s, cidr, dst, ifname, timeoutMs);
        }
        throw toUserError({ op: "route", cidr, ifname }, e);
      }
    },

    async delete(cidr, ifname) {
      const s = sys();
      const dst = cidrOf(cidr);
      const ifindex = nameToIndex(s, ifname);
      if (ifindex === 0) return; // the interface is gone, and its routes with it
      // The kernel deletes by destination and mask only: check the route is ours first, so a
      // route another VPN installed for the same prefix after ours vanished is left alone.
      const r = await routeGet(s, dst, timeoutMs);
      if (!r || (r.index !== ifindex && r.ifp?.link?.name !== ifname)) return;
      try {
        routeDelete(s, { dst, ifindex, ifname });
      } catch (e) {
        if (e instanceof OsError && e.code === "ESRCH") return;
        throw toUserError({ op: "route", cidr, ifname }, e);
      }
    },

    async addPin(p) {
      const s = sys();
      const pin = pinOf(s, p);
      if (pin.ifindex === 0) throw new UserError(`cannot pin ${p.cidr}: no interface ${p.ifname}`);
      try {
        routePinAdd(s, pin);
      } catch (e) {
        if (e instanceof OsError && e.code === "EEXIST") {
          throw await existsError(s, p.cidr, pin.dst, p.ifname, timeoutMs);
        }
        if (e instanceof OsError && e.code === "ENETUNREACH" && p.gateway) {
          throw new UserError(
            `cannot pin ${p.cidr} via ${p.gateway}: the gateway is not reachable on ${p.ifname} (did the network change?)`,
          );
        }
        throw toUserError({ op: "route", cidr: p.cidr, ifname: p.ifname }, e);
      }
    },

    async deletePin(p) {
      const s = sys();
      const pin = pinOf(s, p);
      if (pin.ifindex === 0) return; // the interface is gone, and its routes with it
      // The kernel deletes by destination and mask only: delete nothing but the pin itself.
      const r = await routeGet(s, pin.dst, timeoutMs);
      if (!r || !isPin(r, pin.dst, pin.ifindex, p.ifname, pin.gateway)) return;
      try {
        routePinDelete(s, pin);
      } catch (e) {
        if (e instanceof OsError && e.code === "ESRCH") return;
        throw toUserError({ op: "route", cidr: p.cidr, ifname: p.ifname }, e);
      }
    },

    async get(address): Promise<RouteInfo | undefined> {
      const s = sys();
      const a = ip(address, "route lookup");
      const r = await routeGet(s, {
        address: a as Uint8Array<ArrayBuffer>,
        prefixLength: a.length * 8,
      }, timeoutMs);
      return r && infoOf(s, r);
    },

    async defaultRoute() {
      const s = sys();
      const r = await routeGetUplinkDefault(s, lastUplink, timeoutMs);
      // The next call asks this interface first: with two uplinks the answer stays put.
      if (r) lastUplink = r.index;
      return r && infoOf(s, r);
    },
  };
}

function infoOf(s: DarwinSys, r: RouteReply): RouteInfo {
  const gw = r.flags & RTF_GATEWAY ? r.gateway?.ip : undefined;
  return {
    interface: replyInterface(s, r),
    gateway: gw && formatIP(gw),
    source: r.ifa?.ip && formatIP(r.ifa.ip),
  };
}

function resolverFs(sys: () => DarwinSys, opts: DarwinPlatformOptions): ResolverFs {
  return {
    dir: opts.resolverDir ?? RESOLVER_DIR,
    isAlive: opts.isAlive ??
      ((o) =>
        o.tunnel !== undefined && nameToIndex(sys(), o.tunnel) !== 0 &&
        (o.pid === undefined || alive(o.pid))),
  };
}

function userErrorFromFs(e: unknown, dir: string): unknown {
  if (e instanceof ResolverError) return new UserError(e.message);
  if (e instanceof Deno.errors.PermissionDenied) {
    return new UserError(`changing ${dir} needs root: run with sudo`);
  }
  return e;
}

function darwinDns(fs: ResolverFs, full: FullTunnelDns): Dns {
  return {
    async apply(cfg): Promise<DnsState> {
      if (cfg.domains.length === 0) return { kind: "none", items: [] };
      // Every name: the tunnel becomes the primary service in configd (macos-dns-routes §3).
      if (coversAll(cfg.domains)) return await full.apply(cfg);
      try {
        // Files a crashed run left would otherwise block these domains (or linger forever).
        await removeStaleResolverFiles(fs);
        const items = await writeResolverFiles(fs, cfg.domains, cfg.server, {
          tunnel: cfg.ifname,
          pid: Deno.pid,
        });
        return { kind: "resolver-files", items };
      } catch (e) {
        throw userErrorFromFs(e, fs.dir);
      }
    },

    async revert(state) {
      if (state.kind === "sc-dynamic-store") return await full.revert(state);
      if (state.kind !== "resolver-files") return;
      try {
        await removeResolverFiles(fs, state.items);
      } catch (e) {
        throw userErrorFromFs(e, fs.dir);
      }
    },
  };
}

/** Remove resolver files left by tunnels that are gone; returns their paths. */
export async function cleanStaleResolverFiles(opts: DarwinPlatformOptions = {}): Promise<string[]> {
  const sys = lazySys(opts);
  return await removeStaleResolverFiles(resolverFs(sys, opts));
}

function lazySys(opts: DarwinPlatformOptions): () => DarwinSys {
  // libSystem is opened on first use, so constructing the platform never touches FFI.
  return () => opts.sys ?? darwinSys();
}

export function darwinPlatform(opts: DarwinPlatformOptions = {}): NetPlatform {
  const sys = lazySys(opts);
  // Full-tunnel DNS publishes the utun's address and peer: remember how each was opened.
  const tuns = new Map<string, TunConfig>();
  const openTun = openTunWith(sys);
  const full = fullTunnelDns({
    ...(opts.sc ? { sc: opts.sc } : {}),
    tun: (ifname) => tuns.get(ifname),
    interfaceExists: (name) => nameToIndex(sys(), name) !== 0,
    ...(opts.fullTunnelDns ? { options: opts.fullTunnelDns } : {}),
  });
  return {
    openTun: async (cfg) => {
      const tun = await openTun(cfg);
      tuns.set(tun.name, cfg);
      return tun;
    },
    routes: darwinRoutes(sys, opts.routeTimeoutMs ?? 1000),
    dns: darwinDns(resolverFs(sys, opts), full),
  };
}
