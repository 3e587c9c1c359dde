/**
 * How many stripes a tunnel should have (`--stripes auto`). Pure; the tunnel feeds it one
 * sample per tick and acts on what it returns.
 *
 * One Port session carries about 1 MB/s; more sessions cost a StartSession each and nothing
 * else, so the tunnel starts with one and adds stripes while every live one stays backed up
 * (sustained, not a burst) and there are more busy flows than stripes (a single flow cannot use
 * two stripes without reordering). It grows to one stripe per backed-up busy flow at once (up
 * to the maximum): each step costs a second of measuring, and a bulk transfer should reach its
 * plateau within a few seconds. Extra stripes that stay idle are retired.
 */

import type { LoadReport } from "./wire.ts";

/**
 * An agent's LOAD report counts this long (it travels behind the backlog it reports, so reports
 * of a backed-up stripe arrive late); a stripe this busy (per mille) is backed up.
 */
const LOAD_FRESH_MS = 3_000;
const LOAD_BUSY = 700;

/** A PONG this much (and at least as much again as the idle RTT) late means a queue. */
const QUEUE_DELAY_MS = 30;

/** What a tick knows about one stripe's backlog. */
export interface BacklogSignals {
  /** We dropped packets for it since the last tick, or its session's window is full (uploads). */
  droppedHere: boolean;
  writable: boolean;
  /** The agent's last LOAD report, when it sends them. */
  load?: LoadReport & { at: number };
  /** The last PONG's RTT and when it came, and the least RTT seen (the idle path). */
  rttMs: number;
  rttAt: number;
  minRttMs: number;
}

/**
 * Was a stripe backed up over the last tick? Downloads back up on the agent's side, which we
 * cannot see: its LOAD says its writes waited or its queue dropped, but a socket buffer in
 * front of a paced session absorbs the backlog without either, so a PONG stuck behind that
 * queue (RTT well above the idle RTT) counts too; it works with agents that send no LOAD.
 */
export function backedUp(s: BacklogSignals, now: number): boolean {
  if (s.droppedHere || !s.writable) return true;
  const l = s.load;
  if (l !== undefined && now - l.at < LOAD_FRESH_MS && (l.busy >= LOAD_BUSY || l.drops > 0)) {
    return true;
  }
  return now - s.rttAt < LOAD_FRESH_MS &&
    s.rttMs - s.minRttMs >= Math.max(QUEUE_DELAY_MS, s.minRttMs);
}

export interface StripingOptions {
  auto: boolean;
  /** The fixed count, or the most `auto` may open. */
  max: number;
  /** Every live stripe backed up this long before growing. */
  growAfterMs?: number;
  /** A stripe (never a kept one) carrying nothing this long is retired. */
  retireIdleMs?: number;
  /** Stripes never retired (default: stripe 0; spread: each instance's first). */
  keep?: (index: number) => boolean;
}

/** One tick's view of one live stripe. */
export interface StripeSample {
  index: number;
  /** Its send queue (ours or the agent's) was backed up over the last tick. */
  congested: boolean;
  /** Since a packet last went either way on it (ms). */
  idleMs: number;
}

export interface Sample {
  now: number;
  live: StripeSample[];
  /** Stripes open (live, healing or being opened). */
  open: number;
  /** Flows that carried packets lately. */
  busyFlows: number;
}

export type Decision =
  | { kind: "grow"; count: number; reason: string }
  | { kind: "retire"; index: number; reason: string };

export class StripePlanner {
  readonly growAfterMs: number;
  readonly retireIdleMs: number;
  #congestedSince?: number;

  constructor(readonly o: StripingOptions) {
    this.growAfterMs = o.growAfterMs ?? 1_000;
    this.retireIdleMs = o.retireIdleMs ?? 60_000;
  }

  /** The stripe set changed (grown, healed): measure the backlog afresh. */
  reset(): void {
    this.#congestedSince = undefined;
  }

  decide(s: Sample): Decision | undefined {
    if (!this.o.auto) return undefined;
    const all = s.live.length > 0 && s.live.every((l) => l.congested);
    if (!all) this.#congestedSince = undefined;
    else this.#congestedSince ??= s.now;
    if (
      this.#congestedSince !== undefined && s.now - this.#congestedSince >= this.growAfterMs &&
      s.open === s.live.length && s.open < this.o.max && s.busyFlows > s.live.length
    ) {
      const count = Math.min(this.o.max - s.open, s.busyFlows - s.live.length);
      const secs = ((s.now - this.#congestedSince) / 1000).toFixed(1);
      this.#congestedSince = undefined;
      return {
        kind: "grow",
        count,
        reason: `every stripe backed up for ${secs} s with ${s.busyFlows} busy flows`,
      };
    }
    if (s.open !== s.live.length) return undefined;
    // The newest idle stripe first; stripe 0 stays.
    const keep = this.o.keep ?? ((i: number) => i === 0);
    const idle = s.live.filter((l) => !keep(l.index) && l.idleMs >= this.retireIdleMs);
    if (idle.length > 0 && !all) {
      const l = idle.reduce((a, b) => (b.index > a.index ? b : a));
      return {
        kind: "retire",
        index: l.index,
        reason: `stripe ${l.index} idle for ${Math.round(l.idleMs / 1000)} s`,
      };
    }
    return undefined;
  }
}
