/**
 * No --target on a terminal: offer the instances a session could reach (SSM Online, and for
 * EC2 running, or stopped with --wake) as a numbered list. Without a terminal it is a usage
 * error, so scripts never hang on a prompt.
 */
import type { AwsOptions } from "../aws/config.ts";
import { ExitCode, UserError } from "../errors.ts";
import { type InstanceRow, listInstances } from "../aws/instances.ts";
import { formatTable } from "./list_instances.ts";

export interface PickerIo {
  interactive: boolean;
  print(text: string): void;
  /** One answer line, or null at end of input. */
  ask(question: string): string | null;
}

export const terminalIo = (): PickerIo => ({
  interactive: Deno.stdin.isTerminal() && Deno.stderr.isTerminal(),
  print: (t) => console.error(t),
  ask: (q) => prompt(q),
});

export function pickable(r: InstanceRow, wake: boolean): boolean {
  if (r.platform?.toLowerCase().includes("windows")) return false;
  if (r.kind === "managed") return r.ssm === "Online";
  if (r.state === "running") return r.ssm === "Online";
  return wake && r.state === "stopped";
}

export async function pickTarget(
  aws: AwsOptions,
  o: { wake?: boolean },
  io: PickerIo = terminalIo(),
): Promise<string> {
  if (!io.interactive) {
    throw new UserError(
      "--target is required: i-…, mi-…, name:<Name tag> or tag:<Key>=<Value> (ssm-proxy list-instances shows them)",
      ExitCode.Usage,
    );
  }
  const rows = (await listInstances(aws)).filter((r) => pickable(r, o.wake === true));
  if (rows.length === 0) {
    throw new UserError(
      `no Linux instance is online in Systems Manager${
        o.wake ? " or stopped" : ""
      } here: check --region/--profile, or see ssm-proxy list-instances`,
      ExitCode.Target,
    );
  }
  const lines = formatTable(rows).split("\n");
  io.print(`    ${lines[0]}`);
  rows.forEach((_, i) => io.print(`${String(i + 1).padStart(2)}) ${lines[i + 1]}`));
  for (;;) {
    const answer = io.ask(`Instance [1-${rows.length}]:`);
    if (answer === null) throw new UserError("no instance picked", ExitCode.Usage);
    const n = Number(answer.trim());
    if (Number.isInteger(n) && n >= 1 && n <= rows.length) return rows[n - 1].instanceId;
    const byId = rows.find((r) => r.instanceId === answer.trim());
    if (byId) return byId.instanceId;
    io.print(`pick a number from 1 to ${rows.length}`);
  }
}
