/**
 * The network-namespace lab (DESIGN §7): laptop(s) ──veth── instance ──veth── vpc, all in
 * namespaces this process creates and removes, so nothing is sent anywhere else.
 *
 *   laptop   lab0 10.97.X.2/30  ⇄  instance lap0 10.97.X.1/30   (laptop n: 10.97.X.4n+2 ⇄ .4n+1)
 *   instance vpc0 10.99.X.1/24  ⇄  vpc      lab0 10.99.X.10/24  (HTTP :80, DNS :53, echo :7)
 *
 * The vpc has no route back to the tunnel pool: like a real VPC it only answers the instance, so
 * the agent's masquerade is exercised. ip_forward in the instance is the agent's job.
 *
 * With `instances: 2`, a second instance (`instance2`, for `start --spread`) has its own agent
 * and uplink into the same vpc; the emulator (in `instance`) reaches that agent over a link of
 * its own, as the real SSM agent on that instance would reach its localhost:
 *
 *   instance ctl0 10.98.X.1/30  ⇄  instance2 ctl0 10.98.X.2/30   (its agent listens here)
 *   instance2 vpc0 10.99.X.2/24  ⇄  vpc lab1 (10.99.X.2/32 routed there)
 *
 * With `internet: true` (full-tunnel tests), an `inet` namespace behind the vpc holds a public
 * host, `lab.internetAddress` (203.0.113.10: whoami HTTP :80, UDP echo :7, ping); instances route
 * by default via the vpc, laptops via lab0 (a home router). Documentation ranges only, no NAT but
 * the agent's: scripts/lab/internet.ts. scripts/lab/leaks.ts counts what a laptop leaks.
 *
 * With `ipv6: true` (combinable with the above), the vpc is dual-stack (2001:db8:X::/64, the
 * instance routing by default via the vpc), holds an IPv6-only host, and the DNS has AAAA
 * records; with `internet: true` too, inet has 2001:db8:ffff::10: scripts/lab/ipv6.ts.
 *
 *   deno run -A scripts/lab.ts up [LAPTOPS] [--internet] [--ipv6]
 *                                     build a lab, print its names, keep it until Ctrl-C
 *   deno run -A scripts/lab.ts sweep  remove labs whose creating process is gone
 */
import { type ExecResult, LabProcess, must, run } from "./lab/proc.ts";
import { buildInstance2 } from "./lab/instance2.ts";
import { buildInternet, INTERNET_ADDRESS, startInternet } from "./lab/internet.ts";
import { buildIpv6, ipv6Plan, prepareIpv6 } from "./lab/ipv6.ts";
import { startServices } from "./lab/services.ts";

export { type ExecResult, LabProcess } from "./lab/proc.ts";

export type Role = "laptop" | "instance" | "instance2" | "vpc" | "inet" | `laptop${number}`;

export interface LabOptions {
  /** How many laptop namespaces (laptop, laptop2, …). Default 1. */
  laptops?: number;
  /** 2: a second instance namespace, `instance2` (see above). Default 1. */
  instances?: 1 | 2;
  /** An `inet` namespace behind the vpc and default routes towards it (see above). Default off. */
  internet?: boolean;
  /** Dual-stack vpc, IPv6-only host, AAAA records (see above). Default off. */
  ipv6?: boolean;
  /** The X in 10.97.X.0 / 10.99.X.0; default random (addresses never leave the lab anyway). */
  x?: number;
  /** Start the vpc services (default true). */
  services?: boolean;
  /** Remove the lab on SIGINT/SIGTERM and exit 130 (default true). */
  handleSignals?: boolean;
}

export interface LaptopInfo {
  role: Role;
  /** The laptop's own veth address and network (what `start` must refuse to route). */
  address: string;
  network: string;
  /** The instance's end of this laptop's veth. */
  gateway: string;
}

const ROOT_DIR = "/tmp";
const DIR_PREFIX = "ssmp-lab-";
const SCRIPT_DIR = new URL("./lab/", import.meta.url).pathname;

