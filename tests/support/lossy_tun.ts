/**
 * A Tun that loses, duplicates and reorders packets in both directions, from a seed, so the
 * netstack's recovery is tested deterministically on any OS (specs/netstack.md §12.4: netem is
 * not always there; this kernel has no sch_netem).
 */
import type { Tun } from "../../src/net/types.ts";

export interface LossSpec {
  /** Probability of dropping / duplicating / holding back (reordering) a packet, 0–1. */
  loss: number;
  duplicate: number;
  reorder: number;
  seed?: number;
  /**
   * The longest a held-back packet waits for the next one to overtake it (ms, default 5), as
   * netem's delay bounds its reordering: without it the last packet of a burst (a lone
   * retransmission) would wait for the sender's next timeout.
   */
  holdMs?: number;
}

interface Held {
  p: Uint8Array;
  at: number;
}

export class LossyTun implements Tun {
  #rand: () => number;
  #heldIn?: Held;
  #heldOut?: Held;
  #outTimer?: ReturnType<typeof setTimeout>;
  #holdMs: number;
  readonly counts = { dropped: 0, duplicated: 0, reordered: 0 };

  constructor(private inner: Tun, private spec: LossSpec) {
    this.#holdMs = spec.holdMs ?? 5;
    let x = (spec.seed ?? 1) >>> 0 || 1;
    this.#rand = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      return x / 0x1_0000_0000;
    };
  }

  get name(): string {
    return this.inner.name;
  }
  get index(): number {
    return this.inner.index;
  }
  get mtu(): number {
    return this.inner.mtu;
  }

  async read(timeoutMs: number): Promise<Uint8Array[]> {
    // While a packet is held, wake up in time to let it go.
    const wait = this.#heldIn
      ? Math.max(0, Math.min(timeoutMs, this.#heldIn.at + this.#holdMs - performance.now()))
      : timeoutMs;
    const got = await this.inner.read(Math.ceil(wait));
    const out: Uint8Array[] = [];
    for (const p of got) {
      for (const q of this.#mangle(p.slice(), "in")) out.push(q);
    }
    if (this.#heldIn && performance.now() - this.#heldIn.at >= this.#holdMs) {
      out.push(this.#heldIn.p);
      this.#heldIn = undefined;
    }
    return out;
  }

  write(packet: Uint8Array): boolean {
    for (const q of this.#mangle(packet, "out")) this.inner.write(q);
    return true;
  }

  close(): void {
    clearTimeout(this.#outTimer);
    this.inner.close();
  }

  /** What actually passes for one packet: nothing, it, it twice, or the one held back before. */
  #mangle(p: Uint8Array, dir: "in" | "out"): Uint8Array[] {
    const r = this.#rand();
    const s = this.spec;
    if (r < s.loss) {
      this.counts.dropped++;
      return [];
    }
    const held = dir === "in" ? this.#heldIn : this.#heldOut;
    if (r < s.loss + s.reorder && !held) {
      this.counts.reordered++;
      const h = { p: dir === "in" ? p : p.slice(), at: performance.now() };
      if (dir === "in") this.#heldIn = h;
      else {
        this.#heldOut = h;
        this.#outTimer = setTimeout(() => {
          if (this.#heldOut !== h) return;
          this.#heldOut = undefined;
          this.inner.write(h.p);
        }, this.#holdMs);
      }
      return [];
    }
    const out = [p];
    if (r < s.loss + s.reorder + s.duplicate) {
      this.counts.duplicated++;
      out.push(p);
    }
    if (held) {
      out.push(held.p);
      if (dir === "in") this.#heldIn = undefined;
      else {
        this.#heldOut = undefined;
        clearTimeout(this.#outTimer);
      }
    }
    return out;
  }
}
