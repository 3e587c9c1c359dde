/**
 * Helpers for agent tests in network namespaces (DESIGN §7): whether they can run here, running
 * commands, watching a child's output lines, and starting the real agent (agent/main.ts) inside a
 * namespace. Everything a test creates is named by the test and removed by it.
 */
const root = new URL("../../", import.meta.url).pathname;

const have = (cmd: string) =>
  new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "null", stderr: "null" })
    .outputSync().success;

/** Root on Linux with ip, nft and /dev/net/tun: what the real agent needs. */
export const canRunNetns = Deno.build.os === "linux" && Deno.uid?.() === 0 && have("ip") &&
  have("nft") &&
  (() => {
    try {
      Deno.statSync("/dev/net/tun");
      return true;
    } catch {
      return false;
    }
  })();

export interface ShResult {
  ok: boolean;
  code: number;
  stdout: string;
  /** stdout + stderr. */
  out: string;
}

export async function sh(args: string[], check = true): Promise<ShResult> {
  const r = await new Deno.Command(args[0], {
    args: args.slice(1),
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const stdout = new TextDecoder().decode(r.stdout);
  const out = stdout + new TextDecoder().decode(r.stderr);
  if (check && !r.success) throw new Error(`${args.join(" ")} failed: ${out}`);
  return { ok: r.success, code: r.code, stdout, out };
}

/** argv that runs a Deno script of this repo inside namespace `ns`. */
export function inNetns(ns: string, script: string, args: string[], denoFlags = ["-A"]): string[] {
  return [
    "ip",
    "netns",
    "exec",
    ns,
    Deno.execPath(),
    "run",
    ...denoFlags,
    `${root}${script}`,
    ...args,
  ];
}

/** `ssm-proxy-agent ARGS` from the source tree, inside `ns` when given. */
export function agentCli(args: string[], ns?: string): Promise<ShResult> {
  const argv = ns
    ? inNetns(ns, "agent/main.ts", args)
    : [Deno.execPath(), "run", "-A", `${root}agent/main.ts`, ...args];
  return sh(argv, false);
}

/** Read lines from a stream until one matches; the rest of the stream keeps draining into `log`. */
export function lineWatcher(stream: ReadableStream<Uint8Array>) {
  const log: string[] = [];
  let wake: (() => void) | undefined;
  const done = (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      log.push(...chunk.split("\n").filter(Boolean));
      wake?.();
    }
  })();
  return {
    log,
    done,
    async waitFor(re: RegExp, timeoutMs: number): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!log.some((l) => re.test(l))) {
        if (Date.now() > deadline) {
          throw new Error(`timed out waiting for ${re}: ${log.join("\n")}`);
        }
        let t: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((r) => {
          wake = r;
          t = setTimeout(r, 100);
        });
        clearTimeout(t);
      }
    },
  };
}

export type LineWatcher = ReturnType<typeof lineWatcher>;

/** `ssm-proxy-agent serve --config FILE` in `ns`, once it logged "listening on". */
export async function startAgentIn(
  ns: string,
  config: string,
): Promise<{ child: Deno.ChildProcess; err: LineWatcher }> {
  const [cmd, ...args] = inNetns(ns, "agent/main.ts", ["serve", "--config", config]);
  const child = new Deno.Command(cmd, {
    args,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const err = lineWatcher(child.stderr);
  try {
    await err.waitFor(/listening on/, 20_000);
  } catch (e) {
    child.kill("SIGKILL");
    await child.status;
    await err.done;
    throw e;
  }
  return { child, err };
}
