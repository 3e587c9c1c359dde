/**
 * The instances a target could be: EC2 instances with what Systems Manager knows of each (EC2
 * DescribeInstances + SSM DescribeInstanceInformation), and hybrid-activation managed instances
 * (`mi-…`: servers and VMs registered with SSM, unknown to EC2) from DescribeInstanceInformation
 * alone. For those, a tag filter is an SSM tag filter (exact values, no wildcards) and the name
 * matches the name they were registered with (wildcards allowed) or, given without wildcards,
 * their Name tag. Shared by `list-instances` and the target picker.
 */
import type { AwsOptions } from "./config.ts";
import type { Ec2Filter } from "./ec2.ts";
import type { InstanceInformation, ManagedInstance } from "./ssm.ts";
import { ExitCode, UserError } from "../errors.ts";

export interface ListInstancesOptions extends AwsOptions {
  /** `Key=Value` tag filters, all of which must match. */
  tag?: string[];
  /** The Name tag (EC2 wildcards `*` and `?` allowed). */
  name?: string;
  json?: boolean;
  /** Ask each online instance's ssm-proxy-agent for its version (one session each). */
  agents?: boolean;
  agentPort?: number;
}

export interface InstanceRow {
  instanceId: string;
  /** `managed`: a hybrid-activation managed instance (`mi-…`), in SSM only. */
  kind: "ec2" | "managed";
  /** EC2: the Name tag. Managed: the registration name (or the Name tag it matched by). */
  name: string | null;
  /** EC2 state: pending, running, stopping, stopped; "managed" for managed instances. */
  state: string;
  /** SSM PingStatus (Online, ConnectionLost, Inactive), or "unmanaged" when SSM lacks it. */
  ssm: string;
  /** SSM's platform name and version, e.g. "Amazon Linux 2023"; null when SSM lacks it. */
  platform: string | null;
  /** EC2: the private IP. Managed: the IPAddress the SSM agent reports. */
  privateIp: string | null;
  /** Always null for managed instances. */
  vpcId: string | null;
  /** The SSM agent's version (amazon-ssm-agent). */
  ssmAgentVersion: string | null;
  /**
   * ssm-proxy-agent's version as it introduced itself, with --agents: e.g. "0.1.0";
   * "none" when nothing listens on its port, "old" when it cannot speak our protocol, "?" when
   * it could not be asked; null without --agents or when the instance is not online.
   */
  agentVersion: string | null;
}

/** `Key=Value` → an EC2 tag filter. */
export function parseTagFilter(text: string): Ec2Filter {
  const eq = text.indexOf("=");
  if (eq <= 0) {
    throw new UserError(
      `--tag ${JSON.stringify(text)}: give Key=Value, e.g. --tag Purpose=bastion`,
      ExitCode.Usage,
    );
  }
  return { name: `tag:${text.slice(0, eq)}`, values: [text.slice(eq + 1)] };
}

/** The `--tag` filters as key and value, for the SSM tag filters of managed instances. */
function tagPairs(o: ListInstancesOptions): { key: string; value: string }[] {
  return (o.tag ?? []).map(parseTagFilter).map((f) => ({
    key: f.name.slice(4),
    value: f.values[0],
  }));
}

export function filtersFor(o: ListInstancesOptions): Ec2Filter[] {
  const filters = (o.tag ?? []).map(parseTagFilter);
  if (o.name !== undefined) {
    if (o.name === "") throw new UserError("--name is empty", ExitCode.Usage);
    filters.push({ name: "tag:Name", values: [o.name] });
  }
  // Terminated instances linger for an hour and can never be targets.
  filters.push({
    name: "instance-state-name",
    values: ["pending", "running", "stopping", "stopped"],
  });
  return filters;
}

export async function listInstances(o: ListInstancesOptions): Promise<InstanceRow[]> {
  const aws: AwsOptions = { profile: o.profile, region: o.region };
  // EC2 (then SSM for its instances) and SSM's managed instances, side by side; settled both so
  // that a failure of one leaves no call of the other running.
  const [ec2, managed] = await Promise.allSettled([
    ec2Rows(aws, o),
    managedRows(aws, o),
  ]);
  if (ec2.status === "rejected") throw ec2.reason;
  if (managed.status === "rejected") throw managed.reason;
  return [...ec2.value, ...managed.value].sort((a, b) =>
    (a.name ?? "\uffff").localeCompare(b.name ?? "\uffff") ||
    a.instanceId.localeCompare(b.instanceId)
  );
}

async function ec2Rows(aws: AwsOptions, o: ListInstancesOptions): Promise<InstanceRow[]> {
  const { describeInstances } = await import("./ec2.ts");
  const { describeInstanceInformation } = await import("./ssm.ts");
  const instances = await describeInstances(aws, filtersFor(o));
  const ids = instances.map((i) => i.instanceId);
  const infos = new Map<string, InstanceInformation>();
  // The InstanceIds filter takes at most 50 values.
  for (let n = 0; n < ids.length; n += 50) {
    for (const info of await describeInstanceInformation(aws, ids.slice(n, n + 50))) {
      infos.set(info.instanceId, info);
    }
  }
  return instances.map((i): InstanceRow => {
    const info = infos.get(i.instanceId);
    return {
      instanceId: i.instanceId,
      kind: "ec2",
      name: i.name ?? null,
      state: i.state,
      ssm: info?.pingStatus ?? "unmanaged",
      platform: info ? (info.platformName ?? info.platformType ?? null) : null,
      privateIp: i.privateIp ?? null,
      vpcId: i.vpcId ?? null,
      ssmAgentVersion: info?.agentVersion ?? null,
      agentVersion: null,
    };
  });
}

async function managedRows(aws: AwsOptions, o: ListInstancesOptions): Promise<InstanceRow[]> {
  const { findManagedInstances } = await import("./ssm.ts");
  const found = await findManagedInstances(aws, {
    tags: tagPairs(o),
    ...(o.name !== undefined ? { name: o.name } : {}),
  });
  return found.map((m: ManagedInstance): InstanceRow => ({
    instanceId: m.instanceId,
    kind: "managed",
    name: m.name ?? m.nameTag ?? null,
    state: "managed",
    ssm: m.pingStatus,
    platform: m.platformName ?? m.platformType ?? null,
    privateIp: m.ipAddress ?? null,
    vpcId: null,
    ssmAgentVersion: m.agentVersion ?? null,
    agentVersion: null,
  }));
}
