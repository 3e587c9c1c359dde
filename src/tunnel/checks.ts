/**
 * Refuse CIDRs that would break the laptop (DESIGN §4; issue: the default route, the laptop's
 * own LAN, the path to the AWS endpoints), unless the user insists with --force.
 */
import { isIpv6Text } from "../net/cidr6.ts";
import { ExitCode, UserError } from "../errors.ts";
import type { RouteInfo, Routes } from "../net/types.ts";
import {
  type Cidr,
  contains,
  formatIpv4,
  mask,
  overlaps,
  parseCidr,
  parseIpv4,
} from "../net/cidr.ts";

/** A public address only looked up in the routing table (RTM_GETROUTE), never contacted. */
const PROBE = "1.1.1.1";

export function parseCidrs(texts: string[]): Cidr[] {
  if (texts.length === 0) {
    throw new UserError("give at least one --cidr, e.g. --cidr 10.0.0.0/16", ExitCode.Usage);
  }
  return distinctRanges(texts, parseCidr, overlaps);
}

/**
 * --cidr ranges of one family, each once and none inside another. A /0 is a full tunnel
 * (start/full_tunnel.ts): it holds every other range by design.
 */
export function distinctRanges<C extends { prefix: number; text: string }>(
  texts: string[],
  parse: (t: string) => C,
  overlap: (a: C, b: C) => boolean,
): C[] {
  const out: C[] = [];
  for (const t of texts) {
    const c = parse(t);
    const dup = c.prefix === 0 ? undefined : out.find((o) => o.prefix !== 0 && overlap(o, c));
    if (dup) {
      throw new UserError(
        `--cidr ${c.text} overlaps --cidr ${dup.text}: give each range once`,
        ExitCode.Usage,
      );
    }
    out.push(c);
  }
  return out;
}

/** Why `c` may not be routed while another tunnel owns `t`, or undefined. */
function tunnelOverlap(c: Cidr, t: Cidr, name: string): string | undefined {
  return overlaps(c, t)
    ? `overlaps ${t.text} of the running tunnel "${name}": stop it first (ssm-proxy stop ${name})`
    : undefined;
}

/** Ranges already owned by other running tunnels. */
export function checkOtherTunnels(
  cidrs: Cidr[],
  others: { name: string; cidrs: string[] }[],
): void {
  for (const o of others) {
    // IPv6 ranges (a newer tunnel's) are not compared here.
    for (const t of o.cidrs.filter((t) => !isIpv6Text(t))) {
      const c = parseCidr(t);
      for (const x of cidrs) {
        const why = tunnelOverlap(x, c, o.name);
        if (why) throw new UserError(`${x.text} ${why}`, ExitCode.Usage);
      }
    }
  }
}

/** A network this machine is directly on (an interface's address and prefix). */
export interface LocalNetwork {
  ifname: string;
  net: Cidr;
}

/** This machine's IPv4 networks, but loopback and tunnels (ours, utun, other VPNs' tun). */
export function localNetworks(
  interfaces: { name: string; family: string; cidr: string }[] = Deno.networkInterfaces(),
): LocalNetwork[] {
  const out: LocalNetwork[] = [];
  for (const i of interfaces) {
    if (i.family !== "IPv4" || /^(lo|ssmp|utun|tun|wg)/.test(i.name)) continue;
    const [addr, prefix] = i.cidr.split("/");
    const ip = parseIpv4(addr);
    const p = Number(prefix);
    if (ip === undefined || !Number.isInteger(p) || p < 1 || p > 31) continue;
    const m = mask(p);
    out.push({
      ifname: i.name,
      net: { base: (ip & m) >>> 0, prefix: p, text: `${formatIpv4((ip & m) >>> 0)}/${p}` },
    });
  }
  return out;
}

/** Where the default route goes: the gateway and this machine's own address on it. */
export async function defaultRoute(routes: Routes): Promise<RouteInfo | undefined> {
  return await routes.get(PROBE).catch(() => undefined);
}

/**
 * Why routing `c` into the tunnel would break this machine (default gateway, own address,
 * directly attached LAN, an address the tunnel must reach directly), or undefined. `def` is
 * {@link defaultRoute}, looked up once by the caller for many CIDRs.
 */
