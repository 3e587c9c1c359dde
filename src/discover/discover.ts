/**
 * What `ssm-proxy start --target X` should route and which domains go to the VPC resolver,
 * asked of AWS: the instance, then its VPC (and DHCP options), its subnet's route table and
 * the VPC's private hosted zones at once. A call the user may not make skips its source with
 * one note naming the IAM action; the rest goes on.
 */
import type { AwsOptions } from "../aws/config.ts";
import {
  describeInstances,
  describeVpc,
  dhcpDomainNames,
  type InstanceSummary,
  type RouteTableSummary,
  subnetRouteTable,
  type VpcSummary,
} from "../aws/ec2.ts";
import { hostedZonesByVpc, type HostedZoneSummary } from "../aws/route53.ts";
import { AccessDeniedError } from "../aws/errors.ts";
import { ExitCode, UserError } from "../errors.ts";
import { vpcResolverAddress } from "../net/cidr.ts";
import { dnsCandidates, type DomainCandidate } from "./dns.ts";
import { type Range, routeCandidates, type Skipped } from "./routes.ts";

/** The AWS calls discovery makes; tests may record or replace them. */
export interface DiscoveryApi {
  describeInstance(o: AwsOptions, instanceId: string): Promise<InstanceSummary | undefined>;
  describeVpc(o: AwsOptions, vpcId: string): Promise<VpcSummary | undefined>;
  subnetRouteTable(
    o: AwsOptions,
    vpcId: string,
    subnetId: string,
  ): Promise<RouteTableSummary | undefined>;
  dhcpDomainNames(o: AwsOptions, dhcpOptionsId: string): Promise<string[]>;
  hostedZonesByVpc(o: AwsOptions, vpcId: string, vpcRegion: string): Promise<HostedZoneSummary[]>;
}

export const awsDiscoveryApi: DiscoveryApi = {
  // A filter, not InstanceIds: an unknown id is then "nothing found", not an EC2 error.
  describeInstance: async (o, id) =>
    (await describeInstances(o, [{ name: "instance-id", values: [id] }]))[0],
  describeVpc,
  subnetRouteTable,
  dhcpDomainNames,
  hostedZonesByVpc,
};

export interface DiscoverTarget {
  instanceId: string;
  /** The instance's region: every call is made there, and it is the VPCRegion for Route 53. */
  region: string;
}

export interface Discovery {
  vpcId?: string;
  subnetId?: string;
  /** Candidate ranges, for planRoutes (plan.ts). */
  ranges: Range[];
  skipped: Skipped[];
  domains: DomainCandidate[];
  /** The VPC resolver: the primary block's base + 2. */
  resolver?: string;
  /** One line per source that could not be asked, and other things the user should know. */
  notes: string[];
}

/** A call's value, or undefined and the note that says what was lost. */
type Outcome<T> = { value?: T; note?: string; denied?: boolean };

/**
 * Runs `fn`; a denial becomes a note naming `action`. Other failures of an `optional` source
 * (an unreachable Route 53 endpoint…) are notes too; those of an essential one propagate.
 */
async function attempt<T>(
  fn: () => Promise<T>,
  action: string,
  lost: string,
  flags: string,
  optional: boolean,
): Promise<Outcome<T>> {
  try {
    return { value: await fn() };
  } catch (e) {
    if (e instanceof AccessDeniedError) {
      return { note: `${action} denied: ${lost}; grant it or pass ${flags}`, denied: true };
    }
    if (optional && e instanceof UserError) {
      return { note: `${action} failed (${e.message}): ${lost}; pass ${flags}` };
    }
    throw e;
  }
}