export class Lab {
  readonly laptops: LaptopInfo[];
  /** Where the emulator listens: the instance's end of the first laptop veth. */
  readonly instanceAddress: string;
  readonly instanceUplink = "vpc0";
  readonly instanceVpcAddress: string;
  readonly vpcNetwork: string;
  /** HTTP, DNS and echo all live here. */
  readonly serviceAddress: string;
  readonly resolver: string;
  readonly dnsTable: Record<string, string>;
  /** `instances: 2`: where the emulator reaches instance2 (its agent listens there). */
  readonly instance2Address?: string;
  readonly instance2VpcAddress?: string;
  /** `internet: true`: the public host's address (whoami HTTP :80, echo :7 UDP, ping). */
  readonly internetAddress?: string;
  /** `ipv6: true` (scripts/lab/ipv6.ts has the plan): the vpc's IPv6 subnet, uplink addresses. */
  readonly vpcNetwork6?: string;
  readonly instanceVpcAddress6?: string;
  readonly instance2VpcAddress6?: string;
  /** HTTP, DNS and echo over IPv6, as on serviceAddress. */
  readonly serviceAddress6?: string;
  /** No IPv4 at all: whoami HTTP :80 (the client's address), echo :7 UDP, ping. */
  readonly ipv6OnlyAddress?: string;
  /** `ipv6` and `internet`: the public host's IPv6 address (whoami :80, echo :7, ping). */
  readonly internetAddress6?: string;
  /** AAAA records: dualStackName (also in dnsTable) and ipv6OnlyName (AAAA only). */
  readonly dnsTable6: Record<string, string> = {};
  readonly dualStackName?: string;
  readonly ipv6OnlyName?: string;
  #procs: LabProcess[] = [];
  #destroyed = false;
  #onSignal?: () => void;

  constructor(
    readonly id: string,
    readonly x: number,
    laptops: number,
    readonly dir: string,
    readonly instances: 1 | 2 = 1,
    readonly internet = false,
    readonly ipv6 = false,
  ) {
    this.laptops = Array.from({ length: laptops }, (_, i) => ({
      role: (i === 0 ? "laptop" : `laptop${i + 1}`) as Role,
      address: `10.97.${x}.${4 * i + 2}`,
      network: `10.97.${x}.${4 * i}/30`,
      gateway: `10.97.${x}.${4 * i + 1}`,
    }));
    this.instanceAddress = `10.97.${x}.1`;
    this.instanceVpcAddress = `10.99.${x}.1`;
    this.vpcNetwork = `10.99.${x}.0/24`;
    this.serviceAddress = `10.99.${x}.10`;
    this.resolver = this.serviceAddress;
    if (instances === 2) {
      this.instance2Address = `10.98.${x}.2`;
      this.instance2VpcAddress = `10.99.${x}.2`;
    }
    if (internet) this.internetAddress = INTERNET_ADDRESS;
    if (ipv6) Object.assign(this, ipv6Plan(x, { instances, internet }));
    this.dnsTable = {
      "db.lab.internal": this.serviceAddress,
      "web.lab.internal": this.serviceAddress,
      "cache.lab.internal": `10.99.${x}.11`,
    };
  }

  /** The namespace name of a role. */
  ns(role: Role): string {
    return `ssmp-${this.id}-${role}`;
  }

  get roles(): Role[] {
    return [
      ...this.laptops.map((l) => l.role),
      "instance",
      ...(this.instances === 2 ? ["instance2" as const] : []),
      "vpc",
      ...(this.internet ? ["inet" as const] : []),
    ];
  }

  exec(role: Role, cmd: string[], env?: Record<string, string>): Promise<ExecResult> {
    return run(["ip", "netns", "exec", this.ns(role), ...cmd], env);
  }