export async function localConflict(
  c: Cidr,
  routes: Routes,
  mustReach: { what: string; address: string }[],
  def: RouteInfo | undefined,
  lans: LocalNetwork[] = [],
): Promise<string | undefined> {
  for (
    const [label, addr] of [["default gateway", def?.gateway], [
      "own address",
      def?.source,
    ]] as const
  ) {
    const n = addr ? parseIpv4(addr) : undefined;
    if (n !== undefined && contains(c, n)) {
      return `contains this machine's ${label} ${addr}: routing it into the tunnel would cut your connection`;
    }
  }
  // A directly connected network (no gateway) on another interface is the laptop's LAN.
  const r = await routes.get(formatIpv4(c.base)).catch(() => undefined);
  if (
    r && !r.gateway && r.interface !== "lo" && !r.interface.startsWith("ssmp") &&
    !r.interface.startsWith("utun")
  ) {
    return `overlaps a network directly attached to ${r.interface} (your LAN?): routing it into the tunnel would cut it off`;
  }
  // The lookup above sees only the range's first address: a LAN inside a wide range (a home
  // 10.1.2.0/24 inside a transit gateway's 10.0.0.0/8) shows up only among the interfaces.
  const lan = lans.find((l) => overlaps(c, l.net));
  if (lan) {
    return `overlaps ${lan.net.text}, the network of ${lan.ifname} (your LAN?): routing it into the tunnel would cut it off`;
  }
  const m = heldAddress(c, mustReach);
  if (m) {
    return `contains ${m.address}, the address of ${m.what}: the tunnel would route its own traffic into itself`;
  }
  return undefined;
}

/** The first address `c` holds of those the tunnel must reach directly (AWS endpoints). */
export function heldAddress(
  c: Cidr,
  mustReach: { what: string; address: string }[],
): { what: string; address: string } | undefined {
  return mustReach.find((m) => {
    const n = parseIpv4(m.address);
    return n !== undefined && contains(c, n);
  });
}

/** Default route, LAN, and addresses we must keep reaching directly (AWS endpoints). */
export async function checkRouteConflicts(
  cidrs: Cidr[],
  routes: Routes,
  mustReach: { what: string; address: string }[],
  lans: LocalNetwork[] = localNetworks(),
): Promise<void> {
  const def = await defaultRoute(routes);
  for (const c of cidrs) {
    const why = await localConflict(c, routes, mustReach, def, lans);
    if (why) {
      throw new UserError(`${c.text} ${why} (use --force to do it anyway)`, ExitCode.Usage);
    }
  }
}

/** Why a range cannot be routed; `forceable` when `--force` may route it anyway. */
export interface Conflict {
  reason: string;
  forceable: boolean;
}

export type ConflictCheck = (c: Cidr) => Promise<Conflict | undefined>;

/**
 * Every check above as one function per CIDR, for ranges that were discovered rather than
 * asked for: a conflict skips the range instead of failing the command. Other tunnels' ranges
 * are never forceable (two tunnels cannot own one route).
 */
export async function conflictChecker(
  routes: Routes,
  mustReach: { what: string; address: string }[],
  others: { name: string; cidrs: string[] }[],
  lans: LocalNetwork[] = localNetworks(),
): Promise<ConflictCheck> {
  const def = await defaultRoute(routes);
  const owned = others.flatMap((o) =>
    o.cidrs.filter((t) => !isIpv6Text(t)).map((t) => ({ name: o.name, cidr: parseCidr(t) }))
  );
  return async (c) => {
    for (const o of owned) {
      const reason = tunnelOverlap(c, o.cidr, o.name);
      if (reason) return { reason, forceable: false };
    }
    const reason = await localConflict(c, routes, mustReach, def, lans);
    return reason ? { reason, forceable: true } : undefined;
  };
}

/** Addresses of the hosts in these URLs (already numeric, or looked up in DNS). */
export async function endpointAddresses(
  urls: string[],
): Promise<{ what: string; address: string }[]> {
  return (await resolveEndpoints(urls)).endpoints;
}

/**
 * Each URL's host as IPv4 addresses (literals as they are, names looked up as A records now),
 * and the names with what they resolved to (a full tunnel answers for them later:
 * net/pinned_names.ts).
 */
export async function resolveEndpoints(
  urls: string[],
): Promise<{ endpoints: { what: string; address: string }[]; names: Map<string, string[]> }> {
  const endpoints: { what: string; address: string }[] = [];
  const names = new Map<string, string[]>();
  for (const u of urls) {
    let host: string;
    try {
      host = new URL(u).hostname.replace(/^\[|\]$/g, "");
    } catch {
      continue;
    }
    const what = `the AWS endpoint ${host}`;
    if (parseIpv4(host) !== undefined) {
      endpoints.push({ what, address: host });
      continue;
    }
    if (names.has(host)) continue;
    // Unresolvable here means the SDK would fail first, with its own message.
    const addrs = await Deno.resolveDns(host, "A").catch(() => [] as string[]);
    names.set(host, addrs);
    for (const address of addrs) endpoints.push({ what, address });
  }
  return { endpoints, names };
}
