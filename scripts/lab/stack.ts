/**
 * The product inside a lab: the emulator (standing in for AWS and the SSM agent) and
 * ssm-proxy-agent in `instance`, `ssm-proxy` commands in a laptop. Everything runs from the
 * source tree (`deno run -A main.ts`), so the demo and tests exercise the code as checked out.
 */
import type { ExecResult, Lab, LabProcess, Role } from "../lab.ts";
import { waitForTcp } from "../lab.ts";
import { V8_FLAGS } from "../../src/runtime.ts";

export const REPO = new URL("../../", import.meta.url).pathname;
export const EMULATOR_PORT = 4566;
export const AGENT_PORT = 7797;

export function ssmProxyArgv(args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", `--v8-flags=${V8_FLAGS}`, `${REPO}main.ts`, ...args];
}

export function agentArgv(args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", `--v8-flags=${V8_FLAGS}`, `${REPO}agent/main.ts`, ...args];
}

/** Where a laptop's tunnels keep state: per laptop, so two laptops do not see each other. */
export function stateDir(lab: Lab, role: Role): string {
  return `${lab.dir}/state-${role}`;
}

/** The laptop's environment: the emulator as AWS, dummy credentials, no metadata lookups. */
export function clientEnv(lab: Lab, role: Role): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: `http://${lab.instanceAddress}:${EMULATOR_PORT}`,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "AKIDLAB",
    AWS_SECRET_ACCESS_KEY: "lab-secret",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_CONFIG_FILE: "/nonexistent/aws-config",
    AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/aws-credentials",
    AWS_PROFILE: "",
    SSM_PROXY_STATE_DIR: stateDir(lab, role),
    NO_COLOR: "1",
    // `deno run`'s own update check would look up dl.deno.land through the laptop's DNS (a
    // compiled ssm-proxy has none): tests that count what the laptop asks would see it.
    DENO_NO_UPDATE_CHECK: "1",
  };
}

export async function startEmulator(
  lab: Lab,
  o: { pacing?: boolean; fixtures?: string; env?: Record<string, string> } = {},
): Promise<LabProcess> {
  const args = ["emulator", "--listen", `${lab.instanceAddress}:${EMULATOR_PORT}`];
  if (!o.pacing) args.push("--no-pacing");
  if (o.fixtures) args.push("--fixtures", o.fixtures);
  // The emulated SSM agent's shell sessions inherit this environment, as the real one's do.
  const p = lab.spawn("instance", ssmProxyArgv(args), { NO_COLOR: "1", ...o.env }, "emulator");
  await waitForTcp(lab, "instance", EMULATOR_PORT, 30_000, p);
  return p;
}

/**
 * Agent config: NAT out of the vpc veth, the lab resolver handed to clients. instance2's agent
 * listens where the emulator reaches it and hands out addresses from another pool, so a spread
 * tunnel's flows there really are rewritten to a second address.
 */
export function agentConfig(
  lab: Lab,
  extra = "",
  role: "instance" | "instance2" = "instance",
): string {
  const second = role === "instance2";
  return [
    `listen: ${second ? lab.instance2Address : "127.0.0.1"}:${AGENT_PORT}`,
    `pool: ${second ? "100.65.0.0/16" : "100.64.0.0/16"}`,
    `uplink: ${lab.instanceUplink}`,
    `resolver: ${lab.resolver}`,
    "nat: auto",
    "leaseGraceSeconds: 5",
    // Not the host's /run/ssm-proxy-agent: the lab keeps everything in its own directory.
    `runtimeDir: ${lab.dir}/run${second ? "2" : ""}`,
    extra,
  ].join("\n") + "\n";
}

/**
 * The agent's view of AWS: the emulator, as an instance in a real VPC reaches STS. Clients sign
 * their identity proofs for their own endpoint (the emulator), and an agent takes plain http only
 * to an endpoint it was configured with.
 */
export function instanceAwsEnv(lab: Lab): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: `http://${lab.instanceAddress}:${EMULATOR_PORT}`,
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
  };
}

/** `env`: over instanceAwsEnv, e.g. credentials for the agent's Parameter Store reads. */
export async function startAgent(
  lab: Lab,
  extraConfig = "",
  role: "instance" | "instance2" = "instance",
  env: Record<string, string> = {},
): Promise<LabProcess> {
  const file = `${lab.dir}/agent${role === "instance2" ? "2" : ""}.yaml`;
  await Deno.writeTextFile(file, agentConfig(lab, extraConfig, role));
  const p = lab.spawn(
    role,
    agentArgv(["serve", "--config", file]),
    { NO_COLOR: "1", ...instanceAwsEnv(lab), ...env },
    role === "instance" ? "agent" : "agent2",
  );
  await waitForTcp(lab, role, AGENT_PORT, 30_000, p);
  return p;
}

