/**
 * `ssm-proxy list-instances`: the EC2 instances a target could be, with what Systems Manager
 * knows of each (EC2 DescribeInstances + SSM DescribeInstanceInformation), as an aligned table
 * or as JSON for scripts.
 *
 * The ssm-proxy-agent version is not knowable from the AWS APIs (it answers only inside a
 * session; `ssm-proxy doctor --target` asks it), so the AGENT column is "-" for now.
 */
import type { AwsOptions } from "../aws/config.ts";
import type { Ec2Filter } from "../aws/ec2.ts";
import type { InstanceInformation } from "../aws/ssm.ts";
import { ExitCode, UserError } from "../errors.ts";

export interface ListInstancesOptions extends AwsOptions {
  /** `Key=Value` tag filters, all of which must match. */
  tag?: string[];
  /** The Name tag (EC2 wildcards `*` and `?` allowed). */
  name?: string;
  json?: boolean;
}

export interface InstanceRow {
  instanceId: string;
  name: string | null;
  /** EC2 state: pending, running, stopping, stopped. */
  state: string;
  /** SSM PingStatus (Online, ConnectionLost, Inactive), or "unmanaged" when SSM lacks it. */
  ssm: string;
  /** SSM's platform name and version, e.g. "Amazon Linux 2023"; null when SSM lacks it. */
  platform: string | null;
  privateIp: string | null;
  vpcId: string | null;
  /** The SSM agent's version (amazon-ssm-agent). */
  ssmAgentVersion: string | null;
  /** ssm-proxy-agent's version: not knowable without a session, so always null for now. */
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
  const { describeInstances } = await import("../aws/ec2.ts");
  const { describeInstanceInformation } = await import("../aws/ssm.ts");
  const aws: AwsOptions = { profile: o.profile, region: o.region };
  const instances = await describeInstances(aws, filtersFor(o));
  const ids = instances.map((i) => i.instanceId);
  const infos = new Map<string, InstanceInformation>();
  // The InstanceIds filter takes at most 50 values.
  for (let n = 0; n < ids.length; n += 50) {
    for (const info of await describeInstanceInformation(aws, ids.slice(n, n + 50))) {
      infos.set(info.instanceId, info);
    }
  }
  const rows = instances.map((i): InstanceRow => {
    const info = infos.get(i.instanceId);
    return {
      instanceId: i.instanceId,
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
  return rows.sort((a, b) =>
    (a.name ?? "\uffff").localeCompare(b.name ?? "\uffff") ||
    a.instanceId.localeCompare(b.instanceId)
  );
}

const COLUMNS: [string, (r: InstanceRow) => string | null][] = [
  ["INSTANCE", (r) => r.instanceId],
  ["NAME", (r) => r.name],
  ["STATE", (r) => r.state],
  ["SSM", (r) => r.ssm],
  ["PLATFORM", (r) => r.platform],
  ["PRIVATE IP", (r) => r.privateIp],
  ["VPC", (r) => r.vpcId],
  ["AGENT", (r) => r.agentVersion],
];

/** An aligned table, one row per instance; missing values are "-". */
export function formatTable(rows: InstanceRow[]): string {
  const cells = [
    COLUMNS.map(([h]) => h),
    ...rows.map((r) => COLUMNS.map(([, f]) => (f(r) ?? "-").replace(/\s+/g, " ") || "-")),
  ];
  const widths = COLUMNS.map((_, c) => Math.max(...cells.map((row) => row[c].length)));
  return cells.map((row) => row.map((v, c) => v.padEnd(widths[c])).join("  ").trimEnd())
    .join("\n");
}

export async function runListInstances(o: ListInstancesOptions): Promise<void> {
  filtersFor(o); // usage errors before any AWS call
  const rows = await listInstances(o);
  if (o.json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  if (rows.length === 0) {
    const what = [
      ...(o.name !== undefined ? [`Name=${o.name}`] : []),
      ...(o.tag ?? []),
    ];
    console.error(
      `ssm-proxy: no instances${what.length ? ` match ${what.join(", ")}` : " in this region"}`,
    );
    return;
  }
  console.log(formatTable(rows));
}
