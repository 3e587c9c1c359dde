/**
 * Entry of `ssm-proxy`. Subcommands are imported when run, so `--help`, `--version` and argument
 * errors never load the AWS SDK (deno-platform.md §6).
 */
import { VERSION } from "./src/version.ts";

if (Deno.args.length === 1 && (Deno.args[0] === "--version" || Deno.args[0] === "-V")) {
  console.log(`ssm-proxy ${VERSION}`);
  Deno.exit(0);
}

// start's planning child (src/start/plan_child.ts): on start's critical path, so no commander.
if (Deno.args[0] === "__plan") await (await import("./src/start/plan_child.ts")).runPlanChild();

const { CommanderError } = await import("@commander-js/extra-typings");
const { UserError, ExitCode } = await import("./src/errors.ts");

const { buildProgram } = await import("./src/cli/program.ts");
const program = buildProgram();

try {
  await program.parseAsync(Deno.args, { from: "user" });
} catch (e) {
  if (e instanceof CommanderError) {
    // Commander already printed the message (or the help/version text).
    Deno.exit(e.exitCode === 0 ? 0 : ExitCode.Usage);
  }
  if (e instanceof UserError) {
    console.error(`ssm-proxy: ${e.message}`);
    Deno.exit(e.exitCode);
  }
  console.error(`ssm-proxy: internal error: ${(e as Error)?.stack ?? e}`);
  console.error("Please report this with the command you ran.");
  Deno.exit(ExitCode.Failure);
}
