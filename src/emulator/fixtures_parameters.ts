/**
 * SSM Parameter Store entries in the fixtures, and the naming and size rules Parameter Store
 * applies (shared by the YAML loader and PutParameter, so a fixture cannot hold a parameter
 * the API would refuse).
 */

import type { Node } from "yaml";
import type { Validator } from "./fixtures_validate.ts";

export const PARAMETER_TYPES = ["String", "StringList", "SecureString"] as const;
export type ParameterType = typeof PARAMETER_TYPES[number];
export type ParameterTier = "Standard" | "Advanced";

export interface FixtureParameter {
  name: string;
  value: string;
  type: ParameterType;
  description?: string;
  version: number;
  tier: ParameterTier;
  /** Epoch ms. */
  lastModified: number;
}

/** Value length limits per tier, in characters. */
export const MAX_VALUE: Record<ParameterTier, number> = { Standard: 4096, Advanced: 8192 };

/** Parameter Store's own wording, which names every rule at once. */
export const NAME_RULES =
  `Parameter name: can't be prefixed with "aws" or "ssm" (case-insensitive). ` +
  "If formed as a path, it can consist of sub-paths divided by slash symbol; each sub-path can " +
  "be formed as a mix of letters, numbers and the following 3 symbols .-_";

export const MAX_LEVELS = 15;

/** Why `name` cannot be a parameter name, or undefined when it can. */
export function parameterNameProblem(name: string): "rules" | "levels" | undefined {
  if (name.length === 0 || name.length > 2048) return "rules";
  const path = name.includes("/");
  if (path && !name.startsWith("/")) return "rules";
  const segments = (path ? name.slice(1) : name).split("/");
  if (segments.some((s) => !/^[A-Za-z0-9_.-]+$/.test(s))) return "rules";
  // The prefix rule is on the name as written ("/ssm-proxy/x" is fine); "/aws/…" is reserved
  // for AWS's public parameters.
  if (/^(aws|ssm)/i.test(name) || (path && /^aws$/i.test(segments[0]))) return "rules";
  if (segments.length > MAX_LEVELS) return "levels";
  return undefined;
}

/** The name as Parameter Store files it in the hierarchy: `foo` lives at `/foo`. */
export function hierarchyName(name: string): string {
  return name.startsWith("/") ? name : `/${name}`;
}

export function parseParameter(
  v: Validator,
  node: Node,
  path: string,
  now: number,
): FixtureParameter {
  const m = v.map(node, path, ["name", "value", "type", "description", "version"]);
  const name = v.reqStr(m, "name");
  const problem = parameterNameProblem(name);
  if (problem === "rules") v.fail(m.get("name"), `${path}.name`, NAME_RULES);
  if (problem === "levels") {
    v.fail(m.get("name"), `${path}.name`, `more than ${MAX_LEVELS} levels in the hierarchy`);
  }
  const value = v.reqStr(m, "value");
  const tier: ParameterTier = value.length > MAX_VALUE.Standard ? "Advanced" : "Standard";
  if (value.length > MAX_VALUE.Advanced) {
    v.fail(m.get("value"), `${path}.value`, `longer than ${MAX_VALUE.Advanced} characters`);
  }
  const description = v.optStr(m, "description");
  const version = v.optNum(m, "version") ?? 1;
  if (!Number.isInteger(version) || version < 1) {
    v.fail(m.get("version"), `${path}.version`, "expected a whole number from 1");
  }
  return {
    name,
    value,
    type: v.optEnum(m, "type", PARAMETER_TYPES) ?? "String",
    ...(description !== undefined ? { description } : {}),
    version,
    tier,
    lastModified: now,
  };
}
