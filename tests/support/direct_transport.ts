/**
 * A StreamTransport that dials each destination directly over local TCP (through a map, e.g.
 * 10.200.0.5:80 → 127.0.0.1:80), with the SSM mux's semantics: no half-close (close() ends both
 * directions once queued bytes are written), no RST (abort() just closes). It lets the netstack
 * be tested and benchmarked against the real kernel without Session Manager in the way
 * (specs/netstack.md §12.4: "remote side = in-process fake transport").
 */
import type {
  Destination,
  RemoteStream,
  RemoteStreamEvents,
  StreamTransport,
} from "../../src/netstack/types.ts";

export interface DirectOptions {
  /** Where to really connect for a destination; undefined = unreachable. */
  map(dst: Destination): { hostname: string; port: number } | undefined;
  /** Delay before the dial (a slow session start). */
  openDelayMs?: number;
  /** Bytes queued for the destination before writable() turns false. */
  highWater?: number;
}

export class DirectTransport implements StreamTransport {
  /** Every destination asked for, in order. */
  readonly opened: Destination[] = [];
  /** Streams with a live local connection. */
  live = 0;

  constructor(private o: DirectOptions) {}

  open(dst: Destination, ev: RemoteStreamEvents): RemoteStream {
    return this.#stream(dst, ev);
  }

  #stream(dst: Destination, ev: RemoteStreamEvents): RemoteStream {
    this.opened.push(dst);
    const high = this.o.highWater ?? 256 * 1024;
    let conn: Deno.TcpConn | undefined;
    let done = false; // close() or abort() called
    let over = false;
    let queued = 0;
    const queue: Uint8Array[] = [];
    let writing = false;
    let paused = false;
    let resume: (() => void) | undefined;
    let closeWhenDrained = false;
    this.live++;
    let counted = true;
    const release = () => {
      if (counted) {
        counted = false;
        this.live--;
      }
    };
    const shut = () => {
      release();
      try {
        conn?.close();
      } catch { /* closed */ }
    };
    const pump = async () => {
      if (writing || !conn) return;
      writing = true;
      try {
        while (queue.length > 0) {
          const c = queue.shift()!;
          let o = 0;
          while (o < c.length) o += await conn.write(c.subarray(o));
          queued -= c.length;
          if (over && queued < high / 2) {
            over = false;
            if (!done) ev.writable();
          }
        }
      } catch {
        if (!done) ev.aborted("write failed");
        done = true;
        shut();
        return;
      } finally {
        writing = false;
      }
      if (closeWhenDrained) shut();
    };
    const read = async (c: Deno.TcpConn) => {
      const buf = new Uint8Array(64 * 1024);
      try {
        while (true) {
          if (paused) await new Promise<void>((r) => (resume = r));
          const n = await c.read(buf);
          if (done) return;
          if (n === null) {
            ev.end();
            return;
          }
          ev.data(buf.slice(0, n));
        }
      } catch {
        if (!done) ev.aborted("connection reset by the destination");
      } finally {
        if (!done) release();
      }
    };
    (async () => {
      if (this.o.openDelayMs) await new Promise((r) => setTimeout(r, this.o.openDelayMs));
      const to = this.o.map(dst);
      if (!to) {
        release();
        if (!done) ev.opened("unreachable");
        return;
      }
      try {
        conn = await Deno.connect({ ...to, transport: "tcp" });
        conn.setNoDelay(true);
      } catch (e) {
        release();
        if (!done) {
          ev.opened(e instanceof Deno.errors.ConnectionRefused ? "refused" : "unreachable");
        }
        return;
      }
      if (done) {
        shut();
        return;
      }
      ev.opened("ok");
      pump();
      read(conn);
    })();
    return {
      write(d) {
        if (done) return;
        queue.push(d.slice());
        queued += d.length;
        if (queued >= high) over = true;
        pump();
      },
      writable: () => !over,
      close() {
        if (done) return;
        done = true;
        closeWhenDrained = true;
        if (!writing && queue.length === 0) shut();
      },
      abort() {
        if (done) return;
        done = true;
        queue.length = 0;
        shut();
      },
      pause(p) {
        paused = p;
        if (!p) {
          resume?.();
          resume = undefined;
        }
      },
    };
  }
}
