/**
 * NetPlatform on Linux: TUN + rtnetlink through libc FFI (ffi/linux), split DNS through
 * systemd-resolved over D-Bus when it runs, else a local forwarder named in /etc/resolv.conf
 * (src/dns/). Never runs ip/resolvectl. OS errors become one-line UserErrors here
 * (`toUserError`, pure, so testable without root).
 */
import { OsError } from "../../ffi/libc.ts";
import { dbus, DBusConnection, DBusError } from "../../ffi/linux/dbus.ts";
import {
  decodeRoute,
  decodeRoutes,
  encodeDelGatewayRoute,
  encodeDelRoute,
  encodeDumpRoutes,
  encodeGetRoute,
  encodeNewAddr,
  encodeNewGatewayRoute,
  encodeNewLink,
  encodeNewRoute,
  pickDefaultRoute,
  type RouteReply,
} from "../../ffi/linux/netlink.ts";
import { nextSeq, transact } from "../../ffi/linux/netlink_socket.ts";
import {
  disableIPv6,
  enableIPv6,
  indexToName,
  LinuxTunDevice,
  nameToIndex,
} from "../../ffi/linux/tun.ts";
import { formatIP, parseCidr, StructError } from "../../ffi/struct.ts";
import { UserError } from "../errors.ts";
import { recoverResolvConf, type Recovery } from "../dns/restore.ts";
import { resolvConfDns } from "../dns/resolv_dns.ts";
import { coversAll } from "./domain.ts";
import { stateDir } from "../tunnel/state.ts";
import {
  type Dns,
  type DnsConfig,
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

export interface LinuxPlatformOptions {
  /** System bus socket (tests point this at a private dbus-daemon). */
  busPath?: string;
  /** Present when systemd-resolved runs. */
  resolvedDir?: string;
  /** Replaced (and restored) when systemd-resolved does not run; default /etc/resolv.conf. */
  resolvConf?: string;
  /** Where the resolv.conf backup goes; default the tunnel state dir. */
  stateDir?: string;
}

export type { Step };

/**
 * An OsError from `step` → the one line the user sees, or the original error when it is not
 * something the user can act on (a bug keeps its stack trace).
 */
export function toUserError(step: Step, e: unknown): Error {
  const common = commonUserError(step, e);
  if (common) return common;
  const os = e as OsError;
  const code = os.code;
  switch (step.op) {
    case "tun":
      if (os.call.startsWith("open") && ["ENOENT", "ENODEV", "ENXIO"].includes(code)) {
        return new UserError("the TUN driver is not available (modprobe tun)");
      }
      if (code === "EBUSY" || code === "EINVAL" || code === "EEXIST") {
        return new UserError(
          `interface name ${step.name} is already in use by another device: choose another name`,
        );
      }
      break;
    default:
      return configUserError(step, os, {
        addressRejected: ["EINVAL", "EADDRNOTAVAIL"],
        interfaceGone: ["ENODEV", "ENETUNREACH"],
      });
  }
  return os;
}

async function openTun(cfg: TunConfig): Promise<Tun> {
  const local = ip(cfg.address, "tunnel address");
  const peer = ip(cfg.peer, "tunnel peer");
  const name = cfg.name ?? "ssmp%d";
  let dev: LinuxTunDevice;
  try {
    dev = LinuxTunDevice.open(name);
  } catch (e) {
    throw toUserError({ op: "tun", name }, e);
  }
  const ifname = dev.name;
  const local6 = cfg.address6 === undefined ? undefined : ip(cfg.address6, "tunnel IPv6 address");
  try {
    // Before link-up, so no router solicitation / MLD chatter is ever queued (os-ffi §9.1). With
    // an IPv6 address the chatter comes, and the reader leaves it here (tunnel/packet.ts carried).
    if (local6 || cfg.ipv6Sink) enableIPv6(ifname);
    else disableIPv6(ifname);
    const addrStep = { op: "address", ifname, ...cfg } as const;
    try {
      const seq = nextSeq();
      const msg = encodeNewAddr({
        seq,
        index: dev.index,
        local,
        peer,
        prefixLength: cfg.prefixLength,
      });
      await transact(msg, seq, `add address ${cfg.address} to ${ifname}`);
      if (local6) {
        // A /128 of its own: the routes say what goes through the tunnel. No DAD (encodeNewAddr):
        // nobody else is on a tun, and a tentative address could not send for a second or two.
        const seq6 = nextSeq();
        const msg6 = encodeNewAddr({
          seq: seq6,
          index: dev.index,
          local: local6,
          peer: local6,
          prefixLength: 128,
        });
        await transact(msg6, seq6, `add address ${cfg.address6}/128 to ${ifname}`);
      }
    } catch (e) {
      throw toUserError(addrStep, e);
    }
    try {
      const seq = nextSeq();
      const msg = encodeNewLink({ seq, index: dev.index, mtu: cfg.mtu, up: true });
      await transact(msg, seq, `set ${ifname} mtu ${cfg.mtu} up`);
    } catch (e) {
      throw toUserError({ op: "link", ifname, mtu: cfg.mtu }, e);
    }
  } catch (e) {
    dev.close();
    throw e;
  }
  return {
    name: ifname,
    index: dev.index,
    mtu: cfg.mtu,
    read: (timeoutMs) => dev.read(timeoutMs),
    write: (packet) => dev.write(packet),
    close: () => dev.close(),
  };
}

function cidrOf(cidr: string) {
  try {
    return parseCidr(cidr);
  } catch (e) {
    if (e instanceof StructError) throw new UserError(`route ${cidr}: ${e.message}`);
    throw e;
  }
}

/**
 * `ip route add CIDR [via GW] dev IF`: a tunnel route (no gateway) or a pin. `verb` words the
 * error lines ("cannot route", "cannot pin").
 */
async function addRoute(r: PinRoute, verb: "route" | "pin"): Promise<void> {
  const { spec, what } = routeSpec(r, "add");
  if (spec.index === 0) throw new UserError(`cannot ${verb} ${r.cidr}: no interface ${r.ifname}`);
  const seq = nextSeq();
  const { gateway } = spec;
  try {
    await transact(
      gateway ? encodeNewGatewayRoute({ ...spec, seq, gateway }) : encodeNewRoute({ ...spec, seq }),
      seq,
      what,
    );
  } catch (e) {
    if (e instanceof OsError && e.code === "EEXIST") {
      throw new RouteExistsError(`a route to ${r.cidr} already exists`);
    }
    if (e instanceof OsError && e.code === "ENETUNREACH" && r.gateway) {
      throw new UserError(
        `cannot ${verb} ${r.cidr} via ${r.gateway}: the gateway is not reachable on ${r.ifname} (did the network change?)`,
      );
    }
    throw toUserError({ op: "route", cidr: r.cidr, ifname: r.ifname }, e);
  }
}

/** `ip route del CIDR [via GW] dev IF`; a route already gone is not an error. */
async function deleteRoute(r: PinRoute): Promise<void> {
  const { spec, what } = routeSpec(r, "delete");
  if (spec.index === 0) return; // the interface is gone, and its routes with it
  const seq = nextSeq();
  const { gateway } = spec;
  try {
    // With a gateway the kernel matches it too: a route through another hop is not ours.
    await transact(
      gateway ? encodeDelGatewayRoute({ ...spec, seq, gateway }) : encodeDelRoute({ ...spec, seq }),
      seq,
      what,
    );
  } catch (e) {
    if (e instanceof OsError && (e.code === "ESRCH" || e.code === "ENODEV")) return;
    throw toUserError({ op: "route", cidr: r.cidr, ifname: r.ifname }, e);
  }
}

/** Destination, next hop and interface index (0 when the interface is gone) of a route. */
function routeSpec(r: PinRoute, op: string) {
  const { address, prefixLength } = cidrOf(r.cidr);
  const gateway = r.gateway === undefined ? undefined : ip(r.gateway, `gateway of ${r.cidr}`);
  if (gateway && gateway.length !== address.length) {
    throw new UserError(`cannot pin ${r.cidr} via ${r.gateway}: not the same address family`);
  }
  return {
    spec: { dst: address, dstLen: prefixLength, index: nameToIndex(r.ifname), gateway },
    what: `${op} route ${r.cidr}${r.gateway ? ` via ${r.gateway}` : ""} dev ${r.ifname}`,
  };
}

const routes: Routes = {
  add: (cidr, ifname) => addRoute({ cidr, ifname }, "route"),
  delete: (cidr, ifname) => deleteRoute({ cidr, ifname }),
  addPin: (r) => addRoute(r, "pin"),
  deletePin: (r) => deleteRoute(r),

  async get(address) {
    const dst = ip(address, "route lookup");
    const seq = nextSeq();
    let replies;
    try {
      replies = await transact(encodeGetRoute({ seq, dst }), seq, `route get ${address}`);
    } catch (e) {
      // No route at all (or an unreachable/prohibit route) is an answer, not a failure.
      if (e instanceof OsError && ["ENETUNREACH", "EHOSTUNREACH", "EACCES"].includes(e.code)) {
        return undefined;
      }
      throw e;
    }
    return replies.length === 0 ? undefined : infoOf(decodeRoute(replies[0]));
  },

  async defaultRoute() {
    // A dump, not a lookup: `route get` would answer our half-defaults once they are in place.
    const seq = nextSeq();
    const replies = await transact(encodeDumpRoutes({ seq }), seq, "route show default");
    const r = pickDefaultRoute(decodeRoutes(replies));
    return r && infoOf(r);
  },
};

function infoOf(r: RouteReply): RouteInfo | undefined {
  if (r.oif === undefined) return undefined;
  return {
    interface: indexToName(r.oif) ?? `if${r.oif}`,
    gateway: r.gateway && formatIP(r.gateway),
    source: r.prefsrc && formatIP(r.prefsrc),
  };
}

const RESOLVE1 = {
  destination: "org.freedesktop.resolve1",
  path: "/org/freedesktop/resolve1",
  iface: "org.freedesktop.resolve1.Manager",
};

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The commands that do by hand what apply() would have done. */
export function resolvectlHint(cfg: DnsConfig): string {
  const domains = cfg.domains.map((d) => `~${d}`).join(" ");
  const hint =
    `resolvectl dns ${cfg.ifname} ${cfg.server}; resolvectl domain ${cfg.ifname} ${domains}`;
  return coversAll(cfg.domains) ? `${hint}; resolvectl default-route ${cfg.ifname} true` : hint;
}

/**
 * Put back a resolv.conf that ssm-proxy left behind when its process is gone, even with no
 * tunnel state to say so (a reboot clears /run; /etc keeps our file and the copy of the original
 * inside it). Prints one line when it restores (or cannot); never throws. For `start`, `stop`
 * and `status` to call first.
 */
export function recoverDns(opts: LinuxPlatformOptions = {}): Promise<Recovery> {
  return recoverResolvConf({
    path: opts.resolvConf ?? "/etc/resolv.conf",
    stateDir: opts.stateDir ?? stateDir(),
  });
}

/** systemd-resolved when it runs, else the resolv.conf forwarder; revert follows the state. */
function linuxDns(
  busPath: string,
  resolvedDir: string,
  fallback: Dns,
  recover: () => unknown,
): Dns {
  const resolved = resolvedDns(busPath, resolvedDir);
  const present = () => exists(resolvedDir) && exists(busPath);
  return {
    apply(cfg) {
      if (cfg.domains.length === 0) return Promise.resolve({ kind: "none", items: [] });
      return present() ? resolved.apply(cfg) : fallback.apply(cfg);
    },
    async revert(state) {
      if (state.kind !== "resolv-conf") return resolved.revert(state);
      await fallback.revert(state);
      // The backup may be gone with the file still ours (a reboot, a cleared state dir).
      await recover();
    },
  };
}

function resolvedDns(busPath: string, resolvedDir: string): Dns {
  const present = () => exists(resolvedDir) && exists(busPath);
  return {
    async apply(cfg: DnsConfig): Promise<DnsState> {
      const server = ip(cfg.server, "DNS server");
      const index = nameToIndex(cfg.ifname);
      if (index === 0) throw new UserError(`cannot set DNS: no interface ${cfg.ifname}`);
      let bus: DBusConnection | undefined;
      try {
        bus = await DBusConnection.connect(busPath);
        const family = server.length === 4 ? 2 : 10;
        await bus.call({
          ...RESOLVE1,
          member: "SetLinkDNS",
          args: [
            dbus.i(index),
            dbus.array("(iay)", [dbus.struct(dbus.i(family), dbus.ay(server))]),
          ],
        });
        await bus.call({
          ...RESOLVE1,
          member: "SetLinkDomains",
          // true = routing-only ("~domain"): used to pick this link, never as a search suffix.
          // "." becomes "~.", which every name matches: resolved picks this link for all of
          // them (over other links' default route), save names under another link's domains.
          args: [
            dbus.i(index),
            dbus.array("(sb)", cfg.domains.map((d) => dbus.struct(dbus.s(d), dbus.b(true)))),
          ],
        });
        if (coversAll(cfg.domains)) {
          // Also the link for names no domain matches, as `resolvectl default-route` says.
          await bus.call({
            ...RESOLVE1,
            member: "SetLinkDefaultRoute",
            args: [dbus.i(index), dbus.b(true)],
          });
        }
      } catch (e) {
        // Half a configuration is not left behind: a full tunnel that failed could still send
        // every name to a resolver the user was told is not in use.
        if (bus) {
          await bus.call({ ...RESOLVE1, member: "RevertLink", args: [dbus.i(index)] })
            .catch(() => {});
        }
        if (e instanceof DBusError || e instanceof Deno.errors.PermissionDenied) {
          throw new UserError(
            `could not configure systemd-resolved (${e.message}); run instead: ${
              resolvectlHint(cfg)
            }`,
          );
        }
        throw e;
      } finally {
        bus?.close();
      }
      return { kind: "systemd-resolved", items: [cfg.ifname] };
    },

    async revert(state: DnsState): Promise<void> {
      if (state.kind !== "systemd-resolved" || !present()) return;
      for (const ifname of state.items) {
        // A vanished link (tun closed, crash) took its resolved configuration with it; an index
        // reused by another interface is why we record names, not numbers.
        const index = nameToIndex(ifname);
        if (index === 0) continue;
        let bus: DBusConnection | undefined;
        try {
          bus = await DBusConnection.connect(busPath);
          await bus.call({ ...RESOLVE1, member: "RevertLink", args: [dbus.i(index)] });
        } catch (e) {
          if (e instanceof DBusError) {
            throw new UserError(
              `could not undo DNS settings on ${ifname} (${e.message}); run: resolvectl revert ${ifname}`,
            );
          }
          throw e;
        } finally {
          bus?.close();
        }
      }
    },
  };
}

export function linuxPlatform(opts: LinuxPlatformOptions = {}): NetPlatform {
  return {
    openTun,
    routes,
    dns: linuxDns(
      opts.busPath ?? "/run/dbus/system_bus_socket",
      opts.resolvedDir ?? "/run/systemd/resolve",
      resolvConfDns({
        path: opts.resolvConf ?? "/etc/resolv.conf",
        stateDir: opts.stateDir ?? stateDir(),
      }),
      () => recoverDns(opts),
    ),
  };
}
