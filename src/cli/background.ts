/** Running in the background: output to a log file, and a parent that waits until it is up. */
import { ExitCode, UserError } from "../errors.ts";

/** In the background there is no terminal: console output goes to a log file, timestamped. */
export function logTo(path: string): void {
  const file = Deno.openSync(path, { write: true, create: true, append: true });
  const enc = new TextEncoder();
  const write = (...a: unknown[]) => {
    const line = a.map((x) => (typeof x === "string" ? x : Deno.inspect(x))).join(" ");
    file.writeSync(enc.encode(`${new Date().toISOString()} ${line}\n`));
  };
  console.log = write;
  console.error = write;
}

/**
 * Spawn `command args` detached, its output going to `log` (the child calls logTo via `env`), and
 * wait until `ready(pid)` says it is up. If the child exits first, its last log line becomes our
 * one-line error; if it takes longer than a minute, it is stopped.
 */
export async function spawnDetached<T>(o: {
  command: string;
  args: string[];
  env: Record<string, string>;
  log: string;
  what: string;
  ready: (pid: number) => Promise<T | undefined>;
}): Promise<{ pid: number; state: T }> {
  // The child writes its own log: a pipe to us would break when we exit.
  const child = new Deno.Command(o.command, {
    args: o.args,
    env: o.env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const exited = await Promise.race([
      child.status,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 200)),
    ]);
    if (exited) {
      const lines = (await Deno.readTextFile(o.log).catch(() => "")).trim().split("\n");
      // Log lines are "<ISO time> ssm-proxy: <message>".
      const last = (lines.at(-1) ?? "").replace(/^\S+ (ssm-proxy: )?/, "");
      throw new UserError(last || `${o.what} failed; see ${o.log}`, exited.code || 1);
    }
    const state = await o.ready(child.pid);
    if (state !== undefined) {
      child.unref();
      return { pid: child.pid, state };
    }
  }
  child.kill("SIGTERM");
  throw new UserError(`${o.what} did not come up within 60 s; see ${o.log}`, ExitCode.Remote);
}
