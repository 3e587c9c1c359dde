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
  encodeDelRoute,
  encodeGetRoute,
  encodeNewAddr,
  encodeNewLink,
  encodeNewRoute,
} from "../../ffi/linux/netlink.ts";
import { nextSeq, transact } from "../../ffi/linux/netlink_socket.ts";
import { disableIPv6, indexToName, LinuxTunDevice, nameToIndex } from "../../ffi/linux/tun.ts";
import { formatIP, parseCidr, StructError } from "../../ffi/struct.ts";
import { UserError } from "../errors.ts";
import { recoverResolvConf, type Recovery } from "../dns/restore.ts";
import { resolvConfDns } from "../dns/resolv_dns.ts";
import { stateDir } from "../tunnel/state.ts";
import {
  type Dns,
  type DnsConfig,
  type DnsState,
  type NetPlatform,
  RouteExistsError,
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
  try {
    // Before link-up, so no router solicitation / MLD chatter is ever queued (os-ffi §9.1).
    disableIPv6(ifname);
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

const routes: Routes = {
  async add(cidr, ifname) {
    const { address, prefixLength } = cidrOf(cidr);
    const index = nameToIndex(ifname);
    if (index === 0) throw new UserError(`cannot route ${cidr}: no interface ${ifname}`);
    const seq = nextSeq();
    try {
      await transact(
        encodeNewRoute({ seq, dst: address, dstLen: prefixLength, index }),
        seq,
        `add route ${cidr} dev ${ifname}`,
      );
    } catch (e) {
      if (e instanceof OsError && e.code === "EEXIST") {
        throw new RouteExistsError(`a route to ${cidr} already exists`);
      }
      throw toUserError({ op: "route", cidr, ifname }, e);
    }
  },

  async delete(cidr, ifname) {
    const { address, prefixLength } = cidrOf(cidr);
    const index = nameToIndex(ifname);
    if (index === 0) return; // the interface is gone, and its routes with it
    const seq = nextSeq();
    try {
      await transact(
        encodeDelRoute({ seq, dst: address, dstLen: prefixLength, index }),
        seq,
        `delete route ${cidr} dev ${ifname}`,
      );
    } catch (e) {
      if (e instanceof OsError && (e.code === "ESRCH" || e.code === "ENODEV")) return;
      throw toUserError({ op: "route", cidr, ifname }, e);
    }
  },

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
    if (replies.length === 0) return undefined;
    const r = decodeRoute(replies[0]);
    if (r.oif === undefined) return undefined;
    return {
      interface: indexToName(r.oif) ?? `if${r.oif}`,
      gateway: r.gateway && formatIP(r.gateway),
      source: r.prefsrc && formatIP(r.prefsrc),
    };
  },
};

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
  return `resolvectl dns ${cfg.ifname} ${cfg.server}; resolvectl domain ${cfg.ifname} ${domains}`;
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
          args: [
            dbus.i(index),
            dbus.array("(sb)", cfg.domains.map((d) => dbus.struct(dbus.s(d), dbus.b(true)))),
          ],
        });
      } catch (e) {
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
