/**
 * The I/O edge of agentless mode: reads batches of packets from the Tun into the NetStack,
 * flushes after each batch and soon after stream events, and runs its timers from one host
 * timer armed for the earliest deadline (specs/netstack.md §1, §14).
 */
import type { Tun } from "../net/types.ts";
import { NetStack, type NetStackOptions } from "./stack.ts";

/** The longest a read waits, so close() is noticed promptly. */
const READ_WAIT_MS = 250;

export class NetStackDriver {
  readonly stack: NetStack;
  #tun: Tun;
  #closed = false;
  #flushQueued = false;
  #timer?: ReturnType<typeof setTimeout>;
  #timerAt = Infinity;
  /** Packets the kernel would not take (its queue was full). */
  dropsIn = 0;
  /** Packets and bytes from the kernel (read) and to it (written). */
  readonly counts = { packetsRead: 0, bytesRead: 0, packetsWritten: 0, bytesWritten: 0 };

  constructor(tun: Tun, o: Omit<NetStackOptions, "emit" | "wake" | "mtu" | "now">) {
    this.#tun = tun;
    this.stack = new NetStack({
      ...o,
      mtu: tun.mtu,
      now: () => performance.now(),
      emit: (pkt) => {
        if (this.#closed) return false;
        const ok = tun.write(pkt);
        if (!ok) this.dropsIn++;
        else {
          this.counts.packetsWritten++;
          this.counts.bytesWritten += pkt.length;
        }
        return ok;
      },
      wake: () => this.#queueFlush(),
    });
  }

  /** Pump until close(). */
  async run(): Promise<void> {
    while (!this.#closed) {
      const packets = await this.#tun.read(this.#readWait());
      if (this.#closed) break;
      for (const p of packets) {
        this.counts.packetsRead++;
        this.counts.bytesRead += p.length;
        this.stack.input(p);
      }
      this.stack.tick(); // due timers, then one flush for the whole batch
      this.#armTimer();
    }
  }

  /** Reset every connection and stop pumping; the Tun is the caller's to close. */
  close(): void {
    if (this.#closed) return;
    this.stack.close();
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #readWait(): number {
    const d = this.stack.nextDeadline();
    if (d === undefined) return READ_WAIT_MS;
    return Math.max(0, Math.min(READ_WAIT_MS, Math.ceil(d - performance.now())));
  }

  #queueFlush(): void {
    if (this.#flushQueued || this.#closed) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      if (this.#closed) return;
      this.stack.flush();
      this.#armTimer();
    });
  }

  /** A deadline set between reads may be earlier than the pending read's wait: cover it. */
  #armTimer(): void {
    const d = this.stack.nextDeadline();
    if (d === undefined || d >= this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = d;
    this.#timer = setTimeout(() => {
      this.#timerAt = Infinity;
      if (this.#closed) return;
      this.stack.tick();
      this.#armTimer();
    }, Math.max(0, d - performance.now()));
  }
}
