/**
 * Full tunnel (`--all-traffic`, or 0.0.0.0/0 among the --cidr ranges): everything goes through
 * the VPC by two half-default routes, which win over the system's default route without
 * replacing it (specs/os-ffi.md §7, macos-dns-routes.md §5.2), so stopping, or a crash, gives the
 * old path back by removing only what we added. What must not go through the tunnel keeps its
 * path by a more specific route, a "pin", taken from the kernel's answer *before* the
 * half-defaults go in: the AWS endpoints the tunnel itself talks to (else healing would have to
 * go through the tunnel it is healing). --exclude ranges are cut out of the half-defaults, and
 * the laptop's own LAN needs nothing (its on-link route is more specific than /1) unless
 * --no-lan sends it through the tunnel too.
 */
import { formatIpv4, parseIpv4 } from "../net/cidr.ts";
import type { LocalNetwork } from "../tunnel/checks.ts";
import type { PinRoute, Routes } from "../net/types.ts";
import type { Cidr } from "../net/cidr.ts";

/** 0.0.0.0/0 as two routes that are more specific than any default route. */
export const HALF_DEFAULTS = ["0.0.0.0/1", "128.0.0.0/1"] as const;

/** --all-traffic, or a --cidr range of 0.0.0.0/0 (which is taken out of the ranges). */
export function splitAllTraffic(
  allTraffic: boolean,
  cidrs: Cidr[] | undefined,
): { all: boolean; cidrs?: Cidr[] } {
  // With everything routed, every other range is inside the half-defaults already.
  if (allTraffic || (cidrs ?? []).some((c) => c.prefix === 0)) return { all: true };
  return cidrs ? { all: false, cidrs } : { all: false };
}

export interface PlannedPin extends PinRoute {
  what: string;
}

/**
 * A pin per endpoint address, through the way the kernel sends it now. An address already on
 * one of our tunnels (another tunnel's range) gets no pin: its route is more specific than /1
 * and stays with that tunnel.
 */
export async function planPins(
  routes: Routes,
  endpoints: { what: string; address: string }[],
  tunnelInterfaces: string[],
): Promise<{ pins: PlannedPin[]; notes: string[] }> {
  const pins: PlannedPin[] = [];
  const notes: string[] = [];
  const seen = new Set<string>();
  for (const e of endpoints) {
    if (parseIpv4(e.address) === undefined) continue; // endpoints are looked up as IPv4 (A)
    const cidr = `${e.address}/32`;
    if (seen.has(cidr)) continue;
    seen.add(cidr);
    const via = await routes.get(e.address);
    if (!via) {
      notes.push(`${e.what} (${e.address}): no route to it now; not pinned`);
      continue;
    }
    if (tunnelInterfaces.includes(via.interface)) {
      notes.push(`${e.what} (${e.address}): already routed through ${via.interface}; left there`);
      continue;
    }
    pins.push({
      cidr,
      ifname: via.interface,
      ...(via.gateway ? { gateway: via.gateway } : {}),
      what: e.what,
    });
  }
  return { pins, notes };
}

/**
 * The addresses a tunnel's own traffic goes to: the session streams, and the APIs healing calls
 * (SSM for sessions, STS and the credential chain behind it, EC2 for a target by name). Looked
 * up now, with the DNS the laptop had: `names` is what net/pinned_names.ts answers from later.
 */
export async function tunnelEndpoints(
  region: string,
  streamUrls: string[],
): Promise<{ endpoints: { what: string; address: string }[]; names: Map<string, string[]> }> {
  const { endpointFor } = await import("../aws/config.ts");
  const { resolveEndpoints } = await import("../tunnel/checks.ts");
  const apis = (["ssm", "sts", "ec2"] as const).map((s) => endpointFor(s, region));
  return await resolveEndpoints([...new Set([...streamUrls, ...apis])]);
}

/**
 * `--no-lan`: the laptop's own networks through the tunnel too. Each goes in as its two halves,
 * which beat the on-link route the LAN already has; what the tunnel itself needs there (its
 * endpoints' gateways, and endpoints on the LAN) keeps a /32 pin on the LAN, more specific still.
 */
export function lanHalves(lans: LocalNetwork[]): { cidr: string; reason: string }[] {
  const out: { cidr: string; reason: string }[] = [];
  for (const l of lans) {
    if (l.net.prefix >= 31) continue;
    const p = l.net.prefix + 1;
    const half = (2 ** (32 - p)) >>> 0;
    for (const base of [l.net.base, (l.net.base + half) >>> 0]) {
      out.push({
        cidr: `${formatIpv4(base)}/${p}`,
        reason: `--no-lan: ${l.net.text} on ${l.ifname}`,
      });
    }
  }
  return out;
}

/** On-link pins for the gateways the endpoint pins go through (--no-lan routes the LAN away). */
export function gatewayPins(pins: PlannedPin[]): PlannedPin[] {
  const seen = new Set<string>();
  const out: PlannedPin[] = [];
  for (const p of pins) {
    if (!p.gateway || parseIpv4(p.gateway) === undefined || seen.has(p.gateway)) continue;
    seen.add(p.gateway);
    out.push({ cidr: `${p.gateway}/32`, ifname: p.ifname, what: `the gateway to ${p.what}` });
  }
  return out;
}

/**
 * The nameservers this machine uses before the full tunnel takes its DNS: systemd-resolved's
 * upstreams when it runs (its /etc/resolv.conf names only its own stub), else /etc/resolv.conf's.
 * Loopback stubs are no use from here and are left out. IPv4 only, like the pins.
 */
export async function originalNameservers(
  files = ["/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"],
): Promise<string[]> {
  const { parseResolvConf } = await import("../dns/resolv_conf.ts");
  for (const f of files) {
    const text = await Deno.readTextFile(f).catch(() => undefined);
    if (text === undefined) continue;
    const servers = parseResolvConf(text).nameservers
      .filter((a) => parseIpv4(a) !== undefined && !a.startsWith("127."));
    if (servers.length) return servers;
  }
  return [];
}
