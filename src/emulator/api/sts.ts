/**
 * STS in the AWS Query protocol: GetCallerIdentity, by POST form or by (presigned) GET, the
 * latter being what an EKS token carries and what a client shows ssm-proxy-agent to prove who
 * it is. With `identities:` in the fixtures the caller is whoever signed the request, checked
 * for real (sigv4_verify.ts); without, every caller is the fixtures' callerArn, unchecked.
 */

import type { FixtureIdentity } from "../fixtures.ts";
import { el, type QueryParams, xmlResponse } from "./query.ts";
import { verifySigV4, type WireRequest } from "./sigv4_verify.ts";
import { type ApiContext, deniedMessage, isDenied, requestId } from "./world.ts";

export const STS_VERSION = "2011-06-15";
const NS = `https://sts.amazonaws.com/doc/${STS_VERSION}/`;

type Caller = Pick<FixtureIdentity, "arn" | "userId" | "account">;

export function stsError(code: string, message: string, status = 400): Response {
  return xmlResponse(
    "ErrorResponse",
    NS,
    status,
    el("Error", el("Type", "Sender"), el("Code", code), el("Message", message)),
    el("RequestId", requestId()),
  );
}

export async function handleSts(
  ctx: ApiContext,
  action: string,
  _p: QueryParams,
  wire: WireRequest,
): Promise<Response> {
  const who = await caller(ctx, wire);
  if (who instanceof Response) return who;
  if (action !== "GetCallerIdentity") {
    return stsError(
      "InvalidAction",
      `Could not find operation ${action} for version ${STS_VERSION}`,
    );
  }
  if (isDenied(ctx.fixtures, action)) {
    const as = { ...ctx, fixtures: { ...ctx.fixtures, callerArn: who.arn } };
    return stsError("AccessDenied", deniedMessage(as, "sts:GetCallerIdentity"), 403);
  }
  return xmlResponse(
    "GetCallerIdentityResponse",
    NS,
    200,
    el(
      "GetCallerIdentityResult",
      el("Arn", who.arn),
      el("UserId", who.userId),
      el("Account", who.account),
    ),
    el("ResponseMetadata", el("RequestId", requestId())),
  );
}

/** Who signed the request, or STS's error saying why it is not accepted. */
async function caller(ctx: ApiContext, wire: WireRequest): Promise<Caller | Response> {
  const f = ctx.fixtures;
  if (f.identities.length === 0) return { arn: f.callerArn, userId: f.userId, account: f.account };
  const byKey = (k: string) => f.identities.find((i) => i.accessKeyId === k);
  const v = await verifySigV4(wire, { service: "sts", now: ctx.now(), credentialsFor: byKey });
  if (!v.ok) return stsError(v.failure.code, v.failure.message, v.failure.status);
  return byKey(v.accessKeyId)!;
}
