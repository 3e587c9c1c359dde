/**
 * SSM Parameter Store: GetParameter, GetParametersByPath, PutParameter, DeleteParameter over
 * the fixtures' `parameters`, which they read and change in place (the live world). No version
 * history is kept: a `name:N` selector finds only the current version.
 */

import {
  type FixtureParameter,
  hierarchyName,
  MAX_LEVELS,
  MAX_VALUE,
  NAME_RULES,
  PARAMETER_TYPES,
  parameterNameProblem,
  type ParameterTier,
  type ParameterType,
} from "../fixtures_parameters.ts";
import { type Body, SsmFault, str } from "./ssm_shared.ts";
import { type ApiContext, deniedMessage, isDenied } from "./world.ts";

type Op = (ctx: ApiContext, body: Body) => unknown;

export const PARAMETER_OPS: Record<string, Op> = {
  GetParameter: getParameter,
  GetParametersByPath: getParametersByPath,
  PutParameter: putParameter,
  DeleteParameter: deleteParameter,
};

export function parameterArn(ctx: ApiContext, name: string): string {
  return `arn:aws:ssm:${ctx.region}:${ctx.fixtures.account}:parameter/${name.replace(/^\//, "")}`;
}

function checkDenied(ctx: ApiContext, op: string, name: string): void {
  if (!isDenied(ctx.fixtures, op, [name])) return;
  throw new SsmFault(
    "AccessDeniedException",
    deniedMessage(ctx, `ssm:${op}`, parameterArn(ctx, name)),
  );
}

function bool(body: Body, key: string): boolean {
  const v = body[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") {
    throw new SsmFault("SerializationException", `${key} must be a boolean`);
  }
  return v;
}

function validation(member: string, value: unknown, constraint: string): SsmFault {
  return new SsmFault(
    "ValidationException",
    `1 validation error detected: Value '${value}' at '${member}' failed to satisfy constraint: ` +
      constraint,
  );
}

function find(ctx: ApiContext, name: string): FixtureParameter | undefined {
  return ctx.fixtures.parameters.find((p) => p.name === name);
}

function notFound(name: string): SsmFault {
  return new SsmFault("ParameterNotFound", `Parameter ${name} not found.`);
}

/** Stands in for the KMS ciphertext SSM returns for a SecureString read without decryption. */
function ciphertext(value: string): string {
  const bytes = new TextEncoder().encode(`emulator-kms:${value}`).map((b) => b ^ 0x5a);
  return `AQICAH${btoa(String.fromCharCode(...bytes))}`;
}

function wire(ctx: ApiContext, p: FixtureParameter, decrypt: boolean, selector?: string) {
  return {
    Name: p.name,
    Type: p.type,
    Value: p.type === "SecureString" && !decrypt ? ciphertext(p.value) : p.value,
    Version: p.version,
    ...(selector ? { Selector: selector } : {}),
    LastModifiedDate: p.lastModified / 1000,
    ARN: parameterArn(ctx, p.name),
    DataType: "text",
  };
}

function getParameter(ctx: ApiContext, body: Body) {
  const requested = str(body, "Name", true);
  const decrypt = bool(body, "WithDecryption");
  const m = /^(.*):(\d+)$/.exec(requested);
  const name = m ? m[1] : requested;
  checkDenied(ctx, "GetParameter", name);
  const p = find(ctx, name);
  if (!p) throw notFound(name);
  if (m && Number(m[2]) !== p.version) {
    throw new SsmFault(
      "ParameterVersionNotFound",
      `Systems Manager could not find version ${
        m[2]
      } of ${name}. Verify the version and try again.`,
    );
  }
  return { Parameter: wire(ctx, p, decrypt, m ? `:${m[2]}` : undefined) };
}

function maxResults(body: Body): number {
  const v = body.MaxResults;
  if (v === undefined || v === null) return 10;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw new SsmFault("SerializationException", "MaxResults must be an integer");
  }
  if (v < 1) throw validation("maxResults", v, "Member must have value greater than or equal to 1");
  if (v > 10) throw validation("maxResults", v, "Member must have value less than or equal to 10");
  return v;
}

/** `ParameterFilters` as GetParametersByPath takes them: Type, with Equals. */
function typeFilter(body: Body): (p: FixtureParameter) => boolean {
  const filters = body.ParameterFilters;
  if (filters === undefined || filters === null) return () => true;
  if (!Array.isArray(filters)) {
    throw new SsmFault("SerializationException", "ParameterFilters must be a list");
  }
  const preds = filters.map((f: Record<string, unknown>) => {
    if (f.Key !== "Type") {
      throw new SsmFault(
        "InvalidFilterKey",
        `The following filter key is not valid: ${f.Key}. Valid filter keys include: [Type].`,
      );
    }
    if ((f.Option ?? "Equals") !== "Equals") {
      throw new SsmFault("InvalidFilterOption", `The filter option ${f.Option} is not valid.`);
    }
    const values = Array.isArray(f.Values) ? f.Values as string[] : [];
    return (p: FixtureParameter) => values.includes(p.type);
  });
  return (p) => preds.every((pred) => pred(p));
}

