/**
 * One tunnel over several instances (`start --spread`). Each instance runs its own agent, which
 * gives the tunnel its own address and NATs its flows to the VPC; so a flow must stay on one
 * instance for its life, or the VPC host would see it from another address and reset it. The
 * tunnel's stripes get keys `slot * STRIPE_SLOTS + index` (slot: the instance's place in the
 * target list), the flow table places flows over all of them, and this file keeps each flow's
 * instance (for much longer than its stripe: an idle database connection must not change
 * instance) and picks where auto striping grows. Pure; time is passed in.
 */
import type { Hello, Welcome } from "./wire.ts";

/** Stripe indexes per instance in a key (--stripes and --max-stripes stop at 16). */
export const STRIPE_SLOTS = 32;

export function stripeKey(slot: number, index: number): number {
  return slot * STRIPE_SLOTS + index;
}

export function slotOf(key: number): number {
  return Math.floor(key / STRIPE_SLOTS);
}

export function indexOf(key: number): number {
  return key % STRIPE_SLOTS;
}

/** One instance of the tunnel: its own tunnel id (HELLO), and the address its agent gave. */
export interface Member {
  slot: number;
  /** The instance id ("" for a tunnel to one instance, whose logs need no label). */
  label: string;
  hello: Omit<Hello, "stripe">;
  welcome: Welcome;
  /** welcome.address as a number: what its agent accepts as source. */
  address: number;
  /** The most stripes on this instance (its HELLO's count). */
  max: number;
}

export interface AffinityOptions {
  /**
   * A flow unseen this long may change instance when it comes back. Long, like the agents'
   * conntrack for established TCP: a connection idle for minutes must come back the same way.
   */
  idleMs?: number;
  maxFlows?: number;
}

/** Which instance each flow is on. */
export class InstanceAffinity {
  readonly idleMs: number;
  readonly maxFlows: number;
  #flows = new Map<number, { slot: number; at: number }>();
  #sweptAt = -Infinity;

  constructor(o: AffinityOptions = {}) {
    this.idleMs = o.idleMs ?? 6 * 3600_000;
    this.maxFlows = o.maxFlows ?? 65_536;
  }

  get size(): number {
    return this.#flows.size;
  }

  slotOf(key: number): number | undefined {
    return this.#flows.get(key)?.slot;
  }

  /**
   * The stripes flow `key` may be placed on: the live ones of its instance while it has any,
   * else every live one (its instance is gone: the flow moves, and a TCP connection on it
   * breaks, as it would have anyway). `bySlot` maps a slot to its live stripe keys (sorted).
   */
  candidates(
    key: number,
    all: readonly number[],
    bySlot: ReadonlyMap<number, number[]>,
  ): readonly number[] {
    const e = this.#flows.get(key);
    if (e) {
      const mine = bySlot.get(e.slot);
      if (mine && mine.length > 0) return mine;
    }
    return all;
  }

  /** Flow `key` went out on instance `slot`. */
  note(key: number, slot: number, now: number): void {
    const e = this.#flows.get(key);
    if (e) {
      e.slot = slot;
      e.at = now;
      return;
    }
    this.sweep(now);
    if (this.#flows.size >= this.maxFlows) this.#flows.delete(this.#flows.keys().next().value!);
    this.#flows.set(key, { slot, at: now });
  }

  /** Forget flows idle past idleMs; runs at most every 10 s. */
  sweep(now: number, force = false): void {
    if (!force && now - this.#sweptAt < 10_000) return;
    this.#sweptAt = now;
    for (const [k, e] of this.#flows) if (e.at < now - this.idleMs) this.#flows.delete(k);
  }
}

/** Live stripe keys by slot (each list sorted, as `live` is). */
export function bySlot(live: readonly number[]): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const k of live) {
    const s = slotOf(k);
    let l = out.get(s);
    if (!l) out.set(s, l = []);
    l.push(k);
  }
  return out;
}

/**
 * Where auto striping adds a stripe: the instance with the fewest open (or opening) stripes
 * among those with room, preferring instances that have a live stripe (a lost one is healing,
 * and a new session there would fail too); ties go to the lower slot. The stripe index is its
 * lowest free one. Undefined when every instance is full.
 */
export function growSlot(
  members: readonly Member[],
  taken: ReadonlySet<number>,
  live: ReadonlySet<number>,
): { slot: number; index: number } | undefined {
  let best: { slot: number; index: number; open: number; live: boolean } | undefined;
  for (const m of members) {
    let open = 0;
    let anyLive = false;
    let free = -1;
    for (let i = 0; i < m.max; i++) {
      const k = stripeKey(m.slot, i);
      if (taken.has(k)) open++;
      else if (free < 0) free = i;
      if (live.has(k)) anyLive = true;
    }
    if (free < 0) continue;
    const better = !best || (anyLive && !best.live) ||
      (anyLive === best.live && open < best.open);
    if (better) best = { slot: m.slot, index: free, open, live: anyLive };
  }
  return best && { slot: best.slot, index: best.index };
}

/** Per instance, for status: its address and stripes. */
export interface InstanceStats {
  instanceId: string;
  address: string;
  stripesUp: number;
  stripesOpen: number;
  bytesIn: number;
  bytesOut: number;
}
