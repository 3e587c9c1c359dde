/**
 * `ssm-proxy-agent status [--json]`: reads status.json (status.ts), checks that the agent that
 * wrote it still runs, and prints a summary or JSON. Exit status, stable for installers and
 * `ssm-proxy agent status`: 0 running; 3 not running (no status file, or a stale one left by an
 * agent that is gone); 1 the file cannot be read; 2 usage.
 *
 * --json prints one object on one line either way:
 *   running:     { "running": true, "statusFile": PATH, ...the AgentStatus fields }
 *   not running: { "running": false, "statusFile": PATH, "reason": "absent" | "stale",
 *                  "pid"?: N (stale only) }
 */
import { fmtBytes, fmtDuration } from "../src/format.ts";
import type { AgentStatus, TunnelStatus } from "./status.ts";
import type { AccessStatus } from "./access.ts";
import { readStatus } from "./status.ts";

export const EXIT_NOT_RUNNING = 3;

export async function showStatus(dir: string, json: boolean): Promise<number> {
  const st = await readStatus(dir);
  if (st.state !== "running") {
    const pid = st.state === "stale" ? st.status.pid : undefined;
    if (json) {
      console.log(JSON.stringify({ running: false, statusFile: st.path, reason: st.state, pid }));
    } else {
      console.log(
        st.state === "absent"
          ? `ssm-proxy-agent is not running (no status file ${st.path})`
          : `ssm-proxy-agent is not running (stale status file ${st.path}: pid ${pid} is gone)`,
      );
    }
    return EXIT_NOT_RUNNING;
  }
  console.log(
    json
      ? JSON.stringify({ running: true, statusFile: st.path, ...st.status })
      : summary(st.status),
  );
  return 0;
}

export function summary(s: AgentStatus, now = Date.now()): string {
  const since = (iso: string | null) => (iso ? fmtDuration(now - Date.parse(iso)) : "?");
  const grace = s.tunnelCount - s.connectedTunnels;
  const lines = [
    `ssm-proxy-agent ${s.version} is running (pid ${s.pid}, up ${since(s.startedAt)})`,
    `listening on ${s.listen}; tun ${s.tun} ${s.address} (pool ${s.pool}), NAT ${s.nat}`,
  ];
  if (s.ipv6) {
    lines.push(
      "off" in s.ipv6
        ? `ipv6: off (${s.ipv6.off})`
        : `ipv6: tun ${s.ipv6.address} (pool ${s.ipv6.pool})`,
    );
  }
  lines.push(
    `tunnels: ${s.connectedTunnels} connected` + (grace ? `, ${grace} in lease grace` : ""),
  );
  const principals = principalsOf(s.tunnels);
  if (principals) lines.push(`principals: ${principals}`);
  for (const t of s.tunnels) {
    lines.push(
      `  ${t.id}  ${t.address}${t.address6 ? ` ${t.address6}` : ""}  ` +
        `${t.stripesConnected}/${t.stripes} stripes  ` +
        (t.connectedAt
          ? `up ${since(t.connectedAt)}`
          : `disconnected ${since(t.disconnectedAt)} ago`) +
        `  in ${fmtBytes(t.bytesIn)}  out ${fmtBytes(t.bytesOut)}` +
        (t.denied ? `  denied ${t.denied}` : "") +
        (t.principal === undefined ? "" : `  ${t.principal ?? "unverified"}`),
    );
  }
  if (s.access) lines.push(...accessLines(s.access, since));
  const i = s.idleStop;
  lines.push(
    !i
      ? "idle stop: off"
      : `idle stop: after ${fmtDuration(i.afterSeconds * 1000)} (${i.command.join(" ")}); ` +
        (i.idleSince ? `idle for ${since(i.idleSince)}` : "not idle") +
        (i.ranAt ? `; ran ${since(i.ranAt)} ago` : ""),
  );
  lines.push(
    `counters: ${Object.entries(s.counters).map(([k, v]) => `${k}=${v}`).join(" ")}`,
  );
  return lines.join("\n");
}

/** The rules in force, Parameter Store's part (and its trouble), the audit trail. */
function accessLines(a: AccessStatus, since: (iso: string | null) => string): string[] {
  const out = [
    `policy: ${a.rules} rule${a.rules === 1 ? "" : "s"}` +
    (a.requireIdentity ? ", a verified identity required" : ""),
  ];
  const st = a.store;
  if (st) {
    const read = st.loadedAt ? `, read ${since(st.loadedAt)} ago` : "";
    out.push(
      st.error
        ? `  Parameter Store ${st.path}: ${st.error}; keeping the last good rules (${st.rules})${read}`
        : `  Parameter Store ${st.path}: ${st.rules} rule${st.rules === 1 ? "" : "s"} from ` +
          `${st.parameters} parameter${st.parameters === 1 ? "" : "s"}${read}`,
    );
  }
  const au = a.audit;
  out.push(
    au
      ? `audit: ${
        au.to === "file" ? au.path : "journal"
      }, ${au.lines} lines, ${au.flows} open flows` +
        (au.evicted ? `, ${au.evicted} ended early (table full)` : "")
      : "audit: off",
  );
  return out;
}

/**
 * Who the connected tunnels belong to, with how many each and their denied packets; undefined
 * from an agent before identities.
 */
function principalsOf(tunnels: TunnelStatus[]): string | undefined {
  const live = tunnels.filter((t) => t.stripesConnected > 0 && t.principal !== undefined);
  if (!live.length) return undefined;
  const count = new Map<string, { tunnels: number; denied: number }>();
  // The unverified last, whatever the order they connected in.
  const ordered = [...live.filter((t) => t.principal), ...live.filter((t) => !t.principal)];
  for (const t of ordered) {
    const c = count.get(t.principal ?? "unverified") ?? { tunnels: 0, denied: 0 };
    c.tunnels++;
    c.denied += t.denied ?? 0;
    count.set(t.principal ?? "unverified", c);
  }
  return [...count].map(([who, c]) =>
    `${who} (${c.tunnels} tunnel${c.tunnels === 1 ? "" : "s"}` +
    (c.denied ? `, denied ${c.denied})` : ")")
  ).join(", ");
}
