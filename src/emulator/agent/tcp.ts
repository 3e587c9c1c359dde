/**
 * One TCP connection from the emulated agent to the forwarding destination. Writes are queued
 * and applied in order (Deno writes are async and may be partial); reads are handed to the owner,
 * which may make the reader wait (backpressure) by returning a promise.
 */
import { concat } from "../../bytequeue.ts";

export interface TcpLinkHandlers {
  /** Bytes read; the next read waits for the returned promise. */
  data(bytes: Uint8Array): Promise<void>;
  /** Dial failed; no other callback follows. */
  dialError(err: Error): void;
  /** The connection is gone (EOF, error, or close()); called once, after the last `data`. */
  closed(): void;
}

/** Size of each read; the pump re-chunks, so this only bounds one smux PSH frame. */
const READ_SIZE = 32 * 1024;

export class TcpLink {
  #conn?: Deno.TcpConn;
  #writes: Promise<void>;
  #pendingWrite = 0;
  #queue: Uint8Array[] = [];
  #flushing = false;
  #closed = false;
  #closeAfterWrites = false;
  #closedNotified = false;
  readonly done: Promise<void>;

  constructor(hostname: string, port: number, private h: TcpLinkHandlers) {
    // The real agent joins host and port with Go's net.JoinHostPort, which adds the brackets of
    // an IPv6 host itself: a host that arrives bracketed cannot be dialled there. Deno would
    // dial it, hiding a client bug that only real AWS would show.
    const dial = /[[\]]/.test(hostname)
      ? Promise.reject(new Error(`address [${hostname}]:${port}: missing port in address`))
      : Deno.connect({ hostname, port, transport: "tcp" });
    this.#writes = dial.then(() => {}, () => {});
    this.done = dial.then(
      (conn) => this.#opened(conn),
      (err) => {
        this.#closed = true;
        this.h.dialError(err as Error);
      },
    );
  }

  /** Bytes queued for the destination and not yet written. */
  get pendingWrite(): number {
    return this.#pendingWrite;
  }

  get closed(): boolean {
    return this.#closed;
  }

  write(bytes: Uint8Array): void {
    if (this.#closed || this.#closeAfterWrites || bytes.length === 0) return;
    this.#pendingWrite += bytes.length;
    this.#queue.push(bytes);
    if (this.#flushing) return; // the running flush takes it
    this.#flushing = true;
    // Connected and idle: start the write now, inside this call, as the agent's synchronous Go
    // write does. Chained behind a resolved promise it went out only after the caller's ack was
    // built and sent, which cost every idle round trip ~0.3 ms in the lab.
    this.#writes = this.#conn ? this.#flush() : this.#writes.then(() => this.#flush());
  }

  /**
   * Coalesce whatever queues up while a write is in flight: one syscall per burst, not one
   * await per 1 KiB message (a Go agent writes synchronously; an await each would cap us).
   */
  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const parts = this.#queue;
      this.#queue = [];
      const data = parts.length === 1 ? parts[0] : concat(parts);
      try {
        if (this.#conn && !this.#closed) await writeAll(this.#conn, data);
      } catch {
        this.close();
      } finally {
        this.#pendingWrite -= data.length;
      }
    }
    this.#flushing = false;
  }

  /** Close once everything queued has been written: a FIN from the client. */
  closeAfterWrites(): void {
    if (this.#closed || this.#closeAfterWrites) return;
    this.#closeAfterWrites = true;
    this.#writes = this.#writes.then(() => this.close());
  }

  /** Close now, in both directions (the agent has no half-close, §8). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn?.close();
    } catch {
      // Already closed by the peer.
    }
  }

  async #opened(conn: Deno.TcpConn): Promise<void> {
    this.#conn = conn;
    // Like Go's net package (the real agent), no Nagle: small packets of an interactive flow
    // must not wait for a delayed ACK.
    conn.setNoDelay(true);
    if (this.#closed) {
      conn.close();
      this.#notifyClosed();
      return;
    }
    try {
      while (!this.#closed) {
        const buf = new Uint8Array(READ_SIZE);
        const n = await conn.read(buf);
        if (n === null) break;
        await this.h.data(buf.subarray(0, n));
      }
    } catch {
      // Reset by the peer, or closed under the pending read by close().
    }
    this.close();
    await this.#writes;
    this.#notifyClosed();
  }

  #notifyClosed(): void {
    if (this.#closedNotified) return;
    this.#closedNotified = true;
    this.h.closed();
  }
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  let o = 0;
  while (o < bytes.length) o += await conn.write(bytes.subarray(o));
}
