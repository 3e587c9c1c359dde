/**
 * One stripe's TCP connection, sending side: a SendQueue drained by at most one write in flight.
 * Whatever is queued while a write is pending leaves in the next write, coalesced.
 */
import { encodeError, type WireErrorBody } from "../src/tunnel/wire.ts";
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

  /** Close now, dropping anything queued (the connection failed). */
  abort(): void {
    this.#closing = true;
    this.#finish();
  }

  async #pump(): Promise<void> {
    this.#writing = true;
    try {
      for (let buf = this.queue.take(); buf && !this.#closed; buf = this.queue.take()) {
        for (let o = 0; o < buf.length;) o += await this.conn.write(buf.subarray(o));
      }
    } catch {
      this.#closing = true; // peer gone; the reader sees it too and unregisters the stripe
    } finally {
      this.#writing = false;
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