  spawn(role: Role, cmd: string[], env: Record<string, string> = {}, label?: string): LabProcess {
    if (this.#destroyed) throw new Error("lab already destroyed");
    const p = new LabProcess(label ?? `${role}: ${cmd.slice(0, 4).join(" ")}`, [
      "ip",
      "netns",
      "exec",
      this.ns(role),
      ...cmd,
    ], env);
    this.#procs.push(p);
    return p;
  }

  /** Run a scripts/lab/probe.ts check inside `role`; see that file for the kinds. */
  async probe(
    role: Role,
    args: string[],
    timeoutMs = 5000,
  ): Promise<import("./lab/probe.ts").ProbeResult> {
    const r = await this.exec(role, [
      Deno.execPath(),
      "run",
      "-A",
      `${SCRIPT_DIR}probe.ts`,
      ...args,
    ], {
      PROBE_TIMEOUT_MS: String(timeoutMs),
    });
    const line = r.stdout.trim().split("\n").pop() ?? "";
    try {
      return JSON.parse(line);
    } catch {
      return {
        ok: false,
        ms: 0,
        detail: `probe crashed: ${(r.stderr || r.stdout).trim().slice(-300)}`,
      };
    }
  }

  /** Kill everything started in the lab (tracked or not), delete the namespaces and the dir. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    if (this.#onSignal) {
      for (const s of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(s, this.#onSignal);
    }
    await Promise.all(this.#procs.map((p) => p.stop(2000)));
    await removeNamespaces(this.id);
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** @internal */
  handleSignals(): void {
    this.#onSignal = () => {
      console.error("\nlab: interrupted, removing namespaces…");
      this.destroy().finally(() => Deno.exit(130));
    };
    for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, this.#onSignal);
  }
}

