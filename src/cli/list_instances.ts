/**
 * `ssm-proxy list-instances`: the instances a target could be, as an aligned table or as JSON
 * for scripts. EC2 instances with what Systems Manager knows of each (EC2 DescribeInstances +
 * SSM DescribeInstanceInformation), and hybrid-activation managed instances (`mi-…`: servers and
 * VMs registered with SSM, unknown to EC2) from DescribeInstanceInformation alone. For those,
 * `--tag` is an SSM tag filter (exact values, no wildcards) and `--name` matches the name they
 * were registered with (wildcards allowed) or, given without wildcards, their Name tag.
 *
 * The ssm-proxy-agent version is not knowable from the AWS APIs: it answers only inside a
 * session. `--agents` asks each online instance (one short Port session each, a few at a time);
 * without it the AGENT column is "-".
 */
import type { AwsOptions } from "../aws/config.ts";
import {
  filtersFor,
  type InstanceRow,
  listInstances,
  type ListInstancesOptions,
} from "../aws/instances.ts";

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
  if (o.agents) {
    await askAgents({ profile: o.profile, region: o.region }, rows, o.agentPort ?? 7797);
  }
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

const ASK_AT_ONCE = 4;

/** Fills in agentVersion for the online instances by saying HELLO to each agent. */
export async function askAgents(aws: AwsOptions, rows: InstanceRow[], port: number): Promise<void> {
  const { helloAgent } = await import("../start/agent_hello.ts");
  const { AgentUnavailable } = await import("../tunnel/stripe.ts");
  const online = rows.filter((r) =>
    r.ssm === "Online" && (r.kind === "managed" || r.state === "running") &&
    !r.platform?.toLowerCase().includes("windows")
  );
  let next = 0;
  const worker = async () => {
    while (next < online.length) {
      const r = online[next++];
      try {
        r.agentVersion = (await helloAgent(aws, r.instanceId, port)).agent
          .replace(/^ssm-proxy-agent[ /]/, "");
      } catch (e) {
        r.agentVersion = e instanceof AgentUnavailable
          ? (e.reason === "missing" ? "none" : "old")
          : "?";
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(ASK_AT_ONCE, online.length) }, worker));
}
