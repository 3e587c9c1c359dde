/**
 * One stripe's TCP connection, sending side: a SendQueue drained by at most one write in flight.
 * Whatever is queued while a write is pending leaves in the next write, coalesced.
 */
import { encodeError, type LoadReport, type WireErrorBody } from "../src/tunnel/wire.ts";
import { SendQueue } from "./sendqueue.ts";
import type { StripeLink } from "./tunnels.ts";

/** How long a closing stripe may take to get its last frames (ERROR) out. */
const CLOSE_GRACE_MS = 1000;

export class StripeConn implements StripeLink {
  #writing = false;
  #closing = false;
  #closed = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #resolveClosed!: () => void;
  /** Backlog bookkeeping for LOAD reports: time spent waiting on writes since the last sample. */
  #busyMs = 0;
  /** When the write being awaited started, or undefined. */
  #writeStart?: number;
  #sampledAt = performance.now();
  #sampledDrops = 0;
  /** Resolves once the connection is closed and no write is pending. */
  readonly closed: Promise<void>;

  constructor(readonly conn: Deno.Conn, readonly queue: SendQueue = new SendQueue()) {
    this.closed = new Promise((r) => (this.#resolveClosed = r));
  }

  get isClosing(): boolean {
    return this.#closing || this.#closed;
  }

  enqueue(p: Uint8Array): boolean {
    if (this.#closing) return false;
    return this.queue.push(p);
  }

  /** Queue a control frame (WELCOME, PONG) and send it. */
  send(frame: Uint8Array): void {
    if (this.#closing) return;
    this.queue.pushControl(frame);
    this.flush();
  }

  flush(): void {
    if (!this.#writing && !this.#closed) this.#pump();
  }

  close(error?: WireErrorBody): void {
    if (this.#closing) return;
    this.#closing = true;
    if (error) this.queue.pushControl(encodeError(error));
    if (!this.#writing && this.queue.empty) return this.#finish();
    // The peer may not be reading: do not wait for it forever.
    this.#closeTimer = setTimeout(() => this.#finish(), CLOSE_GRACE_MS);
    this.flush();
  }

  /**
   * How backed up this stripe was since the last call: the share of the time spent waiting on
   * writes (a paced session that cannot keep up keeps the socket full, so writes wait; a fast
   * one takes them at once) and the packets its queue dropped.
   */
  sampleLoad(now = performance.now()): LoadReport {
    if (this.#writeStart !== undefined) {
      this.#busyMs += now - this.#writeStart;
      this.#writeStart = now;
    }
    const span = Math.max(1, now - this.#sampledAt);
    const report = {
      busy: Math.min(1000, (this.#busyMs / span) * 1000),
      drops: this.queue.dropped - this.#sampledDrops,
    };
    this.#busyMs = 0;
    this.#sampledAt = now;
    this.#sampledDrops = this.queue.dropped;
    return report;
  }

  /** Close now, dropping anything queued (the connection failed). */
  abort(): void {
    this.#closing = true;
    this.#finish();
  }

  async #pump(): Promise<void> {
    this.#writing = true;
    try {
      for (let buf = this.queue.take(); buf && !this.#closed; buf = this.queue.take()) {
        for (let o = 0; o < buf.length;) {
          this.#writeStart = performance.now();
          o += await this.conn.write(buf.subarray(o));
          this.#busyMs += performance.now() - this.#writeStart;
          this.#writeStart = undefined;
        }
      }
    } catch {
      this.#closing = true; // peer gone; the reader sees it too and unregisters the stripe
    } finally {
      this.#writing = false;
      this.#writeStart = undefined;
    }
    if (this.#closing) this.#finish();
  }

  #finish(): void {
    clearTimeout(this.#closeTimer);
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.conn.close();
      } catch { /* already closed */ }
    }
    if (!this.#writing) this.#resolveClosed();
  }
}
