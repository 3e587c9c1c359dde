/**
 * Put a String parameter (overwriting) through the product's own Parameter Store code, with the
 * AWS settings of the environment; run inside a lab laptop with stack.ts's clientEnv, so it
 * reaches the emulator. Prints the new version. See putLabParameter.
 *
 *   parameter.ts NAME VALUE
 */
import type { Lab, Role } from "../lab.ts";
import { clientEnv } from "./stack.ts";

const SELF = new URL(import.meta.url).pathname;

/** Put `name` = `value` from `role`'s namespace; returns the parameter's new version. */
export async function putLabParameter(
  lab: Lab,
  role: Role,
  name: string,
  value: string,
  env: Record<string, string> = {},
): Promise<number> {
  const r = await lab.exec(role, [Deno.execPath(), "run", "-A", SELF, name, value], {
    ...clientEnv(lab, role),
    ...env,
  });
  const version = Number(r.stdout.trim());
  if (!r.success || !Number.isInteger(version)) {
    throw new Error(`putting ${name} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }
  return version;
}

if (import.meta.main) {
  const [name, value] = Deno.args;
  const { putParameter } = await import("../../src/aws/parameters.ts");
  const { version } = await putParameter({}, { name, value, overwrite: true });
  console.log(version);
}
