/**
 * Which stripe carries each flow, on both ends of a tunnel. Pure; time is passed in.
 *
 * A hash of the flow modulo the live stripes balances only on average, and badly with few
 * flows (8 downloads over 8 stripes used 3 of them). So the client places each new flow on the
 * least-loaded live stripe and keeps it there, and the agent answers each flow on the stripe it
 * last heard that flow on. Keys are `flowHash` values (the same in both directions); two flows
 * colliding just share a stripe. Bounded: idle flows expire, and past `maxFlows` the oldest goes.
 */

interface Entry {
  stripe: number;
  /** Last packet of the flow (ms). */
  at: number;
  /** When the flow was last moved to another stripe (ms), or -Infinity. */
  movedAt: number;
}

export interface FlowTableOptions {
  /** A flow unseen this long is forgotten (and placed afresh when it comes back). */
  idleMs?: number;
  maxFlows?: number;
  /** A flow seen within this long counts as busy (rebalance moves only those). */
  busyMs?: number;
  /** A moved flow stays put at least this long. */
  moveEveryMs?: number;
}

export interface Move {
  key: number;
  from: number;
  to: number;
}

export class FlowTable {
  readonly idleMs: number;
  readonly maxFlows: number;
  readonly busyMs: number;
  readonly moveEveryMs: number;
  #flows = new Map<number, Entry>();
  #counts = new Map<number, number>();
  #sweptAt = -Infinity;

  constructor(o: FlowTableOptions = {}) {
    this.idleMs = o.idleMs ?? 60_000;
    this.maxFlows = o.maxFlows ?? 16_384;
    this.busyMs = o.busyMs ?? 2_000;
    this.moveEveryMs = o.moveEveryMs ?? 1_500;
  }

  get size(): number {
    return this.#flows.size;
  }

  /** Flows the table has on `stripe` (idle ones until they are swept). */
  count(stripe: number): number {
    return this.#counts.get(stripe) ?? 0;
  }

  /** The stripe `key` was last placed on or heard on, if any (no refresh). */
  stripeOf(key: number): number | undefined {
    return this.#flows.get(key)?.stripe;
  }

  /**
   * Client: the stripe for a packet of flow `key`: its own while that is live, else the live
   * stripe with the fewest flows (ties: the lower index), remembered. `live` must be sorted.
   */
  place(key: number, live: readonly number[], now: number): number | undefined {
    if (live.length === 0) return undefined;
    const e = this.#flows.get(key);
    if (e && e.at >= now - this.idleMs && live.includes(e.stripe)) {
      e.at = now;
      return e.stripe;
    }
    let best = live[0];
    let bestCount = this.count(best);
    for (let i = 1; i < live.length; i++) {
      const c = this.count(live[i]);
      if (c < bestCount) {
        best = live[i];
        bestCount = c;
      }
    }
    this.#set(key, best, now, e !== undefined);
    return best;
  }

  /** Agent: a packet of flow `key` arrived on `stripe`; answers follow it there. */
  note(key: number, stripe: number, now: number): void {
    const e = this.#flows.get(key);
    if (e && e.stripe === stripe) {
      e.at = now;
      return;
    }
    this.#set(key, stripe, now, false);
  }

  /** Agent: where to answer flow `key`, if it was heard on a stripe that is still `live`. */
  lookup(key: number, live: readonly number[], now: number): number | undefined {
    const e = this.#flows.get(key);
    if (!e || e.at < now - this.idleMs || !live.includes(e.stripe)) return undefined;
    return e.stripe;
  }

  /** Forget every flow on `stripe` (it died or retired): their next packets are placed afresh. */
  forgetStripe(stripe: number): number {
    let n = 0;
    for (const [k, e] of this.#flows) {
      if (e.stripe === stripe) {
        this.#delete(k, e);
        n++;
      }
    }
    return n;
  }

  /** Busy flows (seen within busyMs) per stripe. */
  busyCounts(now: number): Map<number, number> {
    const out = new Map<number, number>();
    for (const e of this.#flows.values()) {
      if (e.at >= now - this.busyMs) out.set(e.stripe, (out.get(e.stripe) ?? 0) + 1);
    }
    return out;
  }

  /**
   * Even out busy flows: while a `congested` live stripe carries at least two busy flows more
   * than another live stripe that is not congested, move one of them there. Moving a flow can
   * reorder it once (packets in flight on the old stripe), so only flows on congested stripes
   * move (they are losing packets already), each at most once per `moveEveryMs`, and at most
   * `limit` per call.
   */
  rebalance(
    live: readonly number[],
    congested: ReadonlySet<number>,
    now: number,
    limit = 4,
  ): Move[] {
    if (live.length < 2) return [];
    const busy = this.busyCounts(now);
    const moves: Move[] = [];
    const stuck = new Set<number>(); // congested stripes with nothing left to move
    for (let n = 0; n < limit; n++) {
      let from = -1;
      let to = -1;
      for (const s of live) {
        const c = busy.get(s) ?? 0;
        if (congested.has(s) && !stuck.has(s) && (from < 0 || c > (busy.get(from) ?? 0))) from = s;
        if (!congested.has(s) && (to < 0 || c < (busy.get(to) ?? 0))) to = s;
      }
      if (from < 0 || to < 0) break;
      if ((busy.get(from) ?? 0) - (busy.get(to) ?? 0) < 2) break;
      let moved: number | undefined;
      for (const [k, e] of this.#flows) {
        if (e.stripe !== from || e.at < now - this.busyMs || e.movedAt > now - this.moveEveryMs) {
          continue;
        }
        this.#set(k, to, e.at, true, now);
        moved = k;
        break;
      }
      if (moved === undefined) {
        stuck.add(from);
        continue;
      }
      busy.set(from, (busy.get(from) ?? 0) - 1);
      busy.set(to, (busy.get(to) ?? 0) + 1);
      moves.push({ key: moved, from, to });
    }
    return moves;
  }

  /** Drop flows idle past idleMs; cheap to call often (it runs at most once a second). */
  sweep(now: number, force = false): void {
    if (!force && now - this.#sweptAt < 1000) return;
    this.#sweptAt = now;
    for (const [k, e] of this.#flows) if (e.at < now - this.idleMs) this.#delete(k, e);
  }

  #set(key: number, stripe: number, at: number, moving: boolean, movedAt = at): void {
    const old = this.#flows.get(key);
    if (old) this.#delete(key, old);
    else {
      this.sweep(at);
      // Full of live flows: the oldest inserted goes (Map order; close enough to least recent).
      if (this.#flows.size >= this.maxFlows) {
        const [k, e] = this.#flows.entries().next().value!;
        this.#delete(k, e);
      }
    }
    this.#flows.set(key, {
      stripe,
      at,
      movedAt: moving && old ? movedAt : old?.movedAt ?? -Infinity,
    });
    this.#counts.set(stripe, this.count(stripe) + 1);
  }

  #delete(key: number, e: Entry): void {
    this.#flows.delete(key);
    const c = this.count(e.stripe) - 1;
    if (c > 0) this.#counts.set(e.stripe, c);
    else this.#counts.delete(e.stripe);
  }
}
