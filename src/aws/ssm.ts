/**
 * The Systems Manager calls the product makes. The SDK is imported on first use only.
 */

import { type AwsOptions, clientConfig } from "./config.ts";
import { callAws } from "./call.ts";

export interface StartSessionInput {
  target: string;
  documentName: string;
  /** Document parameters; Session Manager wants every value as a list of strings. */
  parameters: Record<string, string[]>;
  reason?: string;
}

export interface SessionGrant {
  sessionId: string;
  streamUrl: string;
  tokenValue: string;
}

export interface InstanceInformation {
  instanceId: string;
  pingStatus: string;
  agentVersion?: string;
  platformType?: string;
  platformName?: string;
  ipAddress?: string;
  computerName?: string;
  lastPing?: Date;
  /** `EC2Instance` or `ManagedInstance` (a hybrid-activation `mi-…` node, not in EC2). */
  resourceType?: string;
  /**
   * A managed instance's registration name (CreateActivation's DefaultInstanceName), which SSM
   * reports as `Name`. Not the Name tag; EC2 instances have none.
   */
  name?: string;
}

/** A DescribeInstanceInformation filter (`Filters`): `InstanceIds`, `ResourceType`, `tag:K`… */
export interface InfoFilter {
  key: string;
  values: string[];
}

async function ssmClient(o: AwsOptions) {
  const { SSMClient } = await import("@aws-sdk/client-ssm");
  return new SSMClient(clientConfig(o));
}

export async function startSession(o: AwsOptions, input: StartSessionInput): Promise<SessionGrant> {
  const { StartSessionCommand } = await import("@aws-sdk/client-ssm");
  const spec = { service: "ssm", action: "ssm:StartSession", subject: input.target } as const;
  return await callAws(o, spec, () => ssmClient(o), async (c) => {
    const out = await c.send(
      new StartSessionCommand({
        Target: input.target,
        DocumentName: input.documentName,
        Parameters: input.parameters,
        ...(input.reason ? { Reason: input.reason } : {}),
      }),
    );
    return {
      sessionId: out.SessionId ?? "",
      streamUrl: out.StreamUrl ?? "",
      tokenValue: out.TokenValue ?? "",
    };
  });
}

/** ResumeSession and TerminateSession for a data-channel session to heal and end itself. */
export function sessionApi(o: AwsOptions): {
  resume(sessionId: string): Promise<{ tokenValue: string }>;
  terminate(sessionId: string): Promise<void>;
} {
  return {
    resume: (id) => resumeSession(o, id),
    terminate: (id) => terminateSession(o, id),
  };
}

/** An empty `tokenValue` means the session is gone and cannot be resumed. */
export async function resumeSession(
  o: AwsOptions,
  sessionId: string,
): Promise<{ streamUrl: string; tokenValue: string }> {
  const { ResumeSessionCommand } = await import("@aws-sdk/client-ssm");
  const spec = { service: "ssm", action: "ssm:ResumeSession", subject: sessionId } as const;
  return await callAws(o, spec, () => ssmClient(o), async (c) => {
    const out = await c.send(new ResumeSessionCommand({ SessionId: sessionId }));
    return { streamUrl: out.StreamUrl ?? "", tokenValue: out.TokenValue ?? "" };
  });
}

export async function terminateSession(o: AwsOptions, sessionId: string): Promise<void> {
  const { TerminateSessionCommand } = await import("@aws-sdk/client-ssm");
  const spec = { service: "ssm", action: "ssm:TerminateSession", subject: sessionId } as const;
  await callAws(o, spec, () => ssmClient(o), async (c) => {
    await c.send(new TerminateSessionCommand({ SessionId: sessionId }));
  });
}

/** Instances SSM knows among `ids`; an id missing from the result is not managed by SSM. */
export async function describeInstanceInformation(
  o: AwsOptions,
  ids: string[],
): Promise<InstanceInformation[]> {
  if (ids.length === 0) return [];
  return await describeInstanceInformationWhere(o, [{ key: "InstanceIds", values: ids }], ids);
}

