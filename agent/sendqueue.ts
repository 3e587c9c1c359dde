/**
 * One stripe's outgoing queue. Pure; time comes from an injected clock.
 *
 * Packets wait here while the stripe's previous TCP write is in flight, and leave together as
 * few PACKETS frames as possible. The queue is bounded in bytes and in time (DESIGN §1): when
 * the oldest waiting packet has waited longer than `maxDelayMs`, or the bytes would pass
 * `maxBytes`, new packets are dropped like on a congested link, so the inner TCP sees loss early
 * instead of a growing delay. Control frames (WELCOME, PONG, ERROR) are never dropped.
 */
import { encodePackets } from "../src/tunnel/wire.ts";

export interface QueueLimits {
  maxBytes: number;
  maxDelayMs: number;
}

export const DEFAULT_LIMITS: QueueLimits = { maxBytes: 256 * 1024, maxDelayMs: 50 };

export class SendQueue {
  #control: Uint8Array[] = [];
  #packets: Uint8Array[] = [];
  #bytes = 0;
  /** When the oldest waiting packet was queued. */
  #since = 0;
  dropped = 0;

  constructor(
    readonly limits: QueueLimits = DEFAULT_LIMITS,
    readonly now: () => number = () => performance.now(),
  ) {}

  get bytes(): number {
    return this.#bytes;
  }

  get empty(): boolean {
    return this.#packets.length === 0 && this.#control.length === 0;
  }

  /** Queue a copy of `p` (callers' buffers are reused). False when dropped. */
  push(p: Uint8Array): boolean {
    const t = this.now();
    if (
      this.#bytes + p.length > this.limits.maxBytes ||
      (this.#packets.length > 0 && t - this.#since > this.limits.maxDelayMs)
    ) {
      this.dropped++;
      return false;
    }
    if (this.#packets.length === 0) this.#since = t;
    this.#packets.push(p.slice());
    this.#bytes += p.length;
    return true;
  }

  pushControl(frame: Uint8Array): void {
    this.#control.push(frame);
  }

  /** Everything queued as one buffer (control frames first), or undefined when empty. */
  take(): Uint8Array | undefined {
    if (this.empty) return undefined;
    const parts = this.#control;
    if (this.#packets.length) parts.push(encodePackets(this.#packets));
    this.#control = [];
    this.#packets = [];
    this.#bytes = 0;
    if (parts.length === 1) return parts[0];
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}
