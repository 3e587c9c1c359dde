/**
 * The status file (`<runtimeDir>/status.json`): what a running agent is doing, for
 * `ssm-proxy-agent status` and so for `ssm-proxy agent status`, which runs it on the instance.
 * A file rather than a socket: reading it needs no connection to the daemon and works while the
 * daemon is busy or wedged; the pid in it tells a live agent from a crashed one.
 *
 * Written atomically (temp file + rename), at most once a second and only when something changed,
 * plus at once when a tunnel connects or disconnects; removed on a clean stop. World-readable
 * (mode 0644, so `ssm-proxy-agent status` needs no root), as it holds no secrets: tunnel ids are
 * cut short (a full id would let anyone on the instance join a tunnel whose client is not
 * verified), and a principal's ARN names it without granting anything.
 */
import type { AccessStatus } from "./access.ts";
import { UserError } from "../src/errors.ts";
import type { AgentStats } from "./stats.ts";
import { shortId, type Tunnel } from "./tunnels.ts";

export { SHOWN_ID_CHARS } from "./tunnels.ts";

export const STATUS_FILE = "status.json";
export const DEFAULT_RUNTIME_DIR = "/run/ssm-proxy-agent";
const FILE_MODE = 0o644;

/** --runtime-dir, else the config's runtimeDir, else systemd's $RUNTIME_DIRECTORY, else /run. */
export function resolveRuntimeDir(flag?: string, configured?: string): string {
  return flag ?? configured ?? (Deno.env.get("RUNTIME_DIRECTORY")?.split(":")[0] ||
    DEFAULT_RUNTIME_DIR);
}

export interface TunnelStatus {
  /** The first SHOWN_ID_CHARS hex digits of the tunnel id. */
  id: string;
  address: string;
  /** Present while the tunnel has IPv6. */
  address6?: string;
  /** Stripes the client asked for, and how many are connected now (0: in its lease grace). */
  stripes: number;
  stripesConnected: number;
  connectedAt: string | null;
  disconnectedAt: string | null;
  /** Client → VPC bytes written to the tun; VPC → client bytes queued to the client. */
  bytesIn: number;
  bytesOut: number;
  /** The caller ARN STS vouched for; null: not verified (absent: an agent before identities). */
  principal?: string | null;
  /** Client packets its policy refused. */
  denied?: number;
}

export interface IdleStopStatus {
  afterSeconds: number;
  command: string[];
  /** Since when no tunnel is connected; null while one is. */
  idleSince: string | null;
  /** When the command last ran; null if never. */
  ranAt: string | null;
}

export interface AgentStatus {
  schema: 1;
  version: string;
  pid: number;
  /** The process's start time (/proc/<pid>/stat, clock ticks since boot): a reused pid ≠ us. */
  pidStartTime: number | null;
  startedAt: string;
  updatedAt: string;
  listen: string;
  tun: string;
  address: string;
  pool: string;
  /** The tun's IPv6 address and pool6, or why IPv6 is off (absent: an agent before IPv6). */
  ipv6?: { address: string; pool: string } | { off: string };
  nat: "nft" | "iptables" | "off";
  stateDir: string | null;
  tunnelCount: number;
  connectedTunnels: number;
  tunnels: TunnelStatus[];
  idleStop: IdleStopStatus | null;
  /** Rules in force, Parameter Store's part, the audit trail (absent: an agent before them). */
  access?: AccessStatus;
  counters: AgentStats;
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export function tunnelStatus(t: Tunnel): TunnelStatus {
  return {
    id: shortId(t.id),
    address: t.addressText,
    ...(t.address6 ? { address6: t.address6Text } : {}),
    stripes: t.stripeCount,
    stripesConnected: t.stripes.size,
    connectedAt: iso(t.connectedAt),
    disconnectedAt: iso(t.disconnectedAt),
    bytesIn: t.bytesIn,
    bytesOut: t.bytesOut,
    principal: t.principal?.arn ?? null,
    denied: t.denied,
  };
}

/** Field 22 of /proc/<pid>/stat; undefined off Linux or when the process is gone. */
export function processStartTime(pid: number | "self"): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name (field 2) may hold spaces and parentheses: count from the last ")".
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (rest[0] === "Z") return undefined; // a zombie is dead for our purposes
    const t = Number(rest[19]);
    return Number.isFinite(t) ? t : undefined;
  } catch {
    return undefined;
  }
}

