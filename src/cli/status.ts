/** `ssm-proxy status`: what runs, read from state files (no root needed to read). */
import { ExitCode, UserError } from "../errors.ts";
import { alive, listStates, type TunnelState } from "../tunnel/state.ts";
import { deniedText } from "../tunnel/denials.ts";
import { fmtBytes, fmtDuration } from "../format.ts";
import { liveText } from "./live.ts";
import { cleanupStale, recoverLeftovers } from "../tunnel/stale.ts";

export async function runStatus(name: string | undefined, o: { json?: boolean }): Promise<void> {
  await recoverLeftovers();
  let states = await listStates();
  const stale = states.filter((s) => !alive(s.pid));
  if (stale.length && Deno.uid() === 0) { for (const s of stale) await cleanupStale(s); }
  states = states.filter((s) => alive(s.pid));
  if (name) {
    states = states.filter((s) => s.name === name);
    if (!states.length) {
      if (o.json) console.log(JSON.stringify({ tunnels: [] }));
      throw new UserError(`no tunnel named "${name}" is running`, ExitCode.Failure);
    }
  }
  if (o.json) {
    console.log(JSON.stringify({ tunnels: states }, null, 2));
    return;
  }
  if (!states.length) {
    console.log("no tunnel is running");
    return;
  }
  for (const s of states) console.log(describe(s));
}

function modeText(s: TunnelState): string {
  if (s.mode !== "agentless") return "agent (ssm-proxy-agent on the instance)";
  const a = s.agentless;
  if (!a) return "agentless: TCP and DNS";
  return `agentless: TCP and DNS; ${a.connections} connection${
    a.connections === 1 ? "" : "s"
  } over ${a.sessions} session${a.sessions === 1 ? "" : "s"}, ${a.dnsQueries} DNS quer${
    a.dnsQueries === 1 ? "y" : "ies"
  }${
    a.dnsUpstream ? ` via ${a.dnsUpstream}` : ""
  }; not carried: ${a.refusedUdp} UDP, ${a.refusedOther} ICMP/other${
    a.refusedTcp ? `; ${a.refusedTcp} TCP refused at the destination` : ""
  }${a.refusedPolicy ? `; ${a.refusedPolicy} refused by the team's policy` : ""}`;
}

/** Which domains go where, and how: what a user asks when a name does not resolve. */
function dnsText(s: TunnelState): string {
  if (s.dns.kind === "none") return "not configured";
  const how = s.dns.kind === "systemd-resolved"
    ? `systemd-resolved on ${s.dns.items.join(", ")}`
    : s.dns.kind === "resolv-conf"
    ? "/etc/resolv.conf -> ssm-proxy's forwarder"
    : `${s.dns.kind}: ${s.dns.items.join(", ")}`;
  return s.domains?.length
    ? `${s.domains.join(", ")} -> ${s.resolver ?? "the VPC resolver"} (${how})`
    : how;
}

/** Spread: one line per instance, its address (the tun's is the first's) and stripes. */
function instanceLines(st: TunnelState["stats"]): string[] {
  return (st?.instances ?? []).map((i, n) =>
    `  ${
      n === 0 ? "instances " : "          "
    } ${i.instanceId} ${i.address}: ${i.stripesUp} up of ${i.stripesOpen} stripes, received ${
      fmtBytes(i.bytesIn)
    }, sent ${fmtBytes(i.bytesOut)}`
  );
}

/** The live line, without the denials its own line already shows. */
function nowText(s: TunnelState): string {
  if (!s.stats?.denied) return liveText(s);
  const { denied: _, deniedLast: __, ...stats } = s.stats;
  return liveText({ ...s, stats });
}

export function describe(s: TunnelState): string {
  const st = s.stats;
  return [
    `${s.name}: ${s.status}, pid ${s.pid}, up ${fmtDuration(Date.now() - Date.parse(s.startedAt))}`,
    `  target     ${s.target.instanceId}${s.target.name ? ` (${s.target.name})` : ""}`,
    `  mode       ${modeText(s)}`,
    `  interface  ${s.interface} ${s.address} -> ${s.peer}${s.address6 ? `, ${s.address6}` : ""}`,
    `  routes     ${s.cidrs.join(", ")}`,
    `  dns        ${dnsText(s)}`,
    `  sessions   ${s.sessions.join(", ")}`,
    s.identity ? `  identity   ${s.identity}` : "",
    deniedText(st) ? `  policy     ${deniedText(st)}` : "",
    st
      ? `  traffic    sent ${fmtBytes(st.bytesOut)} (${st.packetsOut} pkts), received ${
        fmtBytes(st.bytesIn)
      } (${st.packetsIn} pkts), drops ${st.dropsOut}/${st.dropsIn}, reconnects ${st.reconnects}`
      : "",
    st?.stripesOpen !== undefined
      ? `  stripes    ${st.stripesUp} up of ${st.stripesOpen}${
        st.stripesAuto ? `, auto up to ${st.stripesMax}` : ", fixed"
      }${st.stripesReason ? `; last change: ${st.stripesReason}` : ""}${
        st.flowMoves ? `; ${st.flowMoves} flows moved off backed-up stripes` : ""
      }`
      : "",
    ...instanceLines(st),
    s.health
      ? `  healing    ${s.health.reconnects} reconnect${s.health.reconnects === 1 ? "" : "s"}, ${
        fmtDuration(s.health.healingMs)
      } spent healing${
        s.health.maxSessionMs
          ? `, sessions renewed ahead of ${fmtDuration(s.health.maxSessionMs)}`
          : ""
      }`
      : "",
    st ? `  now        ${nowText(s)}` : "",
    s.lastError ? `  last error ${s.lastError}` : "",
  ].filter(Boolean).join("\n");
}
