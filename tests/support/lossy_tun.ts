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
}

export class LossyTun implements Tun {
  #rand: () => number;
  #heldIn?: Uint8Array;
  #heldOut?: Uint8Array;
  readonly counts = { dropped: 0, duplicated: 0, reordered: 0 };

  constructor(private inner: Tun, private spec: LossSpec) {
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
    const got = await this.inner.read(timeoutMs);
    const out: Uint8Array[] = [];
    for (const p of got) {
      for (const q of this.#mangle(p.slice(), "in")) out.push(q);
    }
    return out;
  }

  write(packet: Uint8Array): boolean {
    for (const q of this.#mangle(packet, "out")) this.inner.write(q);
    return true;
  }

  close(): void {
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
      if (dir === "in") this.#heldIn = p;
      else this.#heldOut = p;
      return [];
    }
    const out = [p];
    if (r < s.loss + s.reorder + s.duplicate) {
      this.counts.duplicated++;
      out.push(p);
    }
    if (held) {
      out.push(held);
      if (dir === "in") this.#heldIn = undefined;
      else this.#heldOut = undefined;
    }
    return out;
  }
}