function getParametersByPath(ctx: ApiContext, body: Body) {
  const path = str(body, "Path", true);
  const recursive = bool(body, "Recursive");
  const decrypt = bool(body, "WithDecryption");
  const max = maxResults(body);
  const segments = path.split("/").filter((s) => s !== "");
  if (
    !path.startsWith("/") || segments.some((s) => !/^[A-Za-z0-9_.-]+$/.test(s)) ||
    segments.length > MAX_LEVELS
  ) {
    throw new SsmFault(
      "ValidationException",
      `The parameter path ${path} is not valid. A path starts with a forward slash "/" and has ` +
        `at most ${MAX_LEVELS} levels of letters, numbers and .-_`,
    );
  }
  const wanted = typeFilter(body);
  checkDenied(ctx, "GetParametersByPath", path);
  const prefix = path.endsWith("/") ? path : `${path}/`;
  const matches = ctx.fixtures.parameters.filter((p) => {
    const full = hierarchyName(p.name);
    if (!full.startsWith(prefix)) return false;
    return (recursive || !full.slice(prefix.length).includes("/")) && wanted(p);
  }).sort((a, b) => hierarchyName(a.name) < hierarchyName(b.name) ? -1 : 1);
  const start = tokenStart(body.NextToken, matches.length);
  const end = start + max;
  return {
    Parameters: matches.slice(start, end).map((p) => wire(ctx, p, decrypt)),
    ...(end < matches.length ? { NextToken: btoa(`emu:${end}`) } : {}),
  };
}

function tokenStart(token: unknown, total: number): number {
  if (token === undefined || token === null) return 0;
  let n = NaN;
  try {
    const m = typeof token === "string" ? /^emu:(\d+)$/.exec(atob(token)) : null;
    if (m) n = Number(m[1]);
  } catch { /* not base64: invalid below */ }
  if (!Number.isInteger(n) || n > total) {
    throw new SsmFault("InvalidNextToken", "The specified token is not valid.");
  }
  return n;
}

function tierFor(body: Body, value: string, existing?: FixtureParameter): ParameterTier {
  const asked = str(body, "Tier");
  if (asked !== undefined && !["Standard", "Advanced", "Intelligent-Tiering"].includes(asked)) {
    throw validation(
      "tier",
      asked,
      "Member must satisfy enum value set: [Standard, Advanced, Intelligent-Tiering]",
    );
  }
  const big = value.length > MAX_VALUE.Standard;
  const tier: ParameterTier = asked === "Intelligent-Tiering"
    ? (big || existing?.tier === "Advanced" ? "Advanced" : "Standard")
    : (asked as ParameterTier | undefined) ?? existing?.tier ?? "Standard";
  if (tier === "Standard" && big) {
    throw new SsmFault(
      "ValidationException",
      `Standard tier parameters support a maximum parameter value of ${MAX_VALUE.Standard} ` +
        "characters. To create a larger parameter value, upgrade the parameter to use the " +
        "advanced-parameter tier. For more information, see https://docs.aws.amazon.com/" +
        "systems-manager/latest/userguide/parameter-store-advanced-parameters.html",
    );
  }
  if (value.length > MAX_VALUE.Advanced) {
    throw validation(
      "value",
      "***",
      `Member must have length less than or equal to ${MAX_VALUE.Advanced}`,
    );
  }
  return tier;
}

function putParameter(ctx: ApiContext, body: Body) {
  const name = str(body, "Name", true);
  const value = str(body, "Value", true);
  const type = str(body, "Type") as ParameterType | undefined;
  const description = str(body, "Description");
  str(body, "KeyId");
  const overwrite = bool(body, "Overwrite");
  if (type !== undefined && !PARAMETER_TYPES.includes(type)) {
    throw validation(
      "type",
      type,
      "Member must satisfy enum value set: [SecureString, StringList, String]",
    );
  }
  const problem = parameterNameProblem(name);
  if (problem === "rules") throw new SsmFault("ValidationException", NAME_RULES);
  if (problem === "levels") {
    throw new SsmFault(
      "HierarchyLevelLimitExceededException",
      `A hierarchy can have a maximum of ${MAX_LEVELS} levels.`,
    );
  }
  checkDenied(ctx, "PutParameter", name);
  const existing = find(ctx, name);
  const tier = tierFor(body, value, existing);
  if (existing && !overwrite) {
    throw new SsmFault(
      "ParameterAlreadyExists",
      "The parameter already exists. To overwrite this value, set the overwrite option in the " +
        "request to true.",
    );
  }
  if (!existing && type === undefined) {
    throw new SsmFault(
      "ValidationException",
      "A parameter type is required when you create a parameter.",
    );
  }
  if (existing && type && (type === "SecureString") !== (existing.type === "SecureString")) {
    throw new SsmFault(
      "HierarchyTypeMismatchException",
      "Parameter Store can't change a parameter from a String type to a SecureString type " +
        "or back. Create a new parameter instead.",
    );
  }
  const next: FixtureParameter = {
    name,
    value,
    type: type ?? existing!.type,
    ...(description ?? existing?.description
      ? { description: description ?? existing?.description }
      : {}),
    version: (existing?.version ?? 0) + 1,
    tier,
    lastModified: ctx.now(),
  };
  const list = ctx.fixtures.parameters;
  if (existing) list[list.indexOf(existing)] = next;
  else list.push(next);
  return { Version: next.version, Tier: tier };
}

function deleteParameter(ctx: ApiContext, body: Body) {
  const name = str(body, "Name", true);
  checkDenied(ctx, "DeleteParameter", name);
  const list = ctx.fixtures.parameters;
  const i = list.findIndex((p) => p.name === name);
  if (i < 0) throw notFound(name);
  list.splice(i, 1);
  return {};
}
