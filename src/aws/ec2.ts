/**
 * EC2 lookups for target discovery and the VPC resolver. client-ec2 is the heaviest SDK package
 * (28 MB), so it is imported only when a target is given by name or tag, an instance must be
 * started, or the resolver of an instance's VPC is wanted.
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
  const cidr = await vpcCidr(o, instance.vpcId);
  return cidr === undefined ? undefined : vpcResolverAddress(cidr);
}

/** The primary IPv4 CIDR of a VPC (DescribeVpcs `CidrBlock`). */
async function vpcCidr(o: AwsOptions, vpcId: string): Promise<string | undefined> {
  const { DescribeVpcsCommand } = await import("@aws-sdk/client-ec2");
  const spec = { service: "ec2", action: "ec2:DescribeVpcs" } as const;
  return await callAws(o, spec, () => ec2Client(o), async (c) => {
    const out = await c.send(
      new DescribeVpcsCommand({ Filters: [{ Name: "vpc-id", Values: [vpcId] }] }),
    );
    return out.Vpcs?.[0]?.CidrBlock;
  });
}
