/**
 * Systems Manager in AWS JSON 1.1: the session calls and DescribeInstanceInformation, plus the
 * Parameter Store operations of ssm_parameters.ts.
 */

import type { FixtureInstance } from "../fixtures.ts";
import { PARAMETER_OPS } from "./ssm_parameters.ts";
import { type Body, JSON_TYPE, ssmError, SsmFault, str } from "./ssm_shared.ts";
import { type ApiContext, deniedMessage, findInstance, instanceArn, isDenied } from "./world.ts";

export { ssmError } from "./ssm_shared.ts";

export const SESSION_DOCUMENTS: ReadonlySet<string> = new Set([
  "SSM-SessionManagerRunShell",
  "AWS-StartPortForwardingSession",
  "AWS-StartPortForwardingSessionToRemoteHost",
  "AWS-StartSSHSession",
  "AWS-StartInteractiveCommand",
  "AWS-StartNonInteractiveCommand",
]);

type Op = (ctx: ApiContext, body: Body) => unknown;

const OPS: Record<string, Op> = {
  StartSession: startSession,
  ResumeSession: resumeSession,
  TerminateSession: terminateSession,
  DescribeInstanceInformation: describeInstanceInformation,
  ...PARAMETER_OPS,
};

export async function handleSsm(ctx: ApiContext, req: Request, op: string): Promise<Response> {
  const handler = OPS[op];
  if (!handler) return ssmError("UnknownOperationException", `Unknown operation ${op}`);
  let body: Body;
  try {
    const text = await req.text();
    body = text.trim() === "" ? {} : JSON.parse(text);
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw new Error();
  } catch {
    return ssmError("SerializationException", "Request body is not a JSON object");
  }
  try {
    const out = handler(ctx, body);
    return new Response(JSON.stringify(out), {
      headers: { "content-type": JSON_TYPE, "x-amzn-requestid": crypto.randomUUID() },
    });
  } catch (e) {
    if (e instanceof SsmFault) return ssmError(e.type, e.message, e.status);
    throw e;
  }
}

function checkDenied(ctx: ApiContext, op: string, target?: string): void {
  if (!isDenied(ctx.fixtures, op, target ? [target] : [])) return;
  const resource = target ? instanceArn(ctx, target) : undefined;
  throw new SsmFault("AccessDeniedException", deniedMessage(ctx, `ssm:${op}`, resource));
}

function parameters(body: Body): Record<string, string[]> {
  const p = body.Parameters;
  if (p === undefined || p === null) return {};
  if (typeof p !== "object" || Array.isArray(p)) {
    throw new SsmFault("SerializationException", "Parameters must be a map");
  }
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(p)) {
    if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
      throw new SsmFault("SerializationException", `Parameters.${k} must be a list of strings`);
    }
    out[k] = v;
  }
  return out;
}

function startSession(ctx: ApiContext, body: Body) {
  const target = str(body, "Target", true);
  const documentName = str(body, "DocumentName") ?? "SSM-SessionManagerRunShell";
  str(body, "Reason");
  const params = parameters(body);
  checkDenied(ctx, "StartSession", target);
  if (!SESSION_DOCUMENTS.has(documentName)) {
    throw new SsmFault("InvalidDocument", `Document with name ${documentName} does not exist.`);
  }
  const inst = findInstance(ctx.fixtures, target);
  if (!inst || inst.pingStatus !== "Online") {
    throw new SsmFault("TargetNotConnected", `${target} is not connected.`);
  }
  return ctx.registry.start(target, documentName, params);
}

function resumeSession(ctx: ApiContext, body: Body) {
  const sessionId = str(body, "SessionId", true);
  const s = ctx.registry.get(sessionId);
  if (!s) throw new SsmFault("DoesNotExistException", `Session ${sessionId} does not exist.`);
  checkDenied(ctx, "ResumeSession", s.target);
  return ctx.registry.resume(sessionId);
}

function terminateSession(ctx: ApiContext, body: Body) {
  const sessionId = str(body, "SessionId", true);
  const s = ctx.registry.get(sessionId);
  if (!s) throw new SsmFault("DoesNotExistException", `Session ${sessionId} does not exist.`);
  checkDenied(ctx, "TerminateSession", s.target);
  ctx.registry.terminate(sessionId, "Session terminated by TerminateSession.");
  return { SessionId: sessionId };
}

type Pred = (i: FixtureInstance) => boolean;