/** Is the agent that wrote `s` still running (same pid, same process)? */
export function isAlive(s: Pick<AgentStatus, "pid" | "pidStartTime">): boolean {
  const t = processStartTime(s.pid);
  return t !== undefined && (s.pidStartTime === null || s.pidStartTime === t);
}

export type StatusRead =
  | { state: "running"; path: string; status: AgentStatus }
  | { state: "stale"; path: string; status: AgentStatus }
  | { state: "absent"; path: string };

export async function readStatus(dir: string): Promise<StatusRead> {
  const path = `${dir}/${STATUS_FILE}`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { state: "absent", path };
    throw new UserError(`cannot read ${path}: ${(e as Error).message}`);
  }
  let status: AgentStatus;
  try {
    status = JSON.parse(text);
    if (typeof status?.pid !== "number") throw new Error("no pid");
  } catch (e) {
    throw new UserError(`${path} is not an agent status file: ${(e as Error).message}`);
  }
  return { state: isAlive(status) ? "running" : "stale", path, status };
}

/** Keeps status.json current while the agent serves. */
export class StatusFile {
  readonly path: string;
  #build: () => Omit<AgentStatus, "updatedAt">;
  #log: (line: string) => void;
  #timer?: ReturnType<typeof setInterval>;
  #writing?: Promise<void>;
  #again = false;
  #last = "";
  #failing = false;
  #stopped = false;

  constructor(
    readonly dir: string,
    build: () => Omit<AgentStatus, "updatedAt">,
    log: (line: string) => void,
    readonly intervalMs = 1000,
  ) {
    this.path = `${dir}/${STATUS_FILE}`;
    this.#build = build;
    this.#log = log;
  }

  start(): void {
    this.changed();
    this.#timer = setInterval(() => this.changed(), this.intervalMs);
  }

  /** Write now if the content changed; calls during a write collapse into one more write. */
  changed(): void {
    if (this.#stopped) return;
    if (this.#writing) {
      this.#again = true;
      return;
    }
    this.#writing = this.#write().finally(() => {
      this.#writing = undefined;
      if (this.#again) {
        this.#again = false;
        this.changed();
      }
    });
  }

  /** Stop updating and remove the file, unless another agent has written it since. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    while (this.#writing) await this.#writing;
    try {
      const s = JSON.parse(await Deno.readTextFile(this.path)) as AgentStatus;
      if (s.pid === Deno.pid) await Deno.remove(this.path);
    } catch { /* already gone or unreadable: nothing of ours to remove */ }
  }

  async #write(): Promise<void> {
    const doc = this.#build();
    const key = JSON.stringify(doc);
    if (key === this.#last) return;
    const tmp = `${this.path}.${Deno.pid}.tmp`;
    try {
      await Deno.mkdir(this.dir, { recursive: true, mode: 0o755 });
      const text = JSON.stringify({ ...doc, updatedAt: new Date().toISOString() }, null, 2);
      await Deno.writeTextFile(tmp, text + "\n", { mode: FILE_MODE });
      // The mode above only applies to a new file (a temp file left by a crash keeps its own).
      await Deno.chmod(tmp, FILE_MODE);
      await Deno.rename(tmp, this.path);
      this.#last = key;
      if (this.#failing) this.#log(`status: writing ${this.path} works again`);
      this.#failing = false;
    } catch (e) {
      // Once per failure spell, not once a second.
      if (!this.#failing) this.#log(`status: cannot write ${this.path}: ${(e as Error).message}`);
      this.#failing = true;
    }
  }
}
