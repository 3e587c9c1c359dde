/**
 * The tunnel address pool (DESIGN §3). Pure; time comes from an injected clock.
 *
 * The first host address belongs to the agent's tun; tunnels get the following ones. A tunnel id
 * keeps its address while any stripe is connected and for `graceMs` after the last one goes, so a
 * healing client gets the same address back and its connections survive. Freed addresses are
 * handed out again only after the rest of the pool has been used (a rotating cursor), which keeps
 * stale conntrack entries of an old tunnel from meeting a new one.
 */
import { type Cidr, maskOf } from "./cidr.ts";

interface Lease {
  address: number;
  /** When the lease ends; undefined while stripes are connected. */
  releaseAt?: number;
}

export class AddressPool {
  readonly agentAddress: number;
  readonly first: number;
  readonly last: number;
  #leases = new Map<string, Lease>();
  #used = new Set<number>();
  #cursor: number;

  constructor(
    readonly cidr: Cidr,
    readonly graceMs: number,
    readonly now: () => number = Date.now,
  ) {
    if (cidr.prefix > 30) throw new RangeError(`pool /${cidr.prefix} has no room for tunnels`);
    const broadcast = (cidr.base | ~maskOf(cidr.prefix)) >>> 0;
    this.agentAddress = cidr.base + 1;
    this.first = cidr.base + 2;
    this.last = broadcast - 1;
    this.#cursor = this.first;
  }

  get capacity(): number {
    return this.last - this.first + 1;
  }

  get size(): number {
    return this.#leases.size;
  }

  /** The address of `id`, allocating one if needed; undefined when the pool is exhausted. */
  /** Called when the id → address map changes (an allocation or a release), to persist it. */
  onChange?: () => void;

  /** Every lease, for persisting. */
  snapshot(): { id: string; address: number }[] {
    return [...this.#leases].map(([id, l]) => ({ id, address: l.address }));
  }

  /**
   * Leases saved by a previous run of the agent. None of their stripes is connected any more, so
   * each gets a fresh grace period to come back in. Addresses outside this pool, or taken twice,
   * are skipped.
   */
  restore(saved: { id: string; address: number }[]): number {
    let n = 0;
    for (const { id, address } of saved) {
      if (address < this.first || address > this.last || this.#used.has(address)) continue;
      if (this.#leases.has(id)) continue;
      this.#leases.set(id, { address, releaseAt: this.now() + this.graceMs });
      this.#used.add(address);
      this.#cursor = address;
      this.#advance();
      n++;
    }
    return n;
  }

  acquire(id: string): number | undefined {
    const lease = this.#leases.get(id);
    if (lease) {
      lease.releaseAt = undefined;
      return lease.address;
    }
    this.sweep();
    if (this.#used.size >= this.capacity) return undefined;
    while (this.#used.has(this.#cursor)) this.#advance();
    const address = this.#cursor;
    this.#advance();
    this.#leases.set(id, { address });
    this.#used.add(address);
    this.onChange?.();
    return address;
  }

  /** The tunnel lost its last stripe: start the grace period. */
  idle(id: string): void {
    const lease = this.#leases.get(id);
    if (lease && lease.releaseAt === undefined) lease.releaseAt = this.now() + this.graceMs;
  }

  /** Free every lease whose grace period has ended; returns their tunnel ids. */
  sweep(): string[] {
    const t = this.now();
    const freed: string[] = [];
    for (const [id, lease] of this.#leases) {
      if (lease.releaseAt !== undefined && lease.releaseAt <= t) {
        this.#leases.delete(id);
        this.#used.delete(lease.address);
        freed.push(id);
      }
    }
    if (freed.length) this.onChange?.();
    return freed;
  }

  addressOf(id: string): number | undefined {
    return this.#leases.get(id)?.address;
  }

  #advance(): void {
    this.#cursor = this.#cursor >= this.last ? this.first : this.#cursor + 1;
  }
}
