/**
 * EC2 lookups for target discovery, the VPC resolver and route/DNS discovery (src/discover/).
 * client-ec2 is the heaviest SDK package (28 MB), so it is imported only when a target is given
 * by name or tag, an instance must be started, or something about its VPC is wanted.
 */

import { type AwsOptions, clientConfig } from "./config.ts";
import { callAws } from "./call.ts";
import { vpcResolverAddress } from "../net/cidr.ts";

export interface InstanceSummary {
  instanceId: string;
  /** The Name tag. */
  name?: string;
  /** EC2 state name: pending, running, stopping, stopped, shutting-down, terminated. */
  state: string;
  privateIp?: string;
  vpcId?: string;
  subnetId?: string;
  tags: Record<string, string>;
}

export interface Ec2Filter {
  name: string;
  values: string[];
}

async function ec2Client(o: AwsOptions) {
  const { EC2Client } = await import("@aws-sdk/client-ec2");
  return new EC2Client(clientConfig(o));
}

/** All instances matching every filter (paginated through). */
export async function describeInstances(
  o: AwsOptions,
  filters: Ec2Filter[],
): Promise<InstanceSummary[]> {
  const { DescribeInstancesCommand } = await import("@aws-sdk/client-ec2");
  const spec = { service: "ec2", action: "ec2:DescribeInstances" } as const;
  return await callAws(o, spec, () => ec2Client(o), async (c) => {
    const found: InstanceSummary[] = [];
    let NextToken: string | undefined;
    do {
      const out = await c.send(
        new DescribeInstancesCommand({
          Filters: filters.map((f) => ({ Name: f.name, Values: f.values })),
          NextToken,
        }),
      );
      for (const r of out.Reservations ?? []) {
        for (const i of r.Instances ?? []) {
          const tags = Object.fromEntries((i.Tags ?? []).map((t) => [t.Key ?? "", t.Value ?? ""]));
          found.push({
            instanceId: i.InstanceId ?? "",
            ...(tags.Name !== undefined ? { name: tags.Name } : {}),
            state: i.State?.Name ?? "unknown",
            privateIp: i.PrivateIpAddress,
            vpcId: i.VpcId,
            subnetId: i.SubnetId,
            tags,
          });
        }
      }
      NextToken = out.NextToken;
    } while (NextToken);
    return found;
  });
}

/** Starts a stopped instance; returns its state before and after the call. */
export async function startInstance(
  o: AwsOptions,
  instanceId: string,
): Promise<{ previous: string; current: string }> {
  const { StartInstancesCommand } = await import("@aws-sdk/client-ec2");
  const spec = { service: "ec2", action: "ec2:StartInstances", subject: instanceId } as const;
  return await callAws(o, spec, () => ec2Client(o), async (c) => {
    const out = await c.send(new StartInstancesCommand({ InstanceIds: [instanceId] }));
    const s = out.StartingInstances?.[0];
    return {
      previous: s?.PreviousState?.Name ?? "unknown",
      current: s?.CurrentState?.Name ?? "unknown",
    };
  });
}

/**
 * The VPC resolver of an EC2 instance's VPC (base of the VPC's primary IPv4 CIDR + 2), for DNS
 * in agentless mode (DESIGN §9). Undefined for a managed (`mi-`) instance, which has no VPC in
 * EC2, and when the instance or its VPC is not found.
 */
export async function vpcResolver(o: AwsOptions, instanceId: string): Promise<string | undefined> {
  if (!instanceId.startsWith("i-")) return undefined;
  // Filters rather than ids: an unknown id is then "nothing found", not an EC2 error.
  const [instance] = await describeInstances(o, [{ name: "instance-id", values: [instanceId] }]);
  if (!instance?.vpcId) return undefined;
  const vpc = await describeVpc(o, instance.vpcId);
  return vpc === undefined ? undefined : vpcResolverAddress(vpc.cidr);
}

export interface VpcSummary {
  vpcId: string;
  /** The primary IPv4 CIDR (`CidrBlock`). */
  cidr: string;
  /** Every associated IPv4 block, the primary first. */
  cidrs: string[];
  dhcpOptionsId?: string;
}

/** One VPC, or undefined when it does not exist (a filter, so no NotFound error). */
export async function describeVpc(o: AwsOptions, vpcId: string): Promise<VpcSummary | undefined> {
  const { DescribeVpcsCommand } = await import("@aws-sdk/client-ec2");
  const spec = { service: "ec2", action: "ec2:DescribeVpcs", subject: vpcId } as const;
  return await callAws(o, spec, () => ec2Client(o), async (c) => {
    const out = await c.send(
      new DescribeVpcsCommand({ Filters: [{ Name: "vpc-id", Values: [vpcId] }] }),
    );
    const v = out.Vpcs?.[0];
    if (!v?.CidrBlock) return undefined;
    // Blocks being associated or disassociated are not routable yet (or any more).
    const extra = (v.CidrBlockAssociationSet ?? [])
      .filter((a) => a.CidrBlockState?.State === "associated" && a.CidrBlock)
      .map((a) => a.CidrBlock as string);
    return {
      vpcId: v.VpcId ?? vpcId,
      cidr: v.CidrBlock,
      cidrs: [...new Set([v.CidrBlock, ...extra])],
      ...(v.DhcpOptionsId ? { dhcpOptionsId: v.DhcpOptionsId } : {}),
    };
  });
}