/** Every instance SSM knows that matches all `filters` (paginated through). */
export async function describeInstanceInformationWhere(
  o: AwsOptions,
  filters: InfoFilter[],
  subjectIds?: string[],
): Promise<InstanceInformation[]> {
  const { DescribeInstanceInformationCommand } = await import("@aws-sdk/client-ssm");
  const spec = {
    service: "ssm",
    action: "ssm:DescribeInstanceInformation",
    ...(subjectIds ? { subject: subjectIds.join(", ") } : {}),
  } as const;
  return await callAws(o, spec, () => ssmClient(o), async (c) => {
    const found: InstanceInformation[] = [];
    let NextToken: string | undefined;
    do {
      const out = await c.send(
        new DescribeInstanceInformationCommand({
          Filters: filters.map((f) => ({ Key: f.key, Values: f.values })),
          MaxResults: 50,
          NextToken,
        }),
      );
      for (const i of out.InstanceInformationList ?? []) {
        found.push({
          instanceId: i.InstanceId ?? "",
          pingStatus: i.PingStatus ?? "Unknown",
          agentVersion: i.AgentVersion,
          platformType: i.PlatformType,
          platformName: i.PlatformName,
          ipAddress: i.IPAddress,
          computerName: i.ComputerName,
          lastPing: i.LastPingDateTime,
          resourceType: i.ResourceType,
          ...(i.Name ? { name: i.Name } : {}),
        });
      }
      NextToken = out.NextToken;
    } while (NextToken);
    return found;
  });
}

export interface ManagedQuery {
  /** Tags that must all match, exactly (SSM tag filters take no wildcards). */
  tags?: { key: string; value: string }[];
  /**
   * The name: matches the registration name (`*` and `?` wildcards) or, when it has no
   * wildcard, the Name tag exactly.
   */
  name?: string;
}

/** A managed instance and, when it matched through the Name tag, that tag. */
export interface ManagedInstance extends InstanceInformation {
  nameTag?: string;
}

const WILDCARD = /[*?]/;

/** `*` and `?` wildcards over the whole value, as EC2 filter values have them. */
export function globMatch(pattern: string, value: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[\\s\\S]*")
    .replace(/\?/g, "[\\s\\S]");
  return new RegExp(`^${re}$`).test(value);
}

/**
 * Hybrid-activation managed instances (`mi-…`: servers and VMs registered with SSM, unknown to
 * EC2) matching every tag and the name. Tags are filtered by SSM (`tag:K` filters), the
 * registration name here; the Name tag, which only ListTagsForResource (one call per instance)
 * would show, is matched by a second filtered call. At most two paginated calls.
 */
export async function findManagedInstances(
  o: AwsOptions,
  q: ManagedQuery = {},
): Promise<ManagedInstance[]> {
  const tags = q.tags ?? [];
  // SSM filter values must not be empty, so no managed instance can match an empty value.
  if (tags.some((t) => t.value === "")) return [];
  const base: InfoFilter[] = [
    { key: "ResourceType", values: ["ManagedInstance"] },
    ...tags.map((t) => ({ key: `tag:${t.key}`, values: [t.value] })),
  ];
  const name = q.name;
  if (name === undefined) return await describeInstanceInformationWhere(o, base);
  const all = await describeInstanceInformationWhere(o, base);
  const found = new Map<string, ManagedInstance>();
  for (const i of all) {
    if (i.name !== undefined && globMatch(name, i.name)) found.set(i.instanceId, i);
  }
  if (!WILDCARD.test(name)) {
    const nameTags = tags.filter((t) => t.key === "Name");
    // A --tag Name=… already narrows by the Name tag: it must be this very name.
    if (nameTags.every((t) => t.value === name)) {
      const byTag = nameTags.length > 0
        ? all
        : await describeInstanceInformationWhere(o, [...base, {
          key: "tag:Name",
          values: [name],
        }]);
      for (const i of byTag) {
        if (!found.has(i.instanceId)) found.set(i.instanceId, { ...i, nameTag: name });
      }
    }
  }
  return [...found.values()];
}
