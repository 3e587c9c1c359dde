/**
 * Turns SDK failures into one-line UserErrors that say what to do. Anything unrecognised that is
 * not an AWS service error passes through unchanged: it is a bug and deserves its stack trace.
 */

import { ExitCode, UserError } from "../errors.ts";
import { type AwsService, endpointFor } from "./config.ts";

export interface CallContext {
  service: AwsService;
  /** The IAM action, e.g. `ssm:StartSession`. */
  action: string;
  profile?: string;
  region?: string;
  /** The instance or session the call was about, for messages. */
  subject?: string;
}

/**
 * A refused call, as a UserError that also carries the IAM action, so that callers for whom the
 * call is optional (discovery) can skip it and name the permission instead of failing.
 */
export class AccessDeniedError extends UserError {
  override name = "AccessDeniedError";
  constructor(message: string, readonly action: string) {
    super(message, ExitCode.Auth);
  }
}

const DENIED = new Set([
  "AccessDeniedException",
  "AccessDenied",
  "UnauthorizedOperation",
  "UnauthorizedException",
]);

/** Service errors that mean the credentials themselves are bad or stale. */
const BAD_CREDENTIALS = new Set([
  "ExpiredTokenException",
  "ExpiredToken",
  "RequestExpired",
  "UnrecognizedClientException",
  "InvalidClientTokenId",
  "AuthFailure",
  "InvalidSignatureException",
  "SignatureDoesNotMatch",
  "MissingAuthenticationToken",
  "MissingAuthenticationTokenException",
]);

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
]);

interface SdkErrorShape {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: unknown;
}

export function toUserError(err: unknown, ctx: CallContext): unknown {
  if (err instanceof UserError || !(err instanceof Error)) return err;
  const e = err as Error & SdkErrorShape;
  const name = e.name ?? "";
  const msg = (e.message ?? "").split("\n")[0];

  if (DENIED.has(name)) return accessDenied(msg, ctx);
  if (
    name === "CredentialsProviderError" || name === "TokenProviderError" ||
    BAD_CREDENTIALS.has(name)
  ) {
    return credentials(name, msg, ctx);
  }
  if (name === "TargetNotConnected") {
    return new UserError(
      `${
        ctx.subject ?? "the target"
      } is not connected to Systems Manager (${ctx.action} refused): ` +
        "check that the SSM agent runs and the instance is online",
      ExitCode.Target,
    );
  }
  if (name === "InvalidInstanceID.NotFound" || name === "InvalidInstanceId") {
    const which = ctx.subject ? `instance ${ctx.subject}` : "the instance";
    return new UserError(
      `${which} does not exist in region ${ctx.region ?? "?"}: ${msg}`,
      ExitCode.Target,
    );
  }
  if (msg === "Region is missing") {
    return new UserError("no AWS region given: pass --region or set AWS_REGION");
  }
  if ((e.code && NETWORK_CODES.has(e.code)) || name === "TimeoutError") {
    return new UserError(
      `could not reach the ${serviceLabel(ctx.service)} endpoint ${
        endpointFor(ctx.service, ctx.region)
      } for ${ctx.action}: ${msg}`,
    );
  }
  if (e.$metadata !== undefined) {
    // Any other AWS service error (throttling, validation…) is still the user's to act on.
    return new UserError(`${ctx.action} failed: ${name}: ${msg}`);
  }
  return err;
}

function serviceLabel(service: AwsService): string {
  return service === "route53" ? "Route 53" : service.toUpperCase();
}

function accessDenied(msg: string, ctx: CallContext): UserError {
  // AWS names the action it refused; prefer that over the one we think we called.
  const action = /not authorized to perform:? ([\w-]+:\w+)/.exec(msg)?.[1] ?? ctx.action;
  const resource = / on resource:? (\S+)/.exec(msg)?.[1];
  const who = /User: (\S+)/.exec(msg)?.[1];
  return new AccessDeniedError(
    `access denied: ${who ?? "your AWS identity"} may not call ${action}` +
      `${resource ? ` on ${resource}` : ""}; the IAM policy needs to allow "${action}"` +
      `${ctx.profile ? ` (profile ${ctx.profile})` : ""}`,
    action,
  );
}

function credentials(name: string, msg: string, ctx: CallContext): UserError {
  const stale = /expired|refresh/i.test(msg) || name.startsWith("Expired") ||
    name === "RequestExpired";
  const what = stale ? "AWS credentials have expired" : "no valid AWS credentials were found";
  const fix = ctx.profile
    ? `run "aws sso login --profile ${ctx.profile}" or fix the credentials of profile ${ctx.profile}`
    : `run "aws sso login --profile <profile>" and pass --profile, or set AWS_PROFILE or ` +
      "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY";
  return new UserError(`${what} (${ctx.action}: ${msg}): ${fix}`, ExitCode.Auth);
}
