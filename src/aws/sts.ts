/**
 * STS: who the credentials belong to (the check `eks connect` makes before anything else, so an
 * expired SSO session is reported as such and not as some later call failing) and the
 * credentials themselves, which `eks token` signs with.
 */
import { type AwsOptions, clientConfig } from "./config.ts";
import { callAws } from "./call.ts";
import { toUserError } from "./errors.ts";
import type { StaticCredentials } from "../eks/token.ts";

export interface CallerIdentity {
  account: string;
  arn: string;
  userId: string;
}

export async function getCallerIdentity(o: AwsOptions): Promise<CallerIdentity> {
  const { STSClient, GetCallerIdentityCommand } = await import("@aws-sdk/client-sts");
  const spec = { service: "sts", action: "sts:GetCallerIdentity" } as const;
  return await callAws(
    o,
    spec,
    () => Promise.resolve(new STSClient(clientConfig(o))),
    async (c) => {
      const out = await c.send(new GetCallerIdentityCommand({}));
      return { account: out.Account ?? "", arn: out.Arn ?? "", userId: out.UserId ?? "" };
    },
  );
}

/** The credentials the SDK would use for this profile (env, SSO, files, IMDS…). */
export async function resolveCredentials(o: AwsOptions): Promise<StaticCredentials> {
  const { fromNodeProviderChain } = await import("@aws-sdk/credential-providers");
  try {
    const c = await fromNodeProviderChain(o.profile ? { profile: o.profile } : {})();
    return {
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}),
    };
  } catch (e) {
    throw toUserError(e, { service: "sts", action: "resolving credentials", ...o });
  }
}