/** One filter key → predicate; `unknown` names the SSM error for a key it does not know. */
function filterPred(key: string, values: string[], unknown: string): Pred {
  if (values.length === 0) throw new SsmFault(unknown, `Filter ${key} needs at least one value`);
  // As the real API: values are non-empty strings (Length Constraints: Minimum length of 1).
  if (values.some((v) => typeof v !== "string" || v === "")) {
    throw new SsmFault(
      "ValidationException",
      `1 validation error detected: Value '${JSON.stringify(values)}' at 'filters.member.values' ` +
        "failed to satisfy constraint: Member must have length greater than or equal to 1",
    );
  }
  const has = (v: string) => values.includes(v);
  switch (key) {
    case "InstanceIds":
      return (i) => has(i.id);
    case "PingStatus":
      return (i) => has(i.pingStatus);
    case "PlatformTypes":
      return (i) => has(i.platform);
    case "ResourceType":
      return (i) => has(resourceType(i));
    case "AgentVersion":
      return (i) => has(i.agentVersion);
    case "tag-key":
      return (i) => values.some((k) => tagsOf(i)[k] !== undefined);
  }
  if (key.startsWith("tag:")) return (i) => has(tagsOf(i)[key.slice(4)] ?? "\0");
  throw new SsmFault(unknown, `The filter key ${key} is not valid.`);
}

/** EC2 instances: their EC2 tags (Name from `name`). Managed instances: their SSM tags. */
function tagsOf(i: FixtureInstance): Record<string, string> {
  if (i.name === undefined || i.id.startsWith("mi-")) return i.tags;
  return { ...i.tags, Name: i.name };
}

function resourceType(i: FixtureInstance): string {
  return i.id.startsWith("mi-") ? "ManagedInstance" : "EC2Instance";
}

function list(v: unknown, what: string): Record<string, unknown>[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new SsmFault("SerializationException", `${what} must be a list`);
  return v;
}

function describeInstanceInformation(ctx: ApiContext, body: Body) {
  checkDenied(ctx, "DescribeInstanceInformation");
  const preds: Pred[] = [];
  for (const f of list(body.Filters, "Filters")) {
    preds.push(filterPred(String(f.Key), (f.Values ?? []) as string[], "InvalidFilterKey"));
  }
  for (const f of list(body.InstanceInformationFilterList, "InstanceInformationFilterList")) {
    preds.push(
      filterPred(
        String(f.key),
        (f.valueSet ?? []) as string[],
        "InvalidInstanceInformationFilterValue",
      ),
    );
  }
  const matches = ctx.fixtures.instances.filter((i) =>
    i.pingStatus !== "unmanaged" && preds.every((p) => p(i))
  );
  const max = typeof body.MaxResults === "number" ? body.MaxResults : 50;
  const start = decodeToken(body.NextToken);
  const page = matches.slice(start, start + max);
  const next = start + max < matches.length ? btoa(String(start + max)) : undefined;
  return {
    InstanceInformationList: page.map((i) => information(ctx, i)),
    ...(next ? { NextToken: next } : {}),
  };
}

function decodeToken(t: unknown): number {
  if (t === undefined || t === null) return 0;
  const n = typeof t === "string" ? Number(atob(t)) : NaN;
  if (!Number.isInteger(n) || n < 0) throw new SsmFault("InvalidNextToken", "Invalid NextToken");
  return n;
}

function information(ctx: ApiContext, i: FixtureInstance) {
  const managed = i.id.startsWith("mi-");
  return {
    InstanceId: i.id,
    PingStatus: i.pingStatus,
    // Real SSM reports the last successful ping; seconds since the epoch on the JSON wire.
    LastPingDateTime: Math.floor(ctx.now() / 1000) - (i.pingStatus === "Online" ? 30 : 3600),
    AgentVersion: i.agentVersion,
    IsLatestVersion: true,
    PlatformType: i.platform,
    PlatformName: i.platformName,
    PlatformVersion: i.platformVersion,
    ResourceType: resourceType(i),
    IPAddress: i.privateIp,
    ComputerName: i.computerName,
    AssociationStatus: "Success",
    SourceId: i.id,
    SourceType: managed ? "AWS::SSM::ManagedInstance" : "AWS::EC2::Instance",
    ...(managed
      ? {
        // Hybrid activation: the registration name (DefaultInstanceName), activation and role.
        ...(i.name !== undefined ? { Name: i.name } : {}),
        ActivationId: `${i.id.slice(3, 11)}-0000-4000-8000-${i.id.slice(8, 20)}`,
        IamRole: "SSMServiceRole",
        RegistrationDate: Math.floor(ctx.now() / 1000) - 86_400,
      }
      : {}),
  };
}
