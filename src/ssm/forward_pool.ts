/**
 * How many Port sessions `forward` should use, and which one a new connection goes on. Pure:
 * the session pool (session_pool.ts) feeds it one sample per tick and acts on what it returns.
 *
 * One session carries about 1 MB/s per direction (the agent paces 1 KiB/ms), and a connection
 * cannot move between sessions (its smux stream lives in one), so more sessions only help
 * connections opened after they are. The pool starts with one and adds one at a time while
 * every session stays saturated (sustained, not a burst) and more connections are busy than
 * there are sessions; new connections go to the least-loaded session. Extra sessions left
 * without connections are closed.
 *
 * What "saturated" means, per direction, from measuring against the paced emulator:
 * - client→agent: the session's send window (or WebSocket buffer) is full. Uploads fill it
 *   within a tick; a session that is not the bottleneck never does.
 * - agent→client: we cannot see the agent's queue, but its pacing caps a session at ~1024 B/ms
 *   and a backed-up session sits at 1005-1028 B/ms per half second (one download or four
 *   alike), while a session the local readers or the path hold back runs well below it. So a
 *   tick at 3/4 of the ceiling or more counts as saturated.
 */
import { ExitCode, UserError } from "../errors.ts";

/** The real agent's ceiling: 1024-byte messages, one per millisecond. */
export const PACED_CEILING_BPS = 1024 * 1000;

export interface PoolOptions {
  /** Grow with the load (true), or keep `max` sessions. */
  auto: boolean;
  /** The fixed count, or the most `auto` may open. */
  max: number;
  /** Every session saturated this long before growing. */
  growAfterMs?: number;
  /** An extra session without connections this long is closed. */
  retireIdleMs?: number;
  /** agent→client bytes per second of one session at the pacing ceiling. */
  ceilingBps?: number;
  /** The share of the ceiling that counts as running at it. */
  ceilingShare?: number;
}

/** One tick's view of one session. */
export interface LaneSample {
  /** Stable number: 1 for the first session, then counting up; never reused. */
  index: number;
  /** Carrying traffic (not healing). */
  up: boolean;
  /** Bytes received from the agent, cumulative. */
  bytesIn: number;
  /** A local reader waited for the send window since the last sample. */
  blocked: boolean;
  /** Connections on it, and those that moved data lately. */
  connections: number;
  busyConnections: number;
}

export interface PoolSample {
  now: number;
  lanes: LaneSample[];
  /** Sessions being opened. */
  opening: number;
}

export type PoolDecision =
  | { kind: "grow"; reason: string }
  | { kind: "retire"; index: number; reason: string };

interface LaneTrack {
  bytesIn: number;
  at: number;
  saturated: boolean;
  why: string;
  saturatedSince?: number;
  idleSince?: number;
}

export class PoolPlanner {
  readonly growAfterMs: number;
  readonly retireIdleMs: number;
  readonly #threshold: number;
  #lanes = new Map<number, LaneTrack>();

  constructor(readonly o: PoolOptions) {
    this.growAfterMs = o.growAfterMs ?? 2_000;
    this.retireIdleMs = o.retireIdleMs ?? 60_000;
    this.#threshold = (o.ceilingBps ?? PACED_CEILING_BPS) * (o.ceilingShare ?? 0.75);
  }

  /** Was this session saturated over the last tick? */
  saturated(index: number): boolean {
    return this.#lanes.get(index)?.saturated ?? false;
  }

