/**
 * What `start` will route and which domains it will send to the VPC resolver, each with the
 * reason: given with --cidr/--dns-domain, or discovered from the instance's VPC (by the planning
 * child, plan_child.ts). Checks the routing table; changes nothing (this is all `--dry-run` does).
 */
import type { ResolvedTarget } from "../aws/targets.ts";
import type { Discovery } from "../discover/discover.ts";
import { ExitCode, UserError } from "../errors.ts";
import { parseCidr } from "../net/cidr.ts";
import type { Routes } from "../net/types.ts";
import {
  checkOtherTunnels,
  checkRouteConflicts,
  conflictChecker,
  heldAddress,
  type LocalNetwork,
  localNetworks,
} from "../tunnel/checks.ts";
import type { TunnelState } from "../tunnel/state.ts";
import type { CheckedStart } from "./options.ts";
import { HALF_DEFAULTS, lanHalves, type PlannedPin } from "./full_tunnel.ts";
import { HALF_DEFAULTS6, isIpv6Text } from "../net/cidr6.ts";
import { ALL_DOMAINS } from "../net/domain.ts";

export interface NetworkPlan {
  routes: { cidr: string; reason: string }[];
  skipped: { cidr?: string; reason: string }[];
  domains: { domain: string; reason: string }[];
  /** The user named the domains: DNS must work or start fails. Discovered: best effort. */
  dnsRequired: boolean;
  /** Why there is no DNS at all, when there is none. */
  dnsOff?: string;
  /** The VPC resolver (base + 2 of the VPC's primary block), when the VPC is known. */
  resolver?: string;
  vpcId?: string;
  /** Sources that could not be read, one line each. */
  notes: string[];
  /** Full tunnel: what keeps its own path (the tunnel's AWS endpoints), set once connected. */
  pins?: PlannedPin[];
  /** Full tunnel: the endpoints' names and the addresses they had before DNS was switched. */
  pinnedNames?: Map<string, string[]>;
  /** Full tunnel: the machine's own nameservers from before (asked for the endpoints' names). */
  nameservers?: string[];
  allTraffic?: boolean;
  /** Full tunnel with `--no-lan`: the LAN's halves are among the routes. */
  noLan?: boolean;
}

export interface PlanContext {
  target: ResolvedTarget;
  force: boolean;
  routes: Routes;
  running: TunnelState[];
  mustReach: { what: string; address: string }[];
  /** This machine's networks (tests pass their own). */
  lans?: LocalNetwork[];
}

/** What is left to discover: routes unless given, DNS unless given or off. */
export function wantDiscovery(c: CheckedStart): { routes: boolean; dns: boolean } {
  // A full tunnel routes everything and sends every name to the resolver the agent names.
  if (c.allTraffic) return { routes: false, dns: false };
  return { routes: c.cidrs === undefined, dns: c.dns && c.domains === undefined };
}

