/**
 * A tunnel's counters and health, summed over its stripes' supervisors (and, spread, per
 * instance). Pure: reads supervisors, changes nothing.
 */
import type { HealState } from "./heal.ts";
import { type InstanceStats, type Member, slotOf } from "./spread.ts";
import type { StripeSupervisor } from "./supervisor.ts";

export interface TunnelStats {
  packetsOut: number;
  bytesOut: number;
  packetsIn: number;
  bytesIn: number;
  dropsOut: number;
  dropsIn: number;
  stripesUp: number;
  rttMs: number;
  reconnects: number;
  /** Stripes open (up or healing), the most allowed, whether `auto` sizes them. */
  stripesOpen?: number;
  stripesMax?: number;
  stripesAuto?: boolean;
  /** The last change of the stripe set and why ("2 -> 4 stripes: ..."). */
  stripesReason?: string;
  /** Flows moved off a backed-up stripe to an idle one. */
  flowMoves?: number;
  /** Bytes received on each open stripe, by stripe key (spread.ts): how evenly flows were placed. */
  stripeBytesIn?: Record<number, number>;
  /** Spread: each instance's address and stripes. */
  instances?: InstanceStats[];
  /** Packets the agent's policy refused (ICMP administratively prohibited back), when any… */
  denied?: number;
  /** …and where the last one was going: "10.0.9.5:5432/tcp" (denials.ts). */
  deniedLast?: string;
}

/** How the tunnel is doing, for status and the live line. */
export interface TunnelHealth {
  state: HealState;
  /** Resumes plus new sessions, over all stripes. */
  reconnects: number;
  /** Total stripe-time spent healing, ms. */
  healingMs: number;
  lastError?: string;
  /** Current session ids, one per stripe. */
  sessions: string[];
  /** The maximum session duration in force (configured or learned), ms. */
  maxSessionMs?: number;
}

/** Traffic and stripe counters over `sups`. */
export function sumStats(sups: Iterable<StripeSupervisor>, dropsIn: number): TunnelStats {
  const t: TunnelStats = {
    packetsOut: 0,
    bytesOut: 0,
    packetsIn: 0,
    bytesIn: 0,
    dropsOut: 0,
    dropsIn,
    stripesUp: 0,
    rttMs: 0,
    reconnects: 0,
  };
  for (const s of sups) {
    const st = s.stats();
    t.packetsOut += st.packetsOut;
    t.bytesOut += st.bytesOut;
    t.packetsIn += st.packetsIn;
    t.bytesIn += st.bytesIn;
    t.dropsOut += st.dropsOut;
    t.reconnects += s.reconnects;
    if (s.up) t.stripesUp++;
    t.rttMs = Math.max(t.rttMs, st.rttMs);
  }
  return t;
}

/** Each instance's address, stripes and bytes; `sups` by stripe key. */
export function instanceStats(
  members: Iterable<Member>,
  sups: ReadonlyMap<number, StripeSupervisor>,
): InstanceStats[] {
  return [...members].map((m) => {
    const st: InstanceStats = {
      instanceId: m.label,
      address: m.welcome.address,
      stripesUp: 0,
      stripesOpen: 0,
      bytesIn: 0,
      bytesOut: 0,
    };
    for (const [k, s] of sups) {
      if (slotOf(k) !== m.slot) continue;
      st.stripesOpen++;
      if (s.up) st.stripesUp++;
      const x = s.stats();
      st.bytesIn += x.bytesIn;
      st.bytesOut += x.bytesOut;
    }
    return st;
  });
}

/** Healing when any stripe heals, up when any carries traffic, else down. `ordered` by key. */
export function healthOf(
  ordered: StripeSupervisor[],
  now: number,
  maxSessionMs: number | undefined,
): TunnelHealth {
  let healing = false;
  let up = false;
  let healingMs = 0;
  let reconnects = 0;
  let lastError: string | undefined;
  for (const s of ordered) {
    const tr = s.tracker;
    const resuming = s.stripe.session.state === "healing";
    if (tr.state === "healing" || (tr.state === "up" && resuming)) healing = true;
    else if (tr.state === "up" && s.up) up = true;
    healingMs += tr.healingMs(now);
    reconnects += s.reconnects;
    const err = tr.lastError || s.stripe.session.lastError;
    if (err) lastError = err;
  }
  return {
    state: healing ? "healing" : up ? "up" : "down",
    reconnects,
    healingMs,
    ...(lastError ? { lastError } : {}),
    sessions: ordered.map((s) => s.stripe.session.sessionId),
    ...(maxSessionMs !== undefined ? { maxSessionMs } : {}),
  };
}
