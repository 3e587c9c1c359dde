/**
 * Local TCP listener ⇄ smux streams of one Port session: each accepted connection becomes a
 * stream the agent dials to the destination. Backpressure both ways: local reads wait while the
 * session's window or socket buffer is full; when local writers fall behind, the channel stops
 * acking so the agent holds (and later resends) its data instead of us buffering without bound.
 */
import { concat } from "../bytequeue.ts";
import type { PortSession } from "./session.ts";
import type { SmuxStream } from "./smux.ts";

export interface ForwarderEvents {
  /** A connection's destination refused on the instance side (ConnectToPortError). */
  refused?(remote: string): void;
  connection?(remote: string, open: number): void;
}

/** Bytes waiting for slow local readers before we stop acking the agent. */
const RECEIVE_HIGH = 8 << 20;
const RECEIVE_LOW = 2 << 20;
const READ_SIZE = 32 * 1024;

export class Forwarder {
  #listener: Deno.Listener;
  #conns = new Set<Deno.Conn>();
  #pendingWrite = 0;
  #closing = false;
  readonly stats = { accepted: 0, bytesUp: 0, bytesDown: 0, refused: 0 };

  constructor(
    private session: PortSession,
    listener: Deno.Listener,
    private events: ForwarderEvents = {},
  ) {
    this.#listener = listener;
  }

  get addr(): Deno.NetAddr {
    return this.#listener.addr as Deno.NetAddr;
  }
  get openConnections(): number {
    return this.#conns.size;
  }

  /** Accept until close(). */
  async serve(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        if (this.#closing) {
          conn.close();
          break;
        }
        (conn as Deno.TcpConn).setNoDelay(true);
        this.#handle(conn);
      }
    } catch (e) {
      if (!this.#closing) throw e;
    }
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    try {
      this.#listener.close();
    } catch { /* already closed */ }
    for (const c of this.#conns) closeQuietly(c);
    this.#conns.clear();
  }

  #handle(conn: Deno.Conn): void {
    const remote = fmtAddr(conn.remoteAddr as Deno.NetAddr);
    this.stats.accepted++;
    this.#conns.add(conn);
    this.events.connection?.(remote, this.#conns.size);
    let ended = false;
    const writer = new QueuedWriter(conn, (n) => {
      this.#pendingWrite -= n;
      this.stats.bytesDown += n;
      this.#updateReceiveReady();
    });
    const finish = () => {
      if (ended) return;
      ended = true;
      this.#conns.delete(conn);
      stream.close();
      // Let queued writes reach the local peer before closing.
      // A write cut short (the peer left, or close() under a transfer) was counted as dropped.
      writer.idle().catch(() => {}).finally(() => closeQuietly(conn));
    };
    const stream: SmuxStream = this.session.openStream({
      data: (chunk) => {
        this.#pendingWrite += chunk.length;
        this.#updateReceiveReady();
        writer.push(chunk).catch(finish);
      },
      end: (refused) => {
        if (refused) {
          this.stats.refused++;
          this.events.refused?.(remote);
        }
        finish();
      },
    });
    this.#pumpUp(conn, stream, finish);
  }

  async #pumpUp(conn: Deno.Conn, stream: SmuxStream, finish: () => void): Promise<void> {
    const buf = new Uint8Array(READ_SIZE);
    try {
      while (true) {
        if (!this.session.writable) await this.session.waitWritable();
        if (stream.remoteClosed || this.#closing) break;
        const n = await conn.read(buf);
        if (n === null) break;
        this.stats.bytesUp += n;
        stream.write(buf.slice(0, n));
      }
    } catch {
      // reset by the local peer, or closed under us
    }
    finish();
  }

  #updateReceiveReady(): void {
    const ch = this.session.channel;
    if (this.#pendingWrite > RECEIVE_HIGH) ch.setReceiveReady(false);
    else if (this.#pendingWrite < RECEIVE_LOW) ch.setReceiveReady(true);
  }
}

/**
 * Writes chunks in order, coalescing whatever queued up while the previous write was in flight:
 * one syscall per burst instead of one per 1 KiB message.
 */
class QueuedWriter {
  #queue: Uint8Array[] = [];
  #running?: Promise<void>;
  /**
   * Cleared synchronously when the loop exits. Clearing it in a `.finally()` instead left a
   * microtask-wide window in which a pushed chunk joined a loop that had already ended: the tail
   * of a download was lost (seen once in CI: 47 KB short of 50 MB).
   */
  #active = false;

  constructor(private conn: Deno.Conn, private written: (n: number) => void) {}

  push(chunk: Uint8Array): Promise<void> {
    this.#queue.push(chunk);
    if (!this.#active) {
      this.#active = true;
      this.#running = this.#run();
    }
    return this.#running!;
  }

  idle(): Promise<void> {
    return this.#active ? this.#running! : Promise.resolve();
  }

  async #run(): Promise<void> {
    // The flag is cleared in the same synchronous step as the loop's last check (no await in
    // between), so a chunk pushed at any moment is either seen by the loop or starts a new one.
    while (this.#queue.length > 0) {
      const parts = this.#queue;
      this.#queue = [];
      const data = parts.length === 1 ? parts[0] : concat(parts);
      try {
        let o = 0;
        while (o < data.length) o += await this.conn.write(data.subarray(o));
      } catch (e) {
        // The local peer is gone: what is still queued will never be written.
        let dropped = 0;
        for (const p of this.#queue) dropped += p.length;
        this.#queue = [];
        this.written(dropped);
        this.#active = false;
        throw e;
      } finally {
        this.written(data.length);
      }
    }
    this.#active = false;
  }
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* already closed */ }
}

export function fmtAddr(a: Deno.NetAddr): string {
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
}
