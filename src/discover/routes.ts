/**
 * Which IPv4 ranges an instance can reach, from its VPC's blocks and its subnet's route table,
 * each with the reason it is there, or the reason it is not. Pure.
 */
import type { RouteEntry, RouteTableSummary } from "../aws/ec2.ts";
import { type Cidr, parseCidr } from "../net/cidr.ts";
import { within } from "./split.ts";

/** A range to route into the tunnel and why, e.g. `10.8.0.0/16`, `via tgw-0abc (transit gateway)`. */
export interface Range {
  cidr: string;
  reason: string;
}

/** Something left out and why; `cidr` is absent when the destination is not one (a prefix list). */
export interface Skipped {
  cidr?: string;
  reason: string;
}

export interface RouteFacts {
  vpcId: string;
  /** Associated IPv4 blocks, the primary first; absent when DescribeVpcs was not allowed. */
  vpcCidrs?: string[];
  /** The subnet's route table; absent when DescribeRouteTables was not allowed. */
  table?: RouteTableSummary;
}

/** Narrower than this is a network; wider is most of the internet (a full tunnel, not yet). */
const WIDEST = 8;

/** Targets behind which lies another private network the instance reaches. */
function gatewayReason(target: string): string | undefined {
  if (target.startsWith("tgw-")) return `via ${target} (transit gateway)`;
  if (target.startsWith("pcx-")) return `via ${target} (peering)`;
  if (target.startsWith("vgw-")) return `via ${target} (VPN)`;
  if (target.startsWith("lgw-")) return `via ${target} (Outposts local gateway)`;
  if (target.startsWith("arn:aws") && target.includes(":core-network/")) {
    return `via ${target.slice(target.lastIndexOf("/") + 1)} (Cloud WAN)`;
  }
  return undefined;
}

/** Why a route's target leads nowhere the tunnel should go. */
function targetSkip(target: string): string {
  if (target.startsWith("igw-")) return `via ${target} (internet gateway): the internet`;
  if (target.startsWith("eigw-")) return `via ${target} (egress-only internet gateway)`;
  if (target.startsWith("nat-")) return `via ${target} (NAT gateway): the internet`;
  if (target.startsWith("cagw-")) return `via ${target} (carrier gateway)`;
  if (target.startsWith("eni-") || target.startsWith("i-")) {
    return `via ${target} (a network interface, e.g. an appliance): not followed`;
  }
  if (target.startsWith("vpce-")) return `via ${target} (VPC endpoint): not followed`;
  return `via ${target}: not a gateway to another network`;
}

function parsed(text: string): Cidr | undefined {
  try {
    return parseCidr(text);
  } catch {
    return undefined;
  }
}

/** One route: a range with its reason, or why it is skipped. */
function classify(r: RouteEntry): { range?: Range; skip?: Skipped } {
  const dest = r.destination ?? r.destinationIpv6;
  const label = dest ?? (r.prefixListId ? `prefix list ${r.prefixListId}` : "a route");
  const cidr = r.destination;
  if (r.state === "blackhole") {
    const pl = dest ? "" : `${label}: `;
    return { skip: { cidr, reason: `${pl}blackhole route via ${r.target} (its target is gone)` } };
  }
  if (r.destinationIpv6 || dest?.includes(":")) {
    return { skip: { cidr: dest, reason: "IPv6 destinations are not supported yet" } };
  }
  const via = gatewayReason(r.target);
  if (r.prefixListId && !dest) {
    return {
      skip: {
        reason: via
          ? `prefix list ${r.prefixListId} ${via} is not expanded: add its ranges with --cidr`
          : `prefix list ${r.prefixListId} ${targetSkip(r.target)}`,
      },
    };
  }
  const c = cidr === undefined ? undefined : parsed(cidr);
  if (!c) return { skip: { cidr, reason: `${label} is not an IPv4 CIDR` } };
  if (r.target === "local") {
    return { skip: { cidr: c.text, reason: "local: the VPC's own block, already included" } };
  }
  if (c.prefix < WIDEST) {
    const what = c.prefix === 0 ? "the default route" : `a /${c.prefix}, most of the internet,`;
    return {
      skip: {
        cidr: c.text,
        reason: `${what} ${via ?? `via ${r.target}`}: --all-traffic routes everything`,
      },
    };
  }
  if (!via) return { skip: { cidr: c.text, reason: targetSkip(r.target) } };
  return { range: { cidr: c.text, reason: via } };
}

/**
 * The instance's VPC blocks, then every route of its table to another private network. A range
 * inside another one (a peering route into a VPC block, two TGW routes) is left out, noting the
 * wider one that covers it.
 */
export function routeCandidates(f: RouteFacts): { ranges: Range[]; skipped: Skipped[] } {
  const found: Range[] = [];
  const skipped: Skipped[] = [];
  const vpc = `${f.vpcId} (the instance's VPC`;
  // Without DescribeVpcs, the table's local routes are the VPC's blocks all the same.
  const own = f.vpcCidrs ??
    f.table?.routes.filter((r) => r.target === "local" && r.destination && !r.destinationIpv6)
      .map((r) => r.destination as string) ??
    [];
  own.forEach((cidr, n) => {
    const from = f.vpcCidrs ? "" : ", from its route table";
    found.push({ cidr, reason: `${vpc}${n === 0 ? "" : ", secondary block"}${from})` });
  });
  for (const r of f.table?.routes ?? []) {
    // The VPC's own blocks, listed above: saying so again would only be noise.
    if (r.target === "local" && r.destination && own.includes(r.destination)) continue;
    const { range, skip } = classify(r);
    if (range) found.push(range);
    if (skip) skipped.push(skip);
  }
  return { ranges: widest(found, skipped), skipped };
}

/** Drops ranges covered by another (or repeated), keeping the order of the rest. */
function widest(found: Range[], skipped: Skipped[]): Range[] {
  const cidrs = found.map((r) => parsed(r.cidr));
  const keep = found.map((r, n) => {
    const c = cidrs[n];
    if (!c) {
      skipped.push({ cidr: r.cidr, reason: `${r.cidr} (${r.reason}) is not an IPv4 CIDR` });
      return false;
    }
    // Covered by a wider range, or by an equal one listed earlier; named: the widest.
    let outer = -1;
    cidrs.forEach((o, m) => {
      if (m === n || !o || !within(c, o) || (o.prefix === c.prefix && m > n)) return;
      if (outer < 0 || o.prefix < (cidrs[outer] as Cidr).prefix) outer = m;
    });
    if (outer < 0) return true;
    skipped.push({
      cidr: c.text,
      reason: `${r.reason}: inside ${found[outer].cidr} (${found[outer].reason}), already routed`,
    });
    return false;
  });
  return found.filter((_, n) => keep[n]);
}
