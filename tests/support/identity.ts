/**
 * Helpers for the identity end-to-end tests (tests/e2e/identity_test.ts): the agent's status as
 * `ssm-proxy-agent status --json` prints it, the audit trail's lines, and ping.
 */
import type { Lab, Role } from "../../scripts/lab.ts";
import { agentArgv } from "../../scripts/lab/stack.ts";
import type { AgentStatus } from "../../agent/status.ts";
import type { AuditRecord } from "../../agent/audit_flow.ts";

/** `ssm-proxy-agent status --json` of a running agent (agent/status_cli.ts). */
export type AgentStatusDoc = AgentStatus & { running: boolean; statusFile: string };

/** Where the lab's agent keeps status.json (stack.ts's agentConfig runtimeDir). */
export const runtimeDir = (lab: Lab) => `${lab.dir}/run`;

/** `ssm-proxy-agent status --json` run in the instance, for the lab agent's runtime dir. */
export async function agentStatus(lab: Lab): Promise<AgentStatusDoc> {
  const r = await lab.exec(
    "instance",
    agentArgv(["status", "--json", "--runtime-dir", runtimeDir(lab)]),
  );
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`ssm-proxy-agent status --json (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
}

/** One line of the audit trail. */
export type AuditLine = AuditRecord;

/** Every line of an audit file, parsed (a line that is not JSON throws). */
export async function readAudit(file: string): Promise<AuditLine[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return text.split("\n").filter(Boolean).map((l, i) => {
    try {
      return JSON.parse(l);
    } catch {
      throw new Error(`${file}:${i + 1} is not JSON: ${l.slice(0, 200)}`);
    }
  });
}

/** One ping with a 2 s wait: its exit status and output. */
export async function pingOnce(
  lab: Lab,
  role: Role,
  host: string,
): Promise<{ ok: boolean; out: string; ms: number }> {
  const t0 = performance.now();
  const r = await lab.exec(role, ["ping", "-n", "-c", "1", "-W", "2", host]);
  return { ok: r.success, out: (r.stdout + r.stderr).trim(), ms: performance.now() - t0 };
}

/** Poll `fn` until it returns something other than undefined, or throw `what` after `ms`. */
export async function eventually<T>(
  what: () => string,
  ms: number,
  fn: () => Promise<T | undefined>,
  everyMs = 500,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (true) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`after ${ms} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
