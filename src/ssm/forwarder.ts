/**
 * Local TCP listener ⇄ smux streams of Port sessions: each accepted connection becomes a stream
 * the agent dials to the destination, on the session the caller picks (its Lane), and stays on
 * it. Backpressure both ways, per session: local reads wait while that session's window or
 * socket buffer is full; when local writers fall behind, its channel stops acking so the agent
 * holds (and later resends) its data instead of us buffering without bound.
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
/** A connection that moved data within this long is busy. */
const BUSY_MS = 2_000;

interface ConnActivity {
  lastActive: number;
}

/** One session's share of the forwarder: its connections and what they are doing. */
export class Lane {
  readonly conns = new Map<Deno.Conn, ConnActivity>();
  /** Connections ever placed on it, and those cut off because the session ended. */
  accepted = 0;
  cutOff = 0;
  /** Received, not yet written to local peers. */
  pendingWrite = 0;
  /** A local reader waited for this session's send window since `takeBlocked()`. */
  #blocked = false;

  constructor(readonly session: PortSession, readonly index: number) {}

  get connections(): number {
    return this.conns.size;
  }

  /** Connections that moved data in the last two seconds. */
  busyConnections(now = Date.now()): number {
    let n = 0;
    for (const a of this.conns.values()) if (now - a.lastActive < BUSY_MS) n++;
    return n;
  }

  /** Whether a reader waited for the window since the last call; resets it. */
  takeBlocked(): boolean {
    const b = this.#blocked || !this.session.writable;
    this.#blocked = false;
    return b;
  }

  /** @internal */
  markBlocked(): void {
    this.#blocked = true;
  }
}

export class Forwarder {
  #listener: Deno.Listener;
  #lanes = new Set<Lane>();
  #closing = false;
  readonly stats = { accepted: 0, bytesUp: 0, bytesDown: 0, refused: 0 };

  /** `pick`: the lane a new connection goes on (and stays on). */
  constructor(
    private pick: () => Lane,
    listener: Deno.Listener,
    private events: ForwarderEvents = {},
  ) {
    this.#listener = listener;
  }

  get addr(): Deno.NetAddr {
    return this.#listener.addr as Deno.NetAddr;
  }
  get openConnections(): number {
    let n = 0;
    for (const l of this.#lanes) n += l.connections;
    return n;
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
    for (const l of this.#lanes) {
      for (const c of l.conns.keys()) closeQuietly(c);
      l.conns.clear();
    }
  }

  #handle(conn: Deno.Conn): void {
    const remote = fmtAddr(conn.remoteAddr as Deno.NetAddr);
    const lane = this.pick();
    this.#lanes.add(lane);
    this.stats.accepted++;
    const activity = { lastActive: Date.now() };
    lane.conns.set(conn, activity);
    lane.accepted++;
    this.events.connection?.(remote, this.openConnections);
    let ended = false;
    const writer = new QueuedWriter(conn, (n) => {
      lane.pendingWrite -= n;
      this.stats.bytesDown += n;
      updateReceiveReady(lane);
    });
    const finish = () => {
      if (ended) return;
      ended = true;
      lane.conns.delete(conn);
      if (lane.conns.size === 0) this.#lanes.delete(lane);
      stream.close();
      // Let queued writes reach the local peer before closing.
      // A write cut short (the peer left, or close() under a transfer) was counted as dropped.
      writer.idle().catch(() => {}).finally(() => closeQuietly(conn));
    };
    const stream: SmuxStream = lane.session.openStream({
      data: (chunk) => {
        activity.lastActive = Date.now();
        lane.pendingWrite += chunk.length;
        updateReceiveReady(lane);
        writer.push(chunk).catch(finish);
      },
      end: (refused) => {
        if (lane.session.state === "closed") lane.cutOff++;
        if (refused) {
          this.stats.refused++;
          this.events.refused?.(remote);
        }
        finish();
      },
    });
    this.#pumpUp(conn, lane, stream, activity, finish);
  }

  async #pumpUp(
    conn: Deno.Conn,
    lane: Lane,
    stream: SmuxStream,
    activity: ConnActivity,
    finish: () => void,
  ): Promise<void> {
    const buf = new Uint8Array(READ_SIZE);
    const session = lane.session;
    try {
      while (true) {
        if (!session.writable) {
          lane.markBlocked();
          await session.waitWritable();
        }
        if (stream.remoteClosed || this.#closing) break;
        const n = await conn.read(buf);
        if (n === null) break;
        activity.lastActive = Date.now();
        this.stats.bytesUp += n;
        stream.write(buf.slice(0, n));
      }
    } catch {
      // reset by the local peer, or closed under us
    }
    finish();
  }
}

function updateReceiveReady(lane: Lane): void {
  const ch = lane.session.channel;
  if (lane.pendingWrite > RECEIVE_HIGH) ch.setReceiveReady(false);
  else if (lane.pendingWrite < RECEIVE_LOW) ch.setReceiveReady(true);
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
