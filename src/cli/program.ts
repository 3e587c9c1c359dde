/**
 * The command tree of `ssm-proxy`: every command, option and help text, built without loading
 * any command's code (each action imports its module when run). main.ts parses with it; the
 * shell completions are generated from it.
 */
import { Command } from "@commander-js/extra-typings";
import { VERSION } from "../version.ts";
import { ExitCode, UserError } from "../errors.ts";

export function buildProgram() {
  const program = new Command()
    .name("ssm-proxy")
    .description(
      "Reach private AWS networks through Session Manager: no SSH, no AWS CLI, no plugin.",
    )
    .version(VERSION, "-V, --version")
    .option("--profile <name>", "AWS profile (default: AWS_PROFILE or the default chain)")
    .option("--region <region>", "AWS region (default: AWS_REGION or the profile's region)")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();

  program.command("forward")
    .description("forward a local TCP port to a host:port reachable from the instance (no root)")
    .option(
      "-t, --target <target>",
      "instance: i-…, mi-…, name:<Name tag> or tag:<Key>=<Value> (default: pick from a list)",
    )
    .requiredOption("--remote-port <port>", "destination port", parsePort)
    .option("--remote-host <host>", "destination host as seen from the instance", "localhost")
    .option("-l, --local-port <port>", "local port (default: a free one)", parsePort, 0)
    .option("--bind <address>", "local address to listen on", "127.0.0.1")
    .option("--wake", "start the instance if it is stopped, and wait until it is online")
    .option(
      "--sessions <n>",
      "Port sessions (one carries ~1 MB/s): auto (add one when busy, for new connections) or 1 to 16",
      "auto",
    )
    .option("--max-sessions <n>", "with --sessions auto: the most sessions (default 4)", "4")
    .action(async (opts, cmd) => {
      const { runForward } = await import("../cli/forward.ts");
      await runForward({ ...cmd.optsWithGlobals(), ...opts });
    });

  program.command("start")
    .description(
      "route the instance's VPC (and what it reaches) through a tunnel, with its private DNS (root)",
    )
    .argument(
      "[name]",
      "a tunnel saved under tunnels: in the config (or published by the team), or a name for this one",
    )
    .option(
      "-t, --target <target>",
      "instance: i-…, mi-…, name:<Name tag> or tag:<Key>=<Value> (default: pick from a list)",
    )
    .option(
      "--cidr <cidr>",
      "IPv4 range to route through the tunnel (repeatable; default: discovered from the VPC)",
      collect,
      [],
    )
    .option("--exclude <cidr>", "leave this range out of the routes (repeatable)", collect, [])
    .option(
      "--all-traffic",
      "route everything through the VPC (also --cidr 0.0.0.0/0): every DNS name to its resolver, the LAN and the tunnel's own AWS endpoints stay outside",
    )
    .option("--no-lan", "with --all-traffic: your own network (LAN) through the tunnel too")
    .option(
      "--dns-domain <domain>",
      "private DNS domain resolved by the VPC resolver (repeatable; default: discovered)",
      collect,
      [],
    )
    .option("--no-dns", "leave DNS alone: no private domains")
    .option(
      "--dry-run",
      "print the target, routes and DNS domains with their reasons; change nothing",
    )
    .option("--config <file>", "ssm-proxy config file (default: SSM_PROXY_CONFIG or ~/.config)")
    .option(
      "--mode <mode>",
      "agent (ssm-proxy-agent on the instance), agentless (TCP and DNS, nothing installed) or auto: the agent when it answers",
      "auto",
    )
    .option(
      "--stripes <n>",
      "parallel sessions (one carries ~1 MB/s): auto (grow with the load) or a number from 1 to 16",
      (v: string) => (v.trim().toLowerCase() === "auto" ? "auto" as const : Number(v)),
      "auto" as number | "auto",
    )
    .option("--max-stripes <n>", "with --stripes auto: the most sessions (default 8)", Number, 8)
    .option(
      "--spread",
      "a name or tag matching several online instances: stripes on all of them (--stripes and --max-stripes count per instance)",
    )
    .option(
      "--dns-upstream <ip>",
      "agentless: relay DNS to this resolver first, e.g. a Route 53 Resolver inbound endpoint (repeatable)",
      collect,
      [],
    )
    .option(
      "--policy-path <path>",
      "agentless: the team's rules in Parameter Store, applied on this laptop (default /ssm-proxy/policy)",
    )
    .option(
      "--session-idle-seconds <s>",
      "agentless: close a destination's session after this long unused (default 60)",
      Number,
    )
    .option("--name <name>", "name of this tunnel, for status and stop (default: NAME or default)")
    .option("--agent-port <port>", "port of ssm-proxy-agent on the instance", parsePort, 7797)
    .option("-d, --background", "return once the tunnel is up, and keep it running")
    .option("--force", "route the CIDRs even where they conflict with local networks")
    .option("--wake", "start the instance if it is stopped, and wait until it is online")
    .option("--install-agent", "install ssm-proxy-agent if the instance lacks it or has an old one")
    .option(
      "--agent-binary <path>",
      "agent binary for --install-agent (default: next to ssm-proxy)",
    )
    .option("--keepalive-seconds <s>", "ping each session this often (0: off; default 10)", Number)
    .option(
      "--give-up-seconds <s>",
      "stop healing after this long without a session (default 600)",
      Number,
    )
    .option(
      "--max-session-seconds <s>",
      "the account's Session Manager maximum session duration",
      Number,
    )
    .action(async (name, opts, cmd) => {
      const { runStartCommand } = await import("../cli/start_saved.ts");
      const given = (k: string) =>
        cmd.getOptionValueSource(k) === "cli" ||
        program.getOptionValueSource(k) === "cli";
      await runStartCommand(name, { ...cmd.optsWithGlobals(), ...opts }, given);
    });

  program.command("stop")
    .description("stop a tunnel and undo its routes and DNS (root)")
    .argument("[name]", "tunnel name (default: the only one running)")
    .option("--all", "stop every tunnel")
    .action(async (name, opts) => {
      const { runStop } = await import("../cli/stop.ts");
      await runStop(name, opts);
    });

  program.command("status")
    .description("show running tunnels: interface, routes, DNS, sessions, traffic")
    .argument("[name]", "tunnel name")
    .option("--json", "machine-readable output")
    .action(async (name, opts) => {
      const { runStatus } = await import("../cli/status.ts");
      await runStatus(name, opts);
    });

  const eks = program.command("eks")
    .description("connect kubectl to private EKS clusters (kube-ssm-proxy's clusters.yaml)");

  eks.command("connect")
    .description(
      "describe the cluster, reach it (tunnel, port-forward or direct), write kubeconfig",
    )
    .argument("[name]", "entry of clusters.yaml (default: pick one)")
    .option("--port-forward", "forward a local port to the endpoint via the bastion (no root)")
    .option("-d, --background", "with --port-forward: keep the forward running and return")
    .option("--clusters <file>", "clusters.yaml to read (default: config, ./clusters.yaml)")
    .option("--config <file>", "ssm-proxy config file (default: SSM_PROXY_CONFIG or ~/.config)")
    .option("--bastion-tag <key=value>", "tag marking the bastion (default: Purpose=bastion)")
    .option("-t, --target <instance>", "use this instance instead of searching for the bastion")
    .option(
      "--kubeconfig <file>",
      "kubeconfig to edit (default: first of KUBECONFIG, ~/.kube/config)",
    )
    .action(async (name, opts) => {
      const { runConnect } = await import("../cli/eks.ts");
      await runConnect(name, opts);
    });

  eks.command("token")
    .description("print an ExecCredential for kubectl (what `aws eks get-token` prints)")
    .requiredOption("--cluster <name>", "EKS cluster name")
    .action(async (opts, cmd) => {
      const { runToken } = await import("../cli/eks.ts");
      await runToken({ ...cmd.optsWithGlobals(), ...opts });
    });

  eks.command("disconnect")
    .description(
      "stop port-forwards started by eks connect; mark their kubeconfig entries inactive",
    )
    .argument("[name]", "entry of clusters.yaml")
    .option("--all", "every cluster")
    .option(
      "--kubeconfig <file>",
      "kubeconfig to edit (default: first of KUBECONFIG, ~/.kube/config)",
    )
    .action(async (name, opts) => {
      const { runDisconnect } = await import("../cli/eks.ts");
      await runDisconnect(name, opts);
    });

  program.command("list-instances")
    .description(
      "list EC2 and managed (mi-) instances with their Systems Manager status (targets for --target)",
    )
    .option("--tag <key=value>", "only instances with this tag (repeatable)", collect, [])
    .option(
      "--name <name>",
      "only instances with this Name tag (* and ? wildcards; managed instances: their registration name)",
    )
    .option("--json", "machine-readable output")
    .option(
      "--agents",
      "ask each online instance's ssm-proxy-agent for its version (a session each)",
    )
    .option("--agent-port <port>", "port of ssm-proxy-agent on the instances", parsePort, 7797)
    .action(async (opts, cmd) => {
      const { runListInstances } = await import("../cli/list_instances.ts");
      await runListInstances({ ...cmd.optsWithGlobals(), ...opts });
    });

  const agent = program.command("agent")
    .description("install, inspect or remove ssm-proxy-agent on an instance, over Session Manager");

  agent.command("install")
    .description("upload ssm-proxy-agent, verify it, install and start its systemd unit")
    .requiredOption(
      "-t, --target <target>",
      "instance: i-…, mi-…, name:<Name tag> or tag:<Key>=<Value>",
    )
    .option(
      "--binary <path>",
      "the agent binary to upload (default: ssm-proxy-agent-linux-<arch> next to ssm-proxy)",
    )
    .option("--force", "upload even if the instance already has this exact binary")
    .option(
      "--parallel <n>",
      "split the upload across N shell sessions at once, 1 to 16 (one carries ~1 MB/s)",
      "4",
    )
    .option("--wake", "start the instance if it is stopped, and wait until it is online")
    .action(async (opts, cmd) => {
      const { runAgentInstall } = await import("../cli/agent.ts");
      await runAgentInstall({ ...cmd.optsWithGlobals(), ...opts });
    });

  agent.command("status")
    .description("the agent's version, whether it runs, and the tunnels it serves")
    .requiredOption(
      "-t, --target <target>",
      "instance: i-…, mi-…, name:<Name tag> or tag:<Key>=<Value>",
    )
    .option("--json", "machine-readable output")
    .action(async (opts, cmd) => {
      const { runAgentStatus } = await import("../cli/agent.ts");
      await runAgentStatus({ ...cmd.optsWithGlobals(), ...opts });
    });

  agent.command("uninstall")
    .description("stop the agent and remove its unit, binary, NAT rules and state")
    .requiredOption(
      "-t, --target <target>",
      "instance: i-…, mi-…, name:<Name tag> or tag:<Key>=<Value>",
    )
    .action(async (opts, cmd) => {
      const { runAgentUninstall } = await import("../cli/agent.ts");
      await runAgentUninstall({ ...cmd.optsWithGlobals(), ...opts });
    });

  program.command("doctor")
    .description("check credentials, permissions, the instance, the agent and this machine")
    .option("-t, --target <target>", "also check this instance, StartSession and its agent")
    .option("--agent-port <port>", "port of ssm-proxy-agent on the instance", parsePort, 7797)
    .option("--cidr <cidr>", "check this range against local routes (repeatable)", collect, [])
    .option("--no-local", "skip this machine's checks (root, /dev/net/tun, DNS)")
    .action(async (opts, cmd) => {
      const { runDoctor } = await import("../cli/doctor.ts");
      await runDoctor({ ...cmd.optsWithGlobals(), ...opts });
    });

  program.command("completion")
    .description("print the shell completion script: bash, zsh or fish (README: Shell completion)")
    .addArgument(
      program.createArgument("<shell>", "bash, zsh or fish").choices(["bash", "zsh", "fish"]),
    )
    .action(async (shell) => {
      const { printCompletion } = await import("./completion/mod.ts");
      await printCompletion(shell, program);
    });

  // What the completion scripts call on TAB for names only known at run time; never in --help.
  program.command("__complete", { hidden: true })
    .argument("[kind]")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async (kind) => {
      const { runComplete } = await import("./completion/dynamic.ts");
      await runComplete(kind);
    });

  const config = program.command("config")
    .description("ssm-proxy's config file (tunnels:, clusters:) and the team's in Parameter Store");
  const configFileOption = "ssm-proxy config file (default: SSM_PROXY_CONFIG or ~/.config)";
  const teamPathOption = "Parameter Store path of the team's entries";

  config.command("show")
    .description("the config in effect: local entries, then the team's (each marked) as YAML")
    .option("--config <file>", configFileOption)
    .option("--path <path>", teamPathOption, "/ssm-proxy")
    .option("--local", "only the config file: do not read the team's entries")
    .option("--json", "machine-readable output")
    .action(async (opts, cmd) => {
      const { runConfigShow } = await import("../cli/config.ts");
      await runConfigShow({ ...cmd.optsWithGlobals(), ...opts });
    });

  config.command("check")
    .description("validate the config file: ok, or file:line: key: problem")
    .option("--config <file>", configFileOption)
    .action(async (opts) => {
      const { runConfigCheck } = await import("../cli/config.ts");
      await runConfigCheck(opts);
    });

  config.command("publish")
    .description("share a local tunnel or cluster entry with the team (SSM Parameter Store)")
    .argument("<name>", "tunnel or cluster name in the config file")
    .option("--config <file>", configFileOption)
    .option("--path <path>", teamPathOption, "/ssm-proxy")
    .option("--kind <kind>", "tunnel or cluster, when both have that name")
    .option("--overwrite", "replace a different entry already published under that name")
    .action(async (name, opts, cmd) => {
      const { runConfigPublish, parseKind } = await import("../cli/config.ts");
      const kind = opts.kind === undefined ? undefined : parseKind(opts.kind);
      await runConfigPublish(name, { ...cmd.optsWithGlobals(), ...opts, kind });
    });

  config.command("pull")
    .description("add the team's tunnels and clusters missing from the config file (local wins)")
    .option("--config <file>", configFileOption)
    .option("--path <path>", teamPathOption, "/ssm-proxy")
    .option("--dry-run", "show what would change without writing the file")
    .action(async (opts, cmd) => {
      const { runConfigPull } = await import("../cli/config.ts");
      await runConfigPull({ ...cmd.optsWithGlobals(), ...opts });
    });

  program.command("demo")
    .description("show the whole product on this machine in network namespaces (root, Linux)")
    .option("--pacing", "pace sessions at 1 KiB/ms like the real SSM agent")
    .option(
      "--agentless",
      "nothing installed on the instance: TCP and DNS through remote-host sessions",
    )
    .option(
      "--all-traffic",
      "a full tunnel: everything, and every DNS name, through the VPC (with an internet host)",
    )
    .option("--ipv6", "a dual-stack VPC: IPv6 through the tunnel too (the agent's NAT66)")
    .action(async (opts) => {
      const { runDemo } = await import("../cli/demo.ts");
      await runDemo(opts);
    });

  program.command("emulator")
    .description(
      "run a local AWS (SSM, EC2, STS, EKS APIs and Session Manager) for tests and demos",
    )
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:4566")
    .option(
      "--fixtures <file>",
      "YAML file describing instances, VPCs, clusters and destinations to dial elsewhere",
    )
    .option("--no-pacing", "do not pace sessions at 1 KiB/ms like the real SSM agent")
    .action(async (opts) => {
      const { runEmulator } = await import("../cli/emulator.ts");
      await runEmulator(opts);
    });
  return program;
}

export function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

export function parsePort(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) {
    throw new UserError(
      `invalid port ${JSON.stringify(v)}: use a number from 0 to 65535`,
      ExitCode.Usage,
    );
  }
  return n;
}
