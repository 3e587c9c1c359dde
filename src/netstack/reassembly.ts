/**
 * Out-of-order segments held until the hole before them is filled (specs/netstack.md §4.4, the
 * "v2" option). Without it a lost or reordered packet from the kernel costs far more than one
 * round trip: Linux counts our duplicate ACKs as delivered segments, refills about one hole per
 * partial ACK, then waits out doubling RTOs; uploads under 1 % loss crawled at ~100 KB/s in the
 * kernel lab. Held bytes lie inside the window already advertised, so memory stays bounded by
 * it; the segment count is capped as well.
 */
import { seqAdd, seqDiff } from "./seq.ts";

interface Held {
  seq: number;
  data: Uint8Array;
  fin: boolean;
}

export const MAX_HELD_SEGMENTS = 64;

export class Reassembly {
  #held: Held[] = [];
  #bytes = 0;
  /** Where the most recent segment starts: its block leads the SACK option (RFC 2018 §4). */
  #lastSeq = 0;

  get bytes(): number {
    return this.#bytes;
  }
  get segments(): number {
    return this.#held.length;
  }

  /** Keep a copy of `data` (and a FIN after it) starting at `seq`. False when full. */
  add(seq: number, data: Uint8Array, fin: boolean): boolean {
    if (this.#held.length >= MAX_HELD_SEGMENTS) return false;
    for (const h of this.#held) {
      if (h.seq === seq && h.data.length >= data.length && (h.fin || !fin)) return true; // a duplicate
    }
    this.#lastSeq = seq;
    const i = this.#held.findIndex((h) => seqDiff(h.seq, seq) > 0);
    const held = { seq, data: data.slice(), fin };
    if (i < 0) this.#held.push(held);
    else this.#held.splice(i, 0, held);
    this.#bytes += data.length;
    return true;
  }

  /**
   * What now continues at `rcvNxt`, in order, and whether the peer's FIN follows it. Segments
   * wholly before `rcvNxt` are dropped; everything after a FIN is too.
   */
  take(rcvNxt: number): { chunks: Uint8Array[]; fin: boolean } {
    const chunks: Uint8Array[] = [];
    let next = rcvNxt;
    let fin = false;
    while (this.#held.length > 0) {
      const h = this.#held[0];
      const have = seqDiff(next, h.seq); // bytes of h we already have
      if (have < 0) break; // a hole remains
      this.#held.shift();
      this.#bytes -= h.data.length;
      if (have < h.data.length) {
        chunks.push(h.data.subarray(have));
        next = seqAdd(h.seq, h.data.length);
      }
      if (h.fin && have <= h.data.length) {
        fin = true;
        this.clear();
        break;
      }
    }
    return { chunks, fin };
  }

  /**
   * What we hold, as SACK blocks (RFC 2018): [left, right) pairs of merged ranges, the one with
   * the most recent segment first, at most `max`. Held segments are never dropped before they
   * are delivered, so nothing reported here is ever reneged.
   */
  sackBlocks(max = 4): number[] {
    const ranges: [number, number][] = [];
    for (const h of this.#held) {
      if (h.data.length === 0) continue;
      const end = seqAdd(h.seq, h.data.length);
      const last = ranges.at(-1);
      if (last && seqDiff(h.seq, last[1]) <= 0) {
        if (seqDiff(end, last[1]) > 0) last[1] = end;
      } else ranges.push([h.seq, end]);
    }
    const recent = ranges.findIndex(([l, r]) =>
      seqDiff(this.#lastSeq, l) >= 0 && seqDiff(this.#lastSeq, r) < 0
    );
    if (recent > 0) ranges.unshift(...ranges.splice(recent, 1));
    return ranges.slice(0, max).flat();
  }

  clear(): void {
    this.#held = [];
    this.#bytes = 0;
  }
}
