/**
 * State files of running tunnels (DESIGN §4 "State"): one JSON file per tunnel name, so
 * `status` and `stop` work across processes and a crashed run is cleaned up by the next command.
 */
import type { DnsState, PinRoute } from "../net/types.ts";
import type { TunnelStats } from "./client.ts";
import type { AgentlessState } from "../netstack/tunnel.ts";

export interface TunnelState {
  name: string;
  pid: number;
  startedAt: string;
  updatedAt: string;
  status: "connecting" | "up" | "healing" | "down";
  /** How packets travel (absent in state files from before agentless mode: the agent). */
  mode?: "agent" | "agentless";
  target: { instanceId: string; name?: string };
  interface: string;
  address: string;
  peer: string;
  /** The tunnel's IPv6 address, when it carries IPv6. */
  address6?: string;
  cidrs: string[];
  /** Routes this process added (removed on stop). */
  routes: string[];
  /** Full tunnel: the routes that keep its own endpoints off the tunnel (removed after `routes`). */
  pins?: PinRoute[];
  dns: DnsState;
  /** Domains sent to the VPC resolver, and that resolver (absent: DNS untouched). */
  domains?: string[];
  resolver?: string;
  sessions: string[];
  stats?: TunnelStats & { upBps: number; downBps: number };
  lastError?: string;
  /**
   * Agent mode: what the agent made of this client's IAM identity: the ARN it verified, "not
   * verified: <why>", or "agent does not check identities" (tunnel/identity.ts).
   */
  identity?: string;
  /** Agentless mode: connections and what was refused locally (UDP, ICMP). */
  agentless?: AgentlessState;
  /** Healing so far (DESIGN §4): resumes + new sessions, time spent healing. */
  health?: {
    reconnects: number;
    healingMs: number;
    /** Known maximum session duration, configured or learned from a channel_closed. */
    maxSessionMs?: number;
  };
}

export function stateDir(): string {
  return Deno.env.get("SSM_PROXY_STATE_DIR") ??
    (Deno.build.os === "linux" ? "/run/ssm-proxy" : "/var/run/ssm-proxy");
}

const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export function validName(name: string): boolean {
  return NAME_RE.test(name);
}

function file(name: string): string {
  return `${stateDir()}/${name}.json`;
}

/** Written atomically (temp file + rename), readable by root only. */
export async function writeState(s: TunnelState): Promise<void> {
  await Deno.mkdir(stateDir(), { recursive: true, mode: 0o755 });
  const tmp = `${file(s.name)}.${s.pid}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(s, null, 2) + "\n", { mode: 0o644 });
  await Deno.rename(tmp, file(s.name));
}

export async function readState(name: string): Promise<TunnelState | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(file(name))) as TunnelState;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof SyntaxError) return undefined; // half-written by a crash: treat as gone
    throw e;
  }
}

export async function listStates(): Promise<TunnelState[]> {
  const out: TunnelState[] = [];
  try {
    for await (const e of Deno.readDir(stateDir())) {
      if (!e.isFile || !e.name.endsWith(".json")) continue;
      const name = e.name.slice(0, -5);
      // Only tunnels' files: other things kept here (DNS backups) are not states.
      if (!validName(name)) continue;
      const s = await readState(name);
      if (s && s.name === name && typeof s.pid === "number") out.push(s);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export async function removeState(name: string): Promise<void> {
  try {
    await Deno.remove(file(name));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** Is the process that wrote this state still running? */
export function alive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  if (Deno.build.os === "linux") {
    try {
      // A zombie (killed, not yet reaped) no longer holds the tun: count it as dead.
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      return stat.split(") ")[1]?.[0] !== "Z";
    } catch {
      return false;
    }
  }
  try {
    Deno.kill(pid, "SIGURG"); // ignored by default: a harmless existence probe
    return true;
  } catch {
    return false;
  }
}
