/**
 * How kubeconfig calls us back for tokens: the running binary, or from source
 * `deno run -A --config <repo>/deno.json <repo>/main.ts`, so the exec entry keeps working from
 * any directory kubectl is run in.
 */
import { dirname, join } from "node:path";

export interface SelfCommand {
  command: string;
  args: string[];
}

export function selfCommand(
  execPath = Deno.execPath(),
  mainModule = Deno.mainModule,
): SelfCommand {
  const fromSource = mainModule.startsWith("file:") && /\/deno(\.exe)?$/.test(execPath);
  if (!fromSource) return { command: execPath, args: [] };
  const main = new URL(mainModule).pathname;
  const config = join(dirname(main), "deno.json");
  let hasConfig = false;
  try {
    hasConfig = Deno.statSync(config).isFile;
  } catch { /* no config beside main.ts: run it bare */ }
  return {
    command: execPath,
    args: ["run", "-A", ...(hasConfig ? ["--config", config] : []), main],
  };
}

/** The exec entry's argv for `eks token`. */
export function tokenArgs(
  self: SelfCommand,
  t: { cluster: string; region: string; profile?: string },
): SelfCommand {
  return {
    command: self.command,
    args: [
      ...self.args,
      "eks",
      "token",
      "--cluster",
      t.cluster,
      "--region",
      t.region,
      ...(t.profile ? ["--profile", t.profile] : []),
    ],
  };
}
