/**
 * The two small bookkeeping tools agentless mode's limits need (specs/netstack.md §9): a token
 * bucket (new sessions per second, ICMP errors per second) and a map of keys remembered until
 * a deadline (negative caches, log-once lines), kept small however many keys pass through it.
 */

export class TokenBucket {
  #rate: number;
  #cap: number;
  #tokens: number;
  #at: number;

  /** Full at first; `now` absent: the clock starts at the first take. */
  constructor(perSecond: number, burst: number, now?: number) {
    // NaN or negative settings allow nothing rather than everything.
    this.#rate = perSecond > 0 ? perSecond : 0;
    this.#cap = burst > 0 ? burst : 0;
    this.#tokens = this.#cap;
    this.#at = now ?? Number.NaN;
  }

  /** Take one token if there is one. Allocation-free (the agent calls it per denied packet). */
  take(now: number): boolean {
    this.#refill(now);
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }

  /** Milliseconds until a token is there (0: now). */
  waitMs(now: number): number {
    this.#refill(now);
    return this.#tokens >= 1 ? 0 : Math.ceil((1 - this.#tokens) / (this.#rate / 1000));
  }

  /** A clock stepping back keeps the later time: no stretch of time is counted twice. */
  #refill(now: number): void {
    if (Number.isNaN(this.#at)) this.#at = now;
    else if (now > this.#at) {
      this.#tokens = Math.min(this.#cap, this.#tokens + ((now - this.#at) * this.#rate) / 1000);
      this.#at = now;
    }
  }
}

export class Deadlines {
  #m = new Map<string, number>();

  constructor(private max = 4096) {}

  /** Is `key` remembered at `now`? An expired key is forgotten on the way. */
  live(key: string, now: number): boolean {
    const until = this.#m.get(key);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#m.delete(key);
    return false;
  }

  /** Remember `key` until `until`; expired keys are swept once the map grows past `max`. */
  put(key: string, until: number, now: number): void {
    this.#m.delete(key);
    this.#m.set(key, until);
    if (this.#m.size <= this.max) return;
    for (const [k, u] of this.#m) if (u <= now) this.#m.delete(k);
    while (this.#m.size > this.max) this.#m.delete(this.#m.keys().next().value!);
  }
}
