/**
 * Entry of `ssm-proxy-agent`, the daemon on the instance that terminates tunnels:
 *
 *   ssm-proxy-agent serve [--listen 127.0.0.1:7797] [--config /etc/ssm-proxy/agent.yaml]
 *   ssm-proxy-agent --version
 *
 * Runs until SIGINT/SIGTERM, then says goodbye to every stripe, removes its tun and NAT rules,
 * restores ip_forward and exits 0. Every failure is one line on stderr and a non-zero exit.
 */
import { VERSION } from "../src/version.ts";

const NAME = "ssm-proxy-agent";

if (Deno.args.length === 1 && (Deno.args[0] === "--version" || Deno.args[0] === "-V")) {
  console.log(`${NAME} ${VERSION}`);
  Deno.exit(0);
}

const { Command, CommanderError } = await import("@commander-js/extra-typings");
const { UserError, ExitCode } = await import("../src/errors.ts");
const { DEFAULT_CONFIG_PATH, loadConfig, parseListen } = await import("./config.ts");

const program = new Command()
  .name(NAME)
  .description("ssm-proxy's instance side: terminates tunnels arriving over Session Manager")
  .version(`${NAME} ${VERSION}`, "-V, --version")
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();

program.command("serve")
  .description("accept tunnels until SIGINT/SIGTERM (needs CAP_NET_ADMIN)")
  .option(
    "--listen <host:port>",
    "address for the SSM agent's Port session (default 127.0.0.1:7797)",
  )
  .option("--config <file>", `YAML config (default ${DEFAULT_CONFIG_PATH}, optional)`)
  .action(async (opts) => {
    const config = await loadConfig(opts.config ?? DEFAULT_CONFIG_PATH, opts.config !== undefined);
    if (opts.listen !== undefined) {
      const l = parseListen(opts.listen);
      if (!l) {
        throw new UserError(`--listen ${opts.listen}: expected an IPv4 host:port`, ExitCode.Usage);
      }
      config.listen = l;
    }
    // Under systemd with StateDirectory=ssm-proxy this is /var/lib/ssm-proxy.
    config.stateDir ??= Deno.env.get("STATE_DIRECTORY")?.split(":")[0] || undefined;
    const { startAgent } = await import("./server.ts");
    const agent = await startAgent({ config });
    let stop!: (why: string) => void;
    const stopped = new Promise<string>((r) => (stop = r));
    // Listeners stay installed until cleanup is done: a second Ctrl-C must not kill the process
    // halfway and leave NAT rules or ip_forward behind.
    let stopping = false;
    const handlers = (["SIGINT", "SIGTERM"] as const).map((s) => {
      const h = () => {
        if (stopping) console.error(`${NAME}: already stopping, cleaning up`);
        stopping = true;
        stop(s);
      };
      Deno.addSignalListener(s, h);
      return [s, h] as const;
    });
    // Every drop has a reason an operator can read: `kill -USR1` prints the counters.
    const counters = () =>
      console.error(
        `${NAME}: counters ${Object.entries(agent.stats).map(([k, v]) => `${k}=${v}`).join(" ")}`,
      );
    Deno.addSignalListener("SIGUSR1", counters);
    const why = await Promise.race([stopped, agent.failed]);
    stopping = true;
    console.error(`${NAME}: stopping (${why instanceof Error ? why.message : why})`);
    await agent.close();
    counters();
    Deno.removeSignalListener("SIGUSR1", counters);
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
    if (why instanceof Error) throw new UserError(`tun failed: ${why.message}`);
  });

try {
  await program.parseAsync(Deno.args, { from: "user" });
  Deno.exit(0);
} catch (e) {
  if (e instanceof CommanderError) Deno.exit(e.exitCode === 0 ? 0 : ExitCode.Usage);
  if (e instanceof UserError) {
    console.error(`${NAME}: ${e.message}`);
    Deno.exit(e.exitCode);
  }
  console.error(`${NAME}: internal error: ${(e as Error)?.stack ?? e}`);
  Deno.exit(ExitCode.Failure);
}
