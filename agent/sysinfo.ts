/**
 * Facts about the host the agent needs when the config leaves them out: the uplink (the default
 * route's interface), the VPC resolver, and whether the uplink has IPv6. Parsers are pure; the
 * readers only read /proc and /etc.
 */
import { formatIP } from "../ffi/struct.ts";

/**
 * The interface of the IPv4 default route in /proc/net/route text (lowest metric wins), or
 * undefined. Columns: Iface Destination Gateway Flags RefCnt Use Metric Mask …, hex in host order.
 */
export function defaultRouteInterface(procNetRoute: string): string | undefined {
  let best: { iface: string; metric: number } | undefined;
  for (const line of procNetRoute.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [iface, dest, , flags, , , metric, mask] = f;
    const up = (parseInt(flags, 16) & 0x1) !== 0;
    if (!up || parseInt(dest, 16) !== 0 || parseInt(mask, 16) !== 0) continue;
    const m = Number(metric);
    if (!best || m < best.metric) best = { iface, metric: m };
  }
  return best?.iface;
}

/** The first IPv4 `nameserver` in resolv.conf text, or undefined. */
export function firstNameserver(resolvConf: string): string | undefined {
  for (const line of resolvConf.split("\n")) {
    const m = /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*(#.*)?$/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

async function readOr(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

export async function detectUplink(): Promise<string | undefined> {
  const text = await readOr("/proc/net/route");
  return text === undefined ? undefined : defaultRouteInterface(text);
}

/**
 * The resolver to tell clients. A loopback stub (systemd-resolved's 127.0.0.53) is useless to a
 * laptop, so then the stub's upstream list is read instead.
 */
export async function detectResolver(): Promise<string | undefined> {
  for (const path of ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"]) {
    const text = await readOr(path);
    const ns = text === undefined ? undefined : firstNameserver(text);
    if (ns && !ns.startsWith("127.")) return ns;
  }
  return undefined;
}

const IFA_F_DADFAILED = 0x08;

/**
 * The global-scope IPv6 addresses of `ifname` in /proc/net/if_inet6 text. Columns: address (32
 * hex digits), ifindex, prefix length, scope (00 global, 20 link, 10 host), flags, name. An
 * address whose duplicate detection failed is not usable and does not count.
 */
export function globalIpv6Addresses(ifInet6: string, ifname: string): string[] {
  const out: string[] = [];
  for (const line of ifInet6.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || f[5] !== ifname || !/^[0-9a-f]{32}$/i.test(f[0])) continue;
    if (parseInt(f[3], 16) !== 0 || parseInt(f[4], 16) & IFA_F_DADFAILED) continue;
    out.push(formatIP(new Uint8Array(f[0].match(/../g)!.map((h) => parseInt(h, 16)))));
  }
  return out;
}

/** Has this host an IPv6 stack at all (not booted with ipv6.disable=1)? */
export async function hasIpv6Stack(): Promise<boolean> {
  return (await readOr("/proc/net/if_inet6")) !== undefined;
}

export async function detectGlobalIpv6(ifname: string): Promise<string[]> {
  const text = await readOr("/proc/net/if_inet6");
  return text === undefined ? [] : globalIpv6Addresses(text, ifname);
}
