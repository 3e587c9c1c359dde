/**
 * What `start` and its planning child (`ssm-proxy __plan`, plan_child.ts) say to each other: one
 * JSON request on the child's stdin, then one JSON message a line on its stdout. The child exists
 * so that the EC2 and Route 53 clients, needed once to find the target and discover its VPC,
 * never load into the long-running tunnel process (issue 13: ~24 MB of heap it could not free).
 * Pure.
 */
import type { AwsOptions } from "../aws/config.ts";
import type { ResolvedTarget } from "../aws/targets.ts";
import type { Discovery } from "../discover/discover.ts";
import { ExitCode, UserError } from "../errors.ts";

export type PlanRequest =
  /** Resolve `target` (all its online matches with `spread`, waking it with `wake`), then discover. */
  | {
    kind: "plan";
    aws: AwsOptions;
    target: string;
    spread: boolean;
    wake: boolean;
    discover: { routes: boolean; dns: boolean };
  }
  /** The VPC resolver of an instance, for agentless mode when nothing was discovered. */
  | { kind: "resolver"; aws: AwsOptions; instanceId: string };

/** The target and where it is: what both planning and connecting start from. */
export interface Located {
  target: ResolvedTarget;
  /** `--spread` with more than one match: every instance, `target` first. */
  spread?: ResolvedTarget[];
  region: string;
}

export type PlanMessage =
  | { type: "progress"; line: string }
  | ({ type: "located" } & Located)
  /** No `discovery` when the request wanted neither routes nor DNS. */
  | { type: "discovered"; discovery?: Discovery }
  | { type: "resolver"; address?: string }
  /** `internal`: not a UserError, a bug; `message` then holds the stack. */
  | { type: "error"; message: string; exitCode: number; internal?: boolean };

export function encodeRequest(r: PlanRequest): string {
  return JSON.stringify(r);
}

export function decodeRequest(text: string): PlanRequest {
  const r = parseObject(text, "request");
  const aws = r.aws;
  if (typeof aws !== "object" || aws === null) throw malformed("request", text);
  if (
    r.kind === "plan" && typeof r.target === "string" && typeof r.spread === "boolean" &&
    typeof r.wake === "boolean" && isWant(r.discover)
  ) return r as PlanRequest;
  if (r.kind === "resolver" && typeof r.instanceId === "string") return r as PlanRequest;
  throw malformed("request", text);
}

/** One line, newline included. */
export function encodeMessage(m: PlanMessage): string {
  return `${JSON.stringify(m)}\n`;
}

export function decodeMessage(line: string): PlanMessage {
  const m = parseObject(line, "message");
  const ok = (m.type === "progress" && typeof m.line === "string") ||
    (m.type === "located" && typeof m.region === "string" && isTarget(m.target)) ||
    (m.type === "discovered" && (m.discovery === undefined || typeof m.discovery === "object")) ||
    (m.type === "resolver" && (m.address === undefined || typeof m.address === "string")) ||
    (m.type === "error" && typeof m.message === "string" && typeof m.exitCode === "number");
  if (!ok) throw malformed("message", line);
  return m as PlanMessage;
}

/** A failure in the child, as it travels: a UserError keeps its line and exit code. */
export function errorMessage(e: unknown): PlanMessage & { type: "error" } {
  if (e instanceof UserError) return { type: "error", message: e.message, exitCode: e.exitCode };
  const err = e instanceof Error ? e : new Error(String(e));
  return {
    type: "error",
    message: err.stack ?? err.message,
    exitCode: ExitCode.Failure,
    internal: true,
  };
}

/** The failure again, in the parent: the same one line and exit code as if it ran there. */
export function errorFrom(m: PlanMessage & { type: "error" }): Error {
  if (m.internal) return new Error(`the planning process failed: ${m.message}`);
  return new UserError(m.message, m.exitCode);
}

function isWant(v: unknown): boolean {
  const w = v as { routes?: unknown; dns?: unknown } | null;
  return typeof w === "object" && w !== null && typeof w.routes === "boolean" &&
    typeof w.dns === "boolean";
}

function isTarget(v: unknown): boolean {
  return typeof v === "object" && v !== null &&
    typeof (v as { instanceId?: unknown }).instanceId === "string";
}

function parseObject(text: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw malformed(what, text);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw malformed(what, text);
  return v as Record<string, unknown>;
}

/** Only a bug (or a foreign writer on the pipe) gets here: an internal error, not a UserError. */
function malformed(what: string, text: string): Error {
  return new Error(`malformed planning ${what}: ${text.slice(0, 200)}`);
}
