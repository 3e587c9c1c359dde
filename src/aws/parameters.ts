/**
 * SSM Parameter Store: where a team shares tunnel and cluster entries (`config publish|pull`,
 * `start NAME` without a local entry). The SDK is imported on first use only.
 */

import { type AwsOptions, clientConfig } from "./config.ts";
import { callAws } from "./call.ts";
import type { Parameter as SdkParameter } from "@aws-sdk/client-ssm";

export interface Parameter {
  name: string;
  value: string;
  /** `String`, `StringList` or `SecureString`. */
  type: string;
  version?: number;
  lastModified?: Date;
}

async function ssmClient(o: AwsOptions) {
  const { SSMClient } = await import("@aws-sdk/client-ssm");
  return new SSMClient(clientConfig(o));
}

function toParameter(p: SdkParameter | undefined): Parameter {
  return {
    name: p?.Name ?? "",
    value: p?.Value ?? "",
    type: p?.Type ?? "String",
    ...(p?.Version !== undefined ? { version: p.Version } : {}),
    ...(p?.LastModifiedDate ? { lastModified: p.LastModifiedDate } : {}),
  };
}

function notFound(e: unknown): boolean {
  return (e as Error)?.name === "ParameterNotFound";
}

/** The parameter, or undefined when there is none of that name. */
export async function getParameter(o: AwsOptions, name: string): Promise<Parameter | undefined> {
  const { GetParameterCommand } = await import("@aws-sdk/client-ssm");
  const spec = { service: "ssm", action: "ssm:GetParameter", subject: name } as const;
  return await callAws(o, spec, () => ssmClient(o), async (c) => {
    try {
      const out = await c.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
      return toParameter(out.Parameter);
    } catch (e) {
      if (notFound(e)) return undefined;
      throw e;
    }
  });
}

/** Every parameter under `path` (recursively), all pages. */
export async function getParametersByPath(o: AwsOptions, path: string): Promise<Parameter[]> {
  const { GetParametersByPathCommand } = await import("@aws-sdk/client-ssm");
  const spec = { service: "ssm", action: "ssm:GetParametersByPath", subject: path } as const;
  return await callAws(o, spec, () => ssmClient(o), async (c) => {
    const out: Parameter[] = [];
    let token: string | undefined;
    do {
      const page = await c.send(
        new GetParametersByPathCommand({
          Path: path,
          Recursive: true,
          WithDecryption: true,
          ...(token ? { NextToken: token } : {}),
        }),
      );
      out.push(...(page.Parameters ?? []).map(toParameter));
      token = page.NextToken || undefined;
    } while (token);
    return out;
  });
}

/**
 * Writes a String parameter. Without `overwrite` an existing parameter makes this fail
 * (ParameterAlreadyExists), so two people publishing at once cannot silently clobber each other.
 */
export async function putParameter(
  o: AwsOptions,
  input: { name: string; value: string; overwrite?: boolean; description?: string },
): Promise<{ version: number }> {
  const { PutParameterCommand } = await import("@aws-sdk/client-ssm");
  const spec = { service: "ssm", action: "ssm:PutParameter", subject: input.name } as const;
  return await callAws(o, spec, () => ssmClient(o), async (c) => {
    const out = await c.send(
      new PutParameterCommand({
        Name: input.name,
        Value: input.value,
        Type: "String",
        Overwrite: input.overwrite ?? false,
        ...(input.description ? { Description: input.description } : {}),
      }),
    );
    return { version: out.Version ?? 0 };
  });
}

/** true if it was deleted, false if there was no such parameter. */
export async function deleteParameter(o: AwsOptions, name: string): Promise<boolean> {
  const { DeleteParameterCommand } = await import("@aws-sdk/client-ssm");
  const spec = { service: "ssm", action: "ssm:DeleteParameter", subject: name } as const;
  return await callAws(o, spec, () => ssmClient(o), async (c) => {
    try {
      await c.send(new DeleteParameterCommand({ Name: name }));
      return true;
    } catch (e) {
      if (notFound(e)) return false;
      throw e;
    }
  });
}
