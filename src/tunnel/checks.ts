/**
 * Refuse CIDRs that would break the laptop (DESIGN §4; issue: the default route, the laptop's
 * own LAN, the path to the AWS endpoints), unless the user insists with --force.
 */
import { ExitCode, UserError } from "../errors.ts";
import type { Routes } from "../net/types.ts";
import { type Cidr, contains, formatIpv4, overlaps, parseCidr, parseIpv4 } from "../net/cidr.ts";

/** A public address only looked up in the routing table (RTM_GETROUTE), never contacted. */
const PROBE = "1.1.1.1";

export function parseCidrs(texts: string[]): Cidr[] {
  if (texts.length === 0) {
    throw new UserError("give at least one --cidr, e.g. --cidr 10.0.0.0/16", ExitCode.Usage);
  }
  const out: Cidr[] = [];
  for (const t of texts) {
    const c = parseCidr(t);
    if (c.prefix === 0) {
      throw new UserError(
        `${c.text} would send all traffic through the tunnel; a full-tunnel mode is not supported yet: list the VPC CIDRs instead`,
        ExitCode.Usage,
      );
    }
    const dup = out.find((o) => overlaps(o, c));
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

/** Ranges already owned by other running tunnels. */
export function checkOtherTunnels(
  cidrs: Cidr[],
  others: { name: string; cidrs: string[] }[],
): void {
  for (const o of others) {
    for (const t of o.cidrs) {
      const c = parseCidr(t);
      const hit = cidrs.find((x) => overlaps(x, c));
      if (hit) {
        throw new UserError(
          `${hit.text} overlaps ${c.text} of the running tunnel "${o.name}": stop it first (ssm-proxy stop ${o.name})`,
          ExitCode.Usage,
        );
      }
    }
  }
}

/** Default route, LAN, and addresses we must keep reaching directly (AWS endpoints). */
export async function checkRouteConflicts(
  cidrs: Cidr[],
  routes: Routes,
  mustReach: { what: string; address: string }[],
): Promise<void> {
  const def = await routes.get(PROBE).catch(() => undefined);
  for (const c of cidrs) {
    for (
      const [label, addr] of [["default gateway", def?.gateway], [
        "own address",
        def?.source,
      ]] as const
    ) {
      const n = addr ? parseIpv4(addr) : undefined;
      if (n !== undefined && contains(c, n)) {
        throw new UserError(
          `${c.text} contains this machine's ${label} ${addr}: routing it into the tunnel would cut your connection (use --force to do it anyway)`,
          ExitCode.Usage,
        );
      }
    }
    // A directly connected network (no gateway) on another interface is the laptop's LAN.
    const r = await routes.get(formatIpv4(c.base)).catch(() => undefined);
    if (
      r && !r.gateway && r.interface !== "lo" && !r.interface.startsWith("ssmp") &&
      !r.interface.startsWith("utun")
    ) {
      throw new UserError(
        `${c.text} overlaps a network directly attached to ${r.interface} (your LAN?): routing it into the tunnel would cut it off (use --force to do it anyway)`,
        ExitCode.Usage,
      );
    }
    for (const m of mustReach) {
      const n = parseIpv4(m.address);
      if (n !== undefined && contains(c, n)) {
        throw new UserError(
          `${c.text} contains ${m.address}, the address of ${m.what}: the tunnel would route its own traffic into itself (use --force to do it anyway)`,
          ExitCode.Usage,
        );
      }
    }
  }
}

/** Addresses of the hosts in these URLs (already numeric, or looked up in DNS). */
export async function endpointAddresses(
  urls: string[],
): Promise<{ what: string; address: string }[]> {
  const out: { what: string; address: string }[] = [];
  for (const u of urls) {
    let host: string;
    try {
      host = new URL(u).hostname.replace(/^\[|\]$/g, "");
    } catch {
      continue;
    }
    if (parseIpv4(host) !== undefined) {
      out.push({ what: `the AWS endpoint ${host}`, address: host });
      continue;
    }
    try {
      for (const a of await Deno.resolveDns(host, "A")) {
        out.push({ what: `the AWS endpoint ${host}`, address: a });
      }
    } catch {
      // Unresolvable here means the SDK would fail first, with its own message.
    }
  }
  return out;
}