/** One route as EC2 reports it, its target reduced to the one id that is set. */
export interface RouteEntry {
  /** IPv4 destination. */
  destination?: string;
  destinationIpv6?: string;
  prefixListId?: string;
  /** `local`, `tgw-…`, `pcx-…`, `vgw-…`/`igw-…`, `nat-…`, `eni-…`, `i-…`, a Cloud WAN ARN… */
  target: string;
  /** `active` or `blackhole`. */
  state: string;
}

export interface RouteTableSummary {
  routeTableId: string;
  /** True when the subnet has no table of its own and uses the VPC's main table. */
  main: boolean;
  routes: RouteEntry[];
}

/**
 * The route table that governs a subnet: the one explicitly associated with it, else the VPC's
 * main table (a subnet without an association uses the main one; EC2 has no filter for that).
 */
export async function subnetRouteTable(
  o: AwsOptions,
  vpcId: string,
  subnetId: string,
): Promise<RouteTableSummary | undefined> {
  const own = await routeTables(o, [{ name: "association.subnet-id", values: [subnetId] }]);
  if (own[0]) return { ...own[0], main: false };
  const main = await routeTables(o, [
    { name: "vpc-id", values: [vpcId] },
    { name: "association.main", values: ["true"] },
  ]);
  return main[0] ? { ...main[0], main: true } : undefined;
}

async function routeTables(
  o: AwsOptions,
  filters: Ec2Filter[],
): Promise<Omit<RouteTableSummary, "main">[]> {
  const { DescribeRouteTablesCommand } = await import("@aws-sdk/client-ec2");
  const spec = { service: "ec2", action: "ec2:DescribeRouteTables" } as const;
  return await callAws(o, spec, () => ec2Client(o), async (c) => {
    const found: Omit<RouteTableSummary, "main">[] = [];
    let NextToken: string | undefined;
    do {
      const out = await c.send(
        new DescribeRouteTablesCommand({
          Filters: filters.map((f) => ({ Name: f.name, Values: f.values })),
          NextToken,
        }),
      );
      for (const t of out.RouteTables ?? []) {
        found.push({
          routeTableId: t.RouteTableId ?? "",
          routes: (t.Routes ?? []).map((r) => ({
            ...(r.DestinationCidrBlock ? { destination: r.DestinationCidrBlock } : {}),
            ...(r.DestinationIpv6CidrBlock ? { destinationIpv6: r.DestinationIpv6CidrBlock } : {}),
            ...(r.DestinationPrefixListId ? { prefixListId: r.DestinationPrefixListId } : {}),
            target: r.TransitGatewayId ?? r.VpcPeeringConnectionId ?? r.CoreNetworkArn ??
              r.NatGatewayId ?? r.NetworkInterfaceId ?? r.InstanceId ?? r.LocalGatewayId ??
              r.CarrierGatewayId ?? r.EgressOnlyInternetGatewayId ?? r.GatewayId ?? "unknown",
            state: r.State ?? "active",
          })),
        });
      }
      NextToken = out.NextToken;
    } while (NextToken);
    return found;
  });
}

/**
 * The `domain-name` values of a DHCP options set. EC2 returns the option as one value that may
 * hold several space-separated names (or, from some tools, several values): both are split.
 */
export async function dhcpDomainNames(o: AwsOptions, dhcpOptionsId: string): Promise<string[]> {
  const { DescribeDhcpOptionsCommand } = await import("@aws-sdk/client-ec2");
  const spec = {
    service: "ec2",
    action: "ec2:DescribeDhcpOptions",
    subject: dhcpOptionsId,
  } as const;
  return await callAws(o, spec, () => ec2Client(o), async (c) => {
    const out = await c.send(
      new DescribeDhcpOptionsCommand({
        Filters: [{ Name: "dhcp-options-id", Values: [dhcpOptionsId] }],
      }),
    );
    const config = out.DhcpOptions?.[0]?.DhcpConfigurations ?? [];
    return config.filter((k) => k.Key === "domain-name")
      .flatMap((k) => k.Values ?? [])
      .flatMap((v) => (v.Value ?? "").split(/\s+/))
      .filter((n) => n !== "");
  });
}
