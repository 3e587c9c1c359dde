/**
 * The agent's outgoing byte pipe (specs/ssm-protocol.md §8): whatever the port side produces
 * (smux frames, or raw TCP bytes in basic mode) is one continuous byte stream, read in chunks,
 * each chunk sent as one Output message.
 *
 * With pacing (the real agent): 1024-byte reads and a 1 ms sleep after each message, which is
 * what holds a real session to about 1 KiB/ms (here kept to one message per ms on a schedule). Without pacing: reads of up to 32 KiB and no
 * sleep, for fast tests; the framing is otherwise identical.
 *
 * Backpressure runs both ways from here: the pump waits while `canSend()` is false (paused, or
 * too much unacked), and producers wait in `room()` while the pipe holds more than `highWater`.
 */

export interface PumpOptions {
  chunkSize: number;
  /** Sleep after each message; 0 for none. */
  pacingMs: number;
  /** Producers block while more than this is queued. */
  highWater: number;
  canSend(): boolean;
  emit(chunk: Uint8Array): void;
}

const MAX_CATCH_UP_MS = 4;

export const PACED = { chunkSize: 1024, pacingMs: 1 } as const;
export const UNPACED = { chunkSize: 32 * 1024, pacingMs: 0 } as const;

export class OutputPump {
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  #closed = false;
  #running = false;
  #sleepTimer?: ReturnType<typeof setTimeout>;
  #sleepDone?: () => void;
  #roomWaiters: (() => void)[] = [];
  #loop: Promise<void> = Promise.resolve();

  constructor(private opts: PumpOptions) {}

  get buffered(): number {
    return this.#bytes;
  }

  push(bytes: Uint8Array): void {
    if (this.#closed || bytes.length === 0) return;
    this.#chunks.push(bytes);
    this.#bytes += bytes.length;
    this.kick();
  }

  /** Resolves when producers may push more (or the pump closed). */
  room(): Promise<void> {
    if (this.#closed || this.#bytes < this.opts.highWater) return Promise.resolve();
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
  }

  /** Something changed that may let the pump send (an ack, unpause, new bytes). */
  kick(): void {
    if (this.#running || this.#closed || this.#bytes === 0) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#sleepTimer);
    this.#sleepDone?.();
    this.#chunks = [];
    this.#bytes = 0;
    this.#wakeProducers();
    await this.#loop;
  }

  async #run(): Promise<void> {
    // Pacing keeps to a schedule rather than sleeping a fixed time: JS timers fire a millisecond
    // or more late, and plain 1 ms sleeps would give half the real agent's ~1 KiB/ms.
    let next = performance.now();
    try {
      while (!this.#closed && this.#bytes > 0 && this.opts.canSend()) {
        this.opts.emit(this.#take(this.opts.chunkSize));
        this.#wakeProducers();
        if (this.opts.pacingMs <= 0) continue;
        const now = performance.now();
        // Never bank more than a few messages of credit after a late timer.
        next = Math.max(next + this.opts.pacingMs, now - MAX_CATCH_UP_MS);
        if (next > now) await this.#sleep(next - now);
      }
    } finally {
      this.#running = false;
    }
  }

  #take(max: number): Uint8Array {
    const first = this.#chunks[0];
    if (first.length > max) {
      this.#chunks[0] = first.subarray(max);
      this.#bytes -= max;
      return first.subarray(0, max);
    }
    if (first.length === max || this.#chunks.length === 1) {
      this.#chunks.shift();
      this.#bytes -= first.length;
      return first;
    }
    const out = new Uint8Array(Math.min(max, this.#bytes));
    let o = 0;
    while (o < out.length) {
      const c = this.#chunks[0];
      const n = Math.min(c.length, out.length - o);
      out.set(c.subarray(0, n), o);
      o += n;
      if (n === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(n);
    }
    this.#bytes -= out.length;
    return out;
  }

  #wakeProducers(): void {
    if (!this.#closed && this.#bytes >= this.opts.highWater) return;
    const w = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const f of w) f();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#sleepDone = resolve;
      this.#sleepTimer = setTimeout(() => {
        this.#sleepTimer = undefined;
        resolve();
      }, ms);
    });
  }
}
