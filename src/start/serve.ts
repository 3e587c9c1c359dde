/**
 * A tunnel that is up: a live line, the state file kept current, healing on sleep and network
 * changes, and everything undone on Ctrl-C / SIGTERM or when the tunnel gives up.
 */
import { ExitCode, UserError } from "../errors.ts";
import type { Tun } from "../net/types.ts";
import type { AgentlessTunnel } from "../netstack/tunnel.ts";
import type { Tunnel, TunnelStats } from "../tunnel/client.ts";
import { ClockWatch, localInterfaces, NetworkWatch } from "../tunnel/heal.ts";
import { type TunnelState, writeState } from "../tunnel/state.ts";

/** How the running tunnel is shown: each second's state, and once more when it ends. */
export interface ServeView {
  show(state: TunnelState): void;
  clear(): void;
}

export function rates(a: TunnelStats & { t: number }, b: TunnelStats & { t: number }) {
  const secs = Math.max(0.001, (b.t - a.t) / 1000);
  return { upBps: (b.bytesOut - a.bytesOut) / secs, downBps: (b.bytesIn - a.bytesIn) / secs };
}

/**
 * Runs until a signal (returns, all undone) or until the tunnel gives up (throws, all undone).
 * `stopped`: the caller's stop signals (cli/signals.ts), there since before bring-up; without it
 * serve listens for SIGINT and SIGTERM itself.
 */
export async function serve(
  state: TunnelState,
  tunnel: Tunnel | AgentlessTunnel,
  tun: Tun,
  undo: () => Promise<void>,
  live: ServeView,
  stopped?: Promise<string>,
): Promise<void> {
  const name = state.name;
  const stop = Promise.withResolvers<string>();
  stopped?.then(stop.resolve);
  const own = stopped ? ["SIGHUP"] as const : ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  const sigs = own.map((s) => {
    const h = () => (s === "SIGHUP" ? undefined : stop.resolve(s)); // survive the terminal closing
    Deno.addSignalListener(s, h);
    return [s, h] as const;
  });
  let last = { t: performance.now(), ...tunnel.stats() };
  const clock = new ClockWatch();
  // Other tunnels' interfaces coming and going are not a network change for this one.
  const network = new NetworkWatch((n) => n === tun.name || n.startsWith("ssmp"));
  const ticker = setInterval(async () => {
    const jump = clock.tick(Date.now(), performance.now());
    if (jump !== undefined) {
      tunnel.recover(`the clock jumped ${Math.round(jump / 1000)} s (sleep or clock change)`);
    } else if (network.tick(localInterfaces())) {
      tunnel.recover("the local network changed");
    }
    const now = { t: performance.now(), ...tunnel.stats() };
    const r = rates(last, now);
    last = now;
    const { t: _t, ...stats } = now;
    state.stats = { ...stats, ...r };
    const h = tunnel.health();
    state.status = h.state;
    state.sessions = h.sessions;
    state.lastError = h.lastError;
    state.health = {
      reconnects: h.reconnects,
      healingMs: h.healingMs,
      ...(h.maxSessionMs !== undefined ? { maxSessionMs: h.maxSessionMs } : {}),
    };
    if ("agentless" in tunnel) state.agentless = tunnel.agentless();
    else state.identity = tunnel.identity();
    state.updatedAt = new Date().toISOString();
    live.show(state);
    await writeState(state).catch(() => {});
  }, 1000);
  const pump = tunnel.run(tun);
  const outcome = await Promise.race([
    stop.promise.then((sig) => ({ sig })),
    tunnel.ended.then((reason) => ({ reason })),
  ]);
  clearInterval(ticker);
  live.clear();
  for (const [s, h] of sigs) Deno.removeSignalListener(s, h);
  await undo();
  await pump.catch(() => {});
  if ("sig" in outcome) {
    console.error(
      `ssm-proxy: tunnel "${name}" stopped (${outcome.sig}); routes${
        state.dns.kind !== "none" ? ", DNS" : ""
      } and interface removed`,
    );
    return;
  }
  throw new UserError(
    `tunnel "${name}" went down: ${outcome.reason}; routes and interface removed`,
    // An identity refusal is the credentials' problem, not the path's (tunnel/identity.ts).
    ("failure" in tunnel ? tunnel.failure?.exitCode : undefined) ?? ExitCode.Remote,
  );
}