export async function discover(
  aws: AwsOptions,
  target: DiscoverTarget,
  want: { routes: boolean; dns: boolean },
  api: DiscoveryApi = awsDiscoveryApi,
): Promise<Discovery> {
  const id = target.instanceId;
  const out: Discovery = { ranges: [], skipped: [], domains: [], notes: [] };
  if (!id.startsWith("i-")) {
    out.notes.push(`${id}: a hybrid node has no VPC to discover: pass --cidr and --dns-domain`);
    return out;
  }
  if (!want.routes && !want.dns) return out;
  const o: AwsOptions = { ...aws, region: target.region };
  const flags = [want.routes ? "--cidr" : "", want.dns ? "--dns-domain" : ""]
    .filter((f) => f !== "").join(" and ");

  const inst = await attempt(
    () => api.describeInstance(o, id),
    "ec2:DescribeInstances",
    `the VPC of ${id} is unknown, so nothing was discovered`,
    flags,
    false,
  );
  if (inst.denied) {
    if (want.routes) {
      throw new UserError(
        `ec2:DescribeInstances denied: cannot discover what ${id} reaches: grant it or pass --cidr`,
        ExitCode.Auth,
      );
    }
    out.notes.push(inst.note as string);
    out.domains = dnsCandidates({ region: target.region }).domains;
    return out;
  }
  if (!inst.value) {
    throw new UserError(`instance ${id} not found in ${target.region}`, ExitCode.Target);
  }
  const { vpcId, subnetId } = inst.value;
  if (!vpcId) {
    out.notes.push(`${id} is in no VPC: nothing to discover; pass ${flags}`);
    return out;
  }
  out.vpcId = vpcId;
  if (subnetId) out.subnetId = subnetId;

  // The VPC first within its own branch: its DhcpOptionsId names the DHCP set to describe.
  const vpcBranch = async () => {
    const vpc = await attempt(
      () => api.describeVpc(o, vpcId),
      "ec2:DescribeVpcs",
      `the CIDR blocks${want.dns ? ", DHCP domain and resolver" : ""} of ${vpcId} not discovered`,
      flags,
      false,
    );
    const dopt = vpc.value?.dhcpOptionsId;
    const dhcp = want.dns && dopt
      ? await attempt(
        () => api.dhcpDomainNames(o, dopt),
        "ec2:DescribeDhcpOptions",
        `the domain name of ${dopt} not discovered`,
        "--dns-domain",
        true,
      )
      : {};
    return { vpc, dhcp };
  };
  const none: Outcome<never> = {};
  const [{ vpc, dhcp }, table, zones] = await Promise.all([
    vpcBranch(),
    want.routes && subnetId
      ? attempt(
        () => api.subnetRouteTable(o, vpcId, subnetId),
        "ec2:DescribeRouteTables",
        "peering/TGW routes not discovered",
        "--cidr",
        true,
      )
      : none,
    want.dns
      ? attempt(
        () => api.hostedZonesByVpc(o, vpcId, target.region),
        "route53:ListHostedZonesByVPC",
        `private hosted zones of ${vpcId} not discovered`,
        "--dns-domain",
        true,
      )
      : none,
  ]);
  for (const r of [vpc, dhcp, table, zones]) if (r.note) out.notes.push(r.note);
  if (vpc.value) out.resolver = vpcResolverAddress(vpc.value.cidr);
  else if (!vpc.note) out.notes.push(`${vpcId} not found by ec2:DescribeVpcs`);

  if (want.routes) {
    const found = routeCandidates({ vpcId, vpcCidrs: vpc.value?.cidrs, table: table.value });
    if (found.ranges.length === 0 && vpc.denied) {
      throw new UserError(
        `ec2:DescribeVpcs denied and nothing else found to route for ${id}: grant it or pass --cidr`,
        ExitCode.Auth,
      );
    }
    out.ranges = found.ranges;
    out.skipped = found.skipped;
  }
  if (want.dns) {
    const d = dnsCandidates({
      region: target.region,
      zones: zones.value,
      ...(dhcp.value && vpc.value?.dhcpOptionsId
        ? { dhcp: { id: vpc.value.dhcpOptionsId, names: dhcp.value } }
        : {}),
    });
    out.domains = d.domains;
    out.notes.push(...d.notes);
  }
  return out;
}