  decide(s: PoolSample): PoolDecision | undefined {
    this.#observe(s);
    const n = s.lanes.length;
    if (!this.o.auto) {
      // A fixed count: replace a session that was lost.
      return n + s.opening < this.o.max
        ? { kind: "grow", reason: `keeping ${this.o.max} sessions (${n} open)` }
        : undefined;
    }
    if (s.opening > 0 || n === 0 || s.lanes.some((l) => !l.up)) return undefined;
    const tracks = s.lanes.map((l) => this.#lanes.get(l.index)!);
    const busy = s.lanes.reduce((a, l) => a + l.busyConnections, 0);
    const since = Math.max(...tracks.map((t) => t.saturatedSince ?? Infinity));
    if (n < this.o.max && busy > n && since !== Infinity && s.now - since >= this.growAfterMs) {
      for (const t of tracks) t.saturatedSince = undefined; // measure afresh with one more
      const secs = ((s.now - since) / 1000).toFixed(1);
      const what = n === 1 ? `session 1 ${tracks[0].why}` : `all ${n} sessions saturated`;
      return { kind: "grow", reason: `${what} for ${secs} s with ${busy} active connections` };
    }
    // The newest idle extra first; session 1 stays.
    const idle = s.lanes.filter((l, i) =>
      l !== s.lanes[0] && tracks[i].idleSince !== undefined &&
      s.now - tracks[i].idleSince! >= this.retireIdleMs
    );
    if (idle.length > 0) {
      const l = idle.reduce((a, b) => (b.index > a.index ? b : a));
      const t = this.#lanes.get(l.index)!;
      return {
        kind: "retire",
        index: l.index,
        reason: `no connections for ${Math.round((s.now - t.idleSince!) / 1000)} s`,
      };
    }
    return undefined;
  }

  #observe(s: PoolSample): void {
    const seen = new Set<number>();
    for (const l of s.lanes) {
      seen.add(l.index);
      let t = this.#lanes.get(l.index);
      if (!t) {
        t = { bytesIn: l.bytesIn, at: s.now, saturated: false, why: "" };
        this.#lanes.set(l.index, t);
      } else {
        const bps = s.now > t.at ? (l.bytesIn - t.bytesIn) * 1000 / (s.now - t.at) : 0;
        t.bytesIn = l.bytesIn;
        t.at = s.now;
        t.saturated = l.up && (l.blocked || bps >= this.#threshold);
        t.why = l.blocked
          ? "had its send window full"
          : `at the pacing ceiling (${(bps / 1e6).toFixed(2)} MB/s from the agent)`;
      }
      if (t.saturated) t.saturatedSince ??= s.now;
      else t.saturatedSince = undefined;
      if (l.connections > 0) t.idleSince = undefined;
      else t.idleSince ??= s.now;
    }
    for (const i of [...this.#lanes.keys()]) if (!seen.has(i)) this.#lanes.delete(i);
  }
}

export interface LaneLoad {
  index: number;
  up: boolean;
  connections: number;
  busyConnections: number;
}

/**
 * The session a new connection goes on: the least-loaded one that is up (fewest busy
 * connections, then fewest connections, then the oldest); while every one is healing, the
 * least-loaded of all (its stream waits for the session to resume). Undefined for none.
 */
export function placeConnection<T extends LaneLoad>(lanes: readonly T[]): T | undefined {
  const up = lanes.filter((l) => l.up);
  const from = up.length > 0 ? up : lanes;
  let best: T | undefined;
  for (const l of from) {
    if (
      !best || l.busyConnections < best.busyConnections ||
      (l.busyConnections === best.busyConnections &&
        (l.connections < best.connections ||
          (l.connections === best.connections && l.index < best.index)))
    ) best = l;
  }
  return best;
}

export const MAX_SESSIONS = 16;

/** `--sessions auto|N` and `--max-sessions N` (as typed, or numbers) as pool options. */
export function poolOptions(
  sessions: string | number = "auto",
  maxSessions: string | number = 4,
): PoolOptions {
  const whole = (v: string | number) => {
    const n = Number(v);
    return /^\d+$/.test(String(v).trim()) && n >= 1 && n <= MAX_SESSIONS ? n : undefined;
  };
  const auto = String(sessions).trim().toLowerCase() === "auto";
  const fixed = auto ? undefined : whole(sessions);
  if (!auto && fixed === undefined) {
    throw new UserError(
      `--sessions ${
        JSON.stringify(String(sessions))
      }: use auto or a number from 1 to ${MAX_SESSIONS}`,
      ExitCode.Usage,
    );
  }
  const max = whole(maxSessions);
  if (max === undefined) {
    throw new UserError(
      `--max-sessions ${
        JSON.stringify(String(maxSessions))
      }: use a number from 1 to ${MAX_SESSIONS}`,
      ExitCode.Usage,
    );
  }
  return fixed === undefined ? { auto: true, max } : { auto: false, max: fixed };
}
