/** The bastion of a cluster: the one running instance carrying the bastion tag in its VPC. */
import type { AwsOptions } from "../aws/config.ts";
import type { InstanceSummary } from "../aws/ec2.ts";
import { ExitCode, UserError } from "../errors.ts";

export const DEFAULT_BASTION_TAG = "Purpose=bastion";

export function parseTag(tag: string): { key: string; value: string } {
  const i = tag.indexOf("=");
  if (i <= 0) {
    throw new UserError(
      `bastion tag "${tag}" is not Key=Value (e.g. ${DEFAULT_BASTION_TAG})`,
      ExitCode.Usage,
    );
  }
  return { key: tag.slice(0, i), value: tag.slice(i + 1) };
}

/** Exactly one, or an error that lists what was found so the user can tag or untag. */
export function pickBastion(
  found: InstanceSummary[],
  vpcId: string,
  tag: string,
  cluster: string,
): InstanceSummary {
  if (found.length === 1) return found[0];
  if (found.length === 0) {
    throw new UserError(
      `no running instance tagged ${tag} in ${vpcId}, the VPC of cluster ${cluster}: ` +
        `tag one (the SSM agent must run on it) or pass --bastion-tag`,
      ExitCode.Target,
    );
  }
  const list = found.map((i) => `${i.instanceId}${i.name ? ` (${i.name})` : ""}`).join(", ");
  throw new UserError(
    `${found.length} running instances tagged ${tag} in ${vpcId} (${list}): ` +
      `keep the tag on one, or pass --target`,
    ExitCode.Target,
  );
}

export async function findBastion(
  o: AwsOptions,
  vpcId: string,
  tag: string,
  cluster: string,
): Promise<InstanceSummary> {
  const { describeInstances } = await import("../aws/ec2.ts");
  const { key, value } = parseTag(tag);
  const found = await describeInstances(o, [
    { name: "vpc-id", values: [vpcId] },
    { name: `tag:${key}`, values: [value] },
    { name: "instance-state-name", values: ["running"] },
  ]);
  return pickBastion(found, vpcId, tag, cluster);
}
