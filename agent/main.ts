/**
 * Entry of `ssm-proxy-agent`, the daemon on the instance that terminates tunnels:
 *
 *   ssm-proxy-agent serve [--listen 127.0.0.1:7797] [--config FILE] [--runtime-dir DIR]
 *   ssm-proxy-agent status [--json] [--config FILE] [--runtime-dir DIR]
 *   ssm-proxy-agent cleanup [--config FILE] [--runtime-dir DIR] [--force]
 *   ssm-proxy-agent unit
 *   ssm-proxy-agent --version
 *
 * `serve` runs until SIGINT/SIGTERM, then says goodbye to every stripe, removes its tun and NAT
 * rules, restores ip_forward and exits 0. `status` exits 0 when an agent is running and 3 when
 * none is (status_cli.ts). `cleanup` removes what earlier runs left (cleanup.ts). `unit` prints
 * the systemd unit (unit.ts). FILE defaults to /etc/ssm-proxy/agent.yaml (optional); DIR to
 * $RUNTIME_DIRECTORY, else /run/ssm-proxy-agent. Every failure is one line on stderr and exit
 * 1 (2 for a usage error).
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
const { resolveRuntimeDir } = await import("./status.ts");

const program = new Command()
  .name(NAME)
  .description("ssm-proxy's instance side: terminates tunnels arriving over Session Manager")
  .version(`${NAME} ${VERSION}`, "-V, --version")
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();

const CONFIG_HELP = `YAML config (default ${DEFAULT_CONFIG_PATH}, optional)`;
const RUNTIME_HELP = "where status.json lives (default: config runtimeDir, $RUNTIME_DIRECTORY, " +
  "else /run/ssm-proxy-agent)";
/** The config named by --config (which must then exist), else the default file if present. */
const readConfig = (file?: string) => loadConfig(file ?? DEFAULT_CONFIG_PATH, file !== undefined);
let exitCode = 0;

program.command("serve")
  .description("accept tunnels until SIGINT/SIGTERM (needs CAP_NET_ADMIN)")
  .option(
    "--listen <host:port>",
    "address for the SSM agent's Port session (default 127.0.0.1:7797)",
  )
  .option("--config <file>", CONFIG_HELP)
  .option("--runtime-dir <dir>", RUNTIME_HELP)
  .action(async (opts) => {
    const config = await readConfig(opts.config);
    if (opts.listen !== undefined) {
      const l = parseListen(opts.listen);
      if (!l) {
        throw new UserError(`--listen ${opts.listen}: expected an IPv4 host:port`, ExitCode.Usage);
      }
      config.listen = l;
    }
    // Under systemd with StateDirectory=ssm-proxy this is /var/lib/ssm-proxy.
    config.stateDir ??= Deno.env.get("STATE_DIRECTORY")?.split(":")[0] || undefined;
    config.runtimeDir = resolveRuntimeDir(opts.runtimeDir, config.runtimeDir);
    let stop!: (why: string) => void;
    const stopped = new Promise<string>((r) => (stop = r));
    // Listeners go in before the tun, NAT and ip_forward change (a signal during setup waits for
    // it to finish, then undoes it), and stay until cleanup is done: a second Ctrl-C must not
    // kill the process halfway and leave NAT rules or ip_forward behind.
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
    const { startAgent } = await import("./server.ts");
    const agent = await startAgent({ config });
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

program.command("status")
  .description(
    "show the running agent (from its status file); exit 0 if running, 3 if not running",
  )
  .option("--json", "print JSON (also when not running)")
  .option("--config <file>", CONFIG_HELP)
  .option("--runtime-dir <dir>", RUNTIME_HELP)
  .action(async (opts) => {
    const dir = opts.runtimeDir ??
      resolveRuntimeDir(undefined, (await readConfig(opts.config)).runtimeDir);
    const { showStatus } = await import("./status_cli.ts");
    exitCode = await showStatus(dir, opts.json === true);
  });

program.command("cleanup")
  .description(
    "remove the NAT rules, leases and status file earlier runs left (run after stopping the agent)",
  )
  .option("--config <file>", CONFIG_HELP)
  .option("--runtime-dir <dir>", RUNTIME_HELP)
  .option("--force", "even though a running agent's status file says it is serving")
  .action(async (opts) => {
    const cfg = await readConfig(opts.config);
    const { cleanup, DEFAULT_STATE_DIR } = await import("./cleanup.ts");
    const problems = await cleanup({
      stateDir: cfg.stateDir ??
        (Deno.env.get("STATE_DIRECTORY")?.split(":")[0] || DEFAULT_STATE_DIR),
      runtimeDir: resolveRuntimeDir(opts.runtimeDir, cfg.runtimeDir),
      force: opts.force === true,
      out: (line) => console.log(line),
    });
    for (const p of problems) console.error(`${NAME}: cleanup: ${p}`);
    if (problems.length) exitCode = ExitCode.Failure;
  });

program.command("unit")
  .description("print the systemd unit for this binary (redirect into /etc/systemd/system/)")
  .action(async () => {
    const { UNIT } = await import("./unit.ts");
    const bytes = new TextEncoder().encode(UNIT);
    for (let o = 0; o < bytes.length;) o += await Deno.stdout.write(bytes.subarray(o));
  });

try {
  await program.parseAsync(Deno.args, { from: "user" });
  Deno.exit(exitCode);
} catch (e) {
  if (e instanceof CommanderError) Deno.exit(e.exitCode === 0 ? 0 : ExitCode.Usage);
  if (e instanceof UserError) {
    console.error(`${NAME}: ${e.message}`);
    Deno.exit(e.exitCode);
  }
  console.error(`${NAME}: internal error: ${(e as Error)?.stack ?? e}`);
  Deno.exit(ExitCode.Failure);
}