/** The plan from what discovery `found` (undefined: nothing was to be discovered) and `c`. */
export async function planNetwork(
  c: CheckedStart,
  found: Discovery | undefined,
  x: PlanContext,
): Promise<NetworkPlan> {
  const { planRoutes } = await import("../discover/plan.ts");
  let candidates: { cidr: string; reason: string }[];
  let conflicts;
  if (c.allTraffic) {
    // More specific routes (another tunnel's, the LAN's) keep winning over the half-defaults.
    candidates = HALF_DEFAULTS.map((cidr) => ({ cidr, reason: "all traffic (half of 0.0.0.0/0)" }));
    if (c.noLan) candidates.push(...lanHalves(x.lans ?? localNetworks()));
  } else if (c.cidrs) {
    // Asked for by name: a conflict is the user's mistake, said at once (--force overrides).
    checkOtherTunnels(c.cidrs, x.running);
    if (!x.force) await checkRouteConflicts(c.cidrs, x.routes, x.mustReach);
    candidates = c.cidrs.map((r) => ({ cidr: r.text, reason: "--cidr" }));
  } else {
    candidates = found?.ranges ?? [];
    conflicts = await conflictChecker(x.routes, x.mustReach, x.running);
  }
  const planned = await planRoutes(candidates, {
    exclude: c.exclude.map((e) => e.text),
    ...(conflicts ? { conflicts } : {}),
    force: x.force,
  });
  const skipped = [...(found?.skipped ?? []), ...planned.skipped];
  const notes = [...(found?.notes ?? []), ...planned.notes];
  // IPv6 goes in only if the agent hands out an IPv6 address (apply.ts drops it otherwise).
  planned.routes.push(
    ...(c.allTraffic ? HALF_DEFAULTS6.map((cidr) => ({ cidr, reason: "all IPv6 traffic" })) : []),
    ...c.cidrs6.map((r) => ({ cidr: r.text, reason: "--cidr" })),
  );
  if (planned.routes.length === 0) {
    const why = [...skipped.map((s) => `${s.cidr ?? ""} ${s.reason}`.trim()), ...notes];
    throw new UserError(
      `nothing to route for ${x.target.instanceId}${
        why.length ? ` (${why.join("; ")})` : ""
      }: pass --cidr RANGE`,
      ExitCode.Usage,
    );
  }
  const plan: NetworkPlan = {
    routes: planned.routes,
    skipped,
    domains: [],
    dnsRequired: false,
    notes,
    ...(found?.vpcId ? { vpcId: found.vpcId } : {}),
    ...(found?.resolver ? { resolver: found.resolver } : {}),
  };
  if (c.allTraffic) {
    plan.allTraffic = true;
    if (c.noLan) plan.noLan = true;
    plan.domains = [{ domain: ALL_DOMAINS, reason: "every name (--all-traffic)" }];
    plan.dnsRequired = true;
  } else if (!c.dns) plan.dnsOff = "--no-dns";
  else if (c.domains) {
    plan.domains = c.domains.map((d) => ({ domain: d, reason: "--dns-domain" }));
    plan.dnsRequired = true;
  } else {
    const { domains, notes } = unclaimedDomains(found?.domains ?? [], x.running);
    plan.domains = domains;
    plan.notes.push(...notes);
    if (plan.domains.length === 0 && notes.length === 0) {
      plan.dnsOff = "no private domains found for this VPC";
    } else if (plan.domains.length === 0) plan.dnsOff = "every domain found is another tunnel's";
  }
  return plan;
}

/**
 * Discovered domains another running tunnel already resolves (two VPCs of one region both have
 * ec2.internal) stay with that tunnel: one domain, one resolver. Given ones are the user's call.
 */
export function unclaimedDomains(
  found: { domain: string; reason: string }[],
  running: { name: string; domains?: string[] }[],
): { domains: { domain: string; reason: string }[]; notes: string[] } {
  const owner = new Map(running.flatMap((t) => (t.domains ?? []).map((d) => [d, t.name])));
  const notes: string[] = [];
  const domains = found.filter((d) => {
    const t = owner.get(d.domain);
    if (t !== undefined) notes.push(`${d.domain}: already resolved through tunnel "${t}"`);
    return t === undefined;
  });
  return { domains, notes };
}

/**
 * After connecting: a range that holds the session's own endpoint would route the tunnel into
 * itself. Given ranges fail (as before connecting); discovered ones are skipped.
 */
export function dropEndpointConflicts(
  plan: NetworkPlan,
  endpoints: { what: string; address: string }[],
  given: { text: string }[] | undefined,
): NetworkPlan {
  const routes: NetworkPlan["routes"] = [];
  const skipped = [...plan.skipped];
  for (const r of plan.routes) {
    // IPv6 ranges cannot hold the (IPv4) endpoints these checks know.
    const hit = isIpv6Text(r.cidr) ? undefined : heldAddress(parseCidr(r.cidr), endpoints);
    if (!hit) routes.push(r);
    else if (given) {
      throw new UserError(
        `${r.cidr} contains ${hit.address}, the address of ${hit.what}: the tunnel would route its own traffic into itself (use --force to do it anyway)`,
        ExitCode.Usage,
      );
    } else {
      skipped.push({
        cidr: r.cidr,
        reason: `${r.reason}: holds ${hit.what} (${hit.address}); --force keeps it`,
      });
    }
  }
  if (routes.length === 0) {
    throw new UserError(
      `nothing left to route: every range holds the Session Manager endpoint; pass --cidr`,
      ExitCode.Usage,
    );
  }
  return { ...plan, routes, skipped };
}