/** The second lab instance's id (spreadFixtures). */
export const INSTANCE2_ID = "i-0123456789abcdef1";

/**
 * Emulator fixtures with two instances named bastion (a lab with `instances: 2`): the default
 * one, and instance2, whose Port sessions dial its agent across the ctl0 link. Returns the path.
 */
export async function spreadFixtures(lab: Lab): Promise<string> {
  if (!lab.instance2Address) throw new Error("spreadFixtures needs createLab({ instances: 2 })");
  const file = `${lab.dir}/spread-fixtures.yaml`;
  await Deno.writeTextFile(
    file,
    [
      "instances:",
      "  - { id: i-0123456789abcdef0, name: bastion, tags: { Purpose: bastion } }",
      `  - id: ${INSTANCE2_ID}`,
      "    name: bastion",
      "    tags: { Purpose: bastion }",
      `    privateIp: ${lab.instance2VpcAddress}`,
      `    destinations: { "127.0.0.1:${AGENT_PORT}": "${lab.instance2Address}:${AGENT_PORT}" }`,
      "",
    ].join("\n"),
  );
  return file;
}

/** Run one `ssm-proxy` command in a laptop to completion. */
export function ssmProxy(
  lab: Lab,
  role: Role,
  args: string[],
  env: Record<string, string> = {},
): Promise<ExecResult> {
  return lab.exec(role, ssmProxyArgv(args), { ...clientEnv(lab, role), ...env });
}

export interface TunnelStatus {
  name: string;
  pid: number;
  status: string;
  mode?: "agent" | "agentless";
  agentless?: { connections: number; refusedUdp: number; refusedOther: number; dnsQueries: number };
  target: { instanceId: string; name?: string };
  interface: string;
  address: string;
  peer: string;
  cidrs: string[];
  routes: string[];
  sessions: string[];
  lastError?: string;
}

/** `status NAME --json`; undefined when it is not running. */
export async function tunnelStatus(
  lab: Lab,
  role: Role,
  name: string,
): Promise<TunnelStatus | undefined> {
  const r = await ssmProxy(lab, role, ["status", name, "--json"]);
  try {
    const doc = JSON.parse(r.stdout) as { tunnels?: TunnelStatus[] };
    return doc.tunnels?.find((t) => t.name === name);
  } catch {
    return undefined;
  }
}

export interface StartedTunnel {
  proc: LabProcess;
  status: TunnelStatus;
  /** Milliseconds from spawn to `status` reporting up. */
  ms: number;
}

/**
 * `ssm-proxy start` in the foreground (so tests can signal it), then wait until `status --json`
 * says up. Throws with the command's output if it exits first or takes too long.
 */
export async function startTunnel(
  lab: Lab,
  role: Role,
  o: {
    name: string;
    cidrs: string[];
    target?: string;
    extra?: string[];
    timeoutMs?: number;
    /** Over clientEnv: e.g. another identity's credentials. */
    env?: Record<string, string>;
  },
): Promise<StartedTunnel> {
  const t0 = performance.now();
  const args = ["start", "--target", o.target ?? "name:bastion", "--name", o.name];
  for (const c of o.cidrs) args.push("--cidr", c);
  const proc = lab.spawn(
    role,
    ssmProxyArgv([...args, ...(o.extra ?? [])]),
    { ...clientEnv(lab, role), ...o.env },
    `start ${o.name}`,
  );
  const deadline = Date.now() + (o.timeoutMs ?? 45_000);
  while (true) {
    const s = await tunnelStatus(lab, role, o.name);
    if (s?.status === "up") return { proc, status: s, ms: performance.now() - t0 };
    if (proc.exited) {
      throw new Error(
        `ssm-proxy start ${o.name} exited (${(await proc.status).code}) before up:\n${proc.tail()}`,
      );
    }
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(
        `tunnel ${o.name} not up after ${
          o.timeoutMs ?? 45_000
        } ms (status ${s?.status}):\n${proc.tail()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Interfaces, routes and nft rules of a namespace, for "nothing left behind" checks. */
export async function footprint(
  lab: Lab,
  role: Role,
): Promise<{ links: string[]; routes: string[]; nft: string }> {
  const links = (await lab.exec(role, ["ip", "-o", "link", "show"])).stdout.trim().split("\n")
    .map((l) => l.split(":")[1]?.trim().split("@")[0] ?? "").filter(Boolean).sort();
  const routes = (await lab.exec(role, ["ip", "-4", "route", "show"])).stdout.trim().split("\n")
    .filter(Boolean);
  const nftr = await lab.exec(role, ["nft", "list", "ruleset"]);
  return { links, routes, nft: nftr.success ? nftr.stdout.trim() : "" };
}

/** Names of state files left in a laptop's state dir. */
export async function stateFiles(lab: Lab, role: Role): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(stateDir(lab, role))) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}