/** Build the namespaces, links and addresses; start the vpc services. Cleans up if any step fails. */
export async function createLab(opts: LabOptions = {}): Promise<Lab> {
  await sweepStaleLabs();
  const id = Array.from(
    crypto.getRandomValues(new Uint8Array(3)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  const x = opts.x ?? 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 250);
  const dir = `${ROOT_DIR}/${DIR_PREFIX}${id}`;
  await Deno.mkdir(dir, { recursive: true });
  // The owner file lets a later run remove this lab if we die without cleaning up.
  await Deno.writeTextFile(`${dir}/owner`, String(Deno.pid));
  const lab = new Lab(id, x, opts.laptops ?? 1, dir, opts.instances, opts.internet, opts.ipv6);
  if (opts.handleSignals ?? true) lab.handleSignals();
  try {
    await build(lab);
    if (opts.services ?? true) {
      await Promise.all([startServices(lab), lab.internet ? startInternet(lab) : undefined]);
    }
    return lab;
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}

async function build(lab: Lab): Promise<void> {
  const ip = (...args: string[]) => must(["ip", ...args]);
  const inNs = (role: Role, ...args: string[]) => must(["ip", "-n", lab.ns(role), ...args]);
  for (const role of lab.roles) {
    await ip("netns", "add", lab.ns(role));
    await inNs(role, "link", "set", "lo", "up");
    if (lab.ipv6) await prepareIpv6(lab, role);
    // `ip netns exec` bind-mounts /etc/netns/NS/* over /etc: each namespace gets its own
    // resolv.conf, so what the product does to DNS never reaches this machine's.
    await Deno.mkdir(`/etc/netns/${lab.ns(role)}`, { recursive: true });
    await Deno.writeTextFile(
      `/etc/netns/${lab.ns(role)}/resolv.conf`,
      `# ${lab.ns(role)}: the lab's own resolv.conf\nnameserver 192.0.2.53\n`,
    );
  }
  for (const [i, l] of lab.laptops.entries()) {
    const peer = `lap${i}`;
    await ip(
      "link",
      "add",
      "name",
      "lab0",
      "netns",
      lab.ns(l.role),
      "type",
      "veth",
      "peer",
      "name",
      peer,
      "netns",
      lab.ns("instance"),
    );
    await inNs(l.role, "addr", "add", `${l.address}/30`, "dev", "lab0");
    await inNs("instance", "addr", "add", `${l.gateway}/30`, "dev", peer);
    await inNs(l.role, "link", "set", "lab0", "up");
    await inNs("instance", "link", "set", peer, "up");
    // Later laptops reach the emulator (on the first laptop's veth) through the instance.
    if (i > 0) await inNs(l.role, "route", "add", `${lab.instanceAddress}/32`, "via", l.gateway);
  }
  await ip(
    "link",
    "add",
    "name",
    lab.instanceUplink,
    "netns",
    lab.ns("instance"),
    "type",
    "veth",
    "peer",
    "name",
    "lab0",
    "netns",
    lab.ns("vpc"),
  );
  await inNs("instance", "addr", "add", `${lab.instanceVpcAddress}/24`, "dev", lab.instanceUplink);
  await inNs("vpc", "addr", "add", `${lab.serviceAddress}/24`, "dev", "lab0");
  await inNs("instance", "link", "set", lab.instanceUplink, "up");
  await inNs("vpc", "link", "set", "lab0", "up");
  if (lab.instances === 2) await buildInstance2(lab);
  if (lab.internet) await buildInternet(lab);
  if (lab.ipv6) await buildIpv6(lab);
}

/** Poll until something in `role` listens on TCP `port` (any address). */
export function waitForTcp(
  lab: Lab,
  role: Role,
  port: number,
  timeoutMs = 15_000,
  exited?: LabProcess,
): Promise<void> {
  return waitForListen(lab, role, "-Hltn", port, timeoutMs, exited);
}

/** Poll until a UDP socket in `role` is bound to `port`. */
export function waitForUdp(
  lab: Lab,
  role: Role,
  port: number,
  timeoutMs = 15_000,
  exited?: LabProcess,
): Promise<void> {
  return waitForListen(lab, role, "-Hlun", port, timeoutMs, exited);
}

async function waitForListen(
  lab: Lab,
  role: Role,
  flags: string,
  port: number,
  timeoutMs: number,
  proc?: LabProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const r = await lab.exec(role, ["ss", flags, "sport", "=", `:${port}`]);
    if (r.success && r.stdout.trim() !== "") return;
    if (proc?.exited) {
      throw new Error(`${proc.label} exited before listening on ${port}:\n${proc.tail()}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `nothing listens on ${role} port ${port} after ${timeoutMs} ms${
          proc ? `:\n${proc.tail()}` : ""
        }`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Kill every process still inside a lab's namespaces, then delete them. */
async function removeNamespaces(id: string): Promise<void> {
  const list = await run(["ip", "netns", "list"]);
  const names = list.stdout.split("\n").map((l) => l.split(" ")[0]).filter((n) =>
    n.startsWith(`ssmp-${id}-`)
  );
  for (const ns of names) {
    const pids = (await run(["ip", "netns", "pids", ns])).stdout.split(/\s+/).filter(Boolean);
    for (const pid of pids) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch { /* gone */ }
    }
  }
  for (const ns of names) {
    await run(["ip", "netns", "del", ns]);
    await Deno.remove(`/etc/netns/${ns}`, { recursive: true }).catch(() => {});
  }
}

/** Remove labs left by runs that died (their owner pid is gone). */
export async function sweepStaleLabs(): Promise<string[]> {
  const removed: string[] = [];
  for await (const e of Deno.readDir(ROOT_DIR)) {
    if (!e.isDirectory || !e.name.startsWith(DIR_PREFIX)) continue;
    const id = e.name.slice(DIR_PREFIX.length);
    const owner = Number(await Deno.readTextFile(`${ROOT_DIR}/${e.name}/owner`).catch(() => "0"));
    if (owner === Deno.pid || (owner && pidAlive(owner))) continue;
    await removeNamespaces(id);
    await Deno.remove(`${ROOT_DIR}/${e.name}`, { recursive: true }).catch(() => {});
    removed.push(id);
  }
  return removed;
}

function pidAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.split(") ")[1]?.[0] !== "Z";
  } catch {
    return false;
  }
}

if (import.meta.main) {
  const cmd = Deno.args[0] ?? "up";
  if (cmd === "sweep") {
    const ids = await sweepStaleLabs();
    console.log(ids.length ? `removed labs ${ids.join(", ")}` : "no stale labs");
  } else if (cmd === "up") {
    const lab = await createLab({
      laptops: Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? "1"),
      internet: Deno.args.includes("--internet"),
      ipv6: Deno.args.includes("--ipv6"),
    });
    console.log(`lab ${lab.id} up: namespaces ${lab.roles.map((r) => lab.ns(r)).join(", ")}`);
    console.log(
      `services at ${lab.serviceAddress}; emulator address would be ${lab.instanceAddress}`,
    );
    console.log(`try: ip netns exec ${lab.ns("vpc")} curl -s http://${lab.serviceAddress}/`);
    console.log("Ctrl-C removes it.");
    await new Promise(() => {});
  } else {
    console.error("usage: lab.ts [up [LAPTOPS] [--internet] [--ipv6] | sweep]");
    Deno.exit(2);
  }
}
