/**
 * How SDK clients are configured: profile, region, endpoint. Kept free of SDK imports so that
 * loading it costs nothing; the SDK itself is imported lazily by each service module.
 */

import { pinnedAgents } from "../net/pinned_names.ts";
import { UserError } from "../errors.ts";

export interface AwsOptions {
  /** A profile in ~/.aws/config; absent = AWS_PROFILE or the default chain. */
  profile?: string;
  /** From `--region`; absent = AWS_REGION, AWS_DEFAULT_REGION, then the profile's region. */
  region?: string;
}

export type AwsService = "ssm" | "ec2" | "sts" | "eks" | "route53";

type Env = Record<string, string | undefined>;

function processEnv(): Env {
  return Deno.env.toObject();
}

/**
 * The region named by the flag or the environment. The SDK reads AWS_REGION and the profile
 * itself, but not AWS_DEFAULT_REGION (a CLI convention people rely on), hence this step.
 */
export function explicitRegion(o: AwsOptions, env: Env = processEnv()): string | undefined {
  return o.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined;
}

/**
 * The constructor config shared by every client. `endpoint` is deliberately never set: the SDK
 * honours AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE> and the profile's endpoint_url itself,
 * and setting it here would override all three.
 */
export function clientConfig(o: AwsOptions, env: Env = processEnv()): {
  region?: string;
  profile?: string;
  // deno-lint-ignore no-explicit-any
  requestHandler?: any;
} {
  const region = explicitRegion(o, env);
  // A full tunnel's process resolves its own endpoints from what it pinned (net/pinned_names.ts).
  const agents = pinnedAgents();
  return {
    ...(region ? { region } : {}),
    ...(o.profile ? { profile: o.profile } : {}),
    ...(agents ? { requestHandler: agents } : {}),
  };
}

export function missingRegion(o: AwsOptions): UserError {
  const where = o.profile ? ` (profile ${o.profile} has no region either)` : "";
  return new UserError(`no AWS region given${where}: pass --region or set AWS_REGION`);
}

/** The endpoint a service call went to, for messages; mirrors the SDK's precedence. */
export function endpointFor(
  service: AwsService,
  region: string | undefined,
  env: Env = processEnv(),
): string {
  // Route 53 is global (one endpoint, signed for us-east-1), and the SDK's variable for it is
  // named after its service id "Route 53".
  if (service === "route53") {
    return env.AWS_ENDPOINT_URL_ROUTE_53 ?? env.AWS_ENDPOINT_URL ?? "https://route53.amazonaws.com";
  }
  return env[`AWS_ENDPOINT_URL_${service.toUpperCase()}`] ?? env.AWS_ENDPOINT_URL ??
    `https://${service}.${region ?? "<region>"}.amazonaws.com`;
}
