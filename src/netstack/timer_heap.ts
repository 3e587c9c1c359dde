/**
 * One binary min-heap of deadlines for every connection (specs/netstack.md §14): arming a host
 * timer per segment would cost more than the TCP work itself. Entries are cancelled lazily: an
 * entry whose generation no longer matches its owner's is skipped when it surfaces.
 */

export interface TimerOwner {
  /** Bumped whenever the owner's deadline changes; stale heap entries carry an older value. */
  timerGen: number;
}

interface Entry<T extends TimerOwner> {
  at: number;
  owner: T;
  gen: number;
}

export class TimerHeap<T extends TimerOwner> {
  #h: Entry<T>[] = [];

  get size(): number {
    return this.#h.length;
  }

  /** (Re)arm `owner` for `at`; any earlier entry of it becomes stale. */
  schedule(owner: T, at: number): void {
    owner.timerGen++;
    this.#h.push({ at, owner, gen: owner.timerGen });
    this.#up(this.#h.length - 1);
  }

  cancel(owner: T): void {
    owner.timerGen++;
  }

  /** The earliest live deadline, or undefined. Drops stale entries on the way. */
  peek(): number | undefined {
    while (this.#h.length > 0) {
      const e = this.#h[0];
      if (e.gen === e.owner.timerGen) return e.at;
      this.#pop();
    }
    return undefined;
  }

  /** Remove and return every owner whose live deadline is ≤ now. */
  due(now: number): T[] {
    const out: T[] = [];
    while (this.#h.length > 0) {
      const e = this.#h[0];
      if (e.gen !== e.owner.timerGen) {
        this.#pop();
        continue;
      }
      if (e.at > now) break;
      this.#pop();
      e.owner.timerGen++;
      out.push(e.owner);
    }
    return out;
  }

  #pop(): void {
    const last = this.#h.pop()!;
    if (this.#h.length > 0) {
      this.#h[0] = last;
      this.#down(0);
    }
  }

  #up(i: number): void {
    const h = this.#h;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].at <= h[i].at) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }

  #down(i: number): void {
    const h = this.#h;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l].at < h[m].at) m = l;
      if (r < h.length && h[r].at < h[m].at) m = r;
      if (m === i) return;
      [h[m], h[i]] = [h[i], h[m]];
      i = m;
    }
  }
}
