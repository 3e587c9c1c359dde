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
  const { DescribeInstanceInformationCommand } = await import("@aws-sdk/client-ssm");
  const spec = {
    service: "ssm",
    action: "ssm:DescribeInstanceInformation",
    subject: ids.join(", "),
  } as const;
  return await callAws(o, spec, () => ssmClient(o), async (c) => {
    const found: InstanceInformation[] = [];
    let NextToken: string | undefined;
    do {
      const out = await c.send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: "InstanceIds", Values: ids }],
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
        });
      }
      NextToken = out.NextToken;
    } while (NextToken);
    return found;
  });
}
