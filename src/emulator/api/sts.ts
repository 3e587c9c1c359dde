/**
 * STS in the AWS Query protocol: GetCallerIdentity, by POST form or by (presigned) GET, the
 * latter being what an EKS token carries.
 */

import { el, type QueryParams, xmlResponse } from "./query.ts";
import { type ApiContext, deniedMessage, isDenied, requestId } from "./world.ts";

export const STS_VERSION = "2011-06-15";
const NS = `https://sts.amazonaws.com/doc/${STS_VERSION}/`;

export function stsError(code: string, message: string, status = 400): Response {
  return xmlResponse(
    "ErrorResponse",
    NS,
    status,
    el("Error", el("Type", "Sender"), el("Code", code), el("Message", message)),
    el("RequestId", requestId()),
  );
}

export function handleSts(ctx: ApiContext, action: string, _p: QueryParams): Response {
  if (action !== "GetCallerIdentity") {
    return stsError(
      "InvalidAction",
      `Could not find operation ${action} for version ${STS_VERSION}`,
    );
  }
  if (isDenied(ctx.fixtures, action)) {
    return stsError("AccessDenied", deniedMessage(ctx, "sts:GetCallerIdentity"), 403);
  }
  const f = ctx.fixtures;
  return xmlResponse(
    "GetCallerIdentityResponse",
    NS,
    200,
    el(
      "GetCallerIdentityResult",
      el("Arn", f.callerArn),
      el("UserId", f.userId),
      el("Account", f.account),
    ),
    el("ResponseMetadata", el("RequestId", requestId())),
  );
}
