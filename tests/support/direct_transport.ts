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

/** One stream as the lab sees it, for assertions and for explaining a stall. */
export interface StreamInfo {
  dst: string;
  /** opening → open → (closing →) closed. */
  state: "opening" | "open" | "closing" | "closed";
  /** Bytes handed to us by the netstack / written to the destination / read from it. */
  taken: number;
  written: number;
  read: number;
  paused: boolean;
  /** What ended it: "close", "abort", "eof", "reset by destination", "write failed", … */
  end?: string;
}

export class DirectTransport implements StreamTransport {
  /** Every destination asked for, in order. */
  readonly opened: Destination[] = [];
  /** Streams with a live local connection. */
  live = 0;
  /** Live streams by destination ("host|port"). */
  readonly liveTo = new Map<string, number>();
  /** pause(true) calls, over all streams (the netstack holding a fast destination back). */
  pauses = 0;
  /** Streams not yet closed, with their counters. */
  readonly streams = new Set<StreamInfo>();
  /** Called after every chunk from a destination has been handed to the netstack. */
  afterData?: () => void;
  /** The most one read from a destination returns. */
  readonly readSize = 64 * 1024;

  constructor(private o: DirectOptions) {}

  open(dst: Destination, ev: RemoteStreamEvents): RemoteStream {
    const info: StreamInfo = {
      dst: `${dst.host}|${dst.port}`,
      state: "opening",
      taken: 0,
      written: 0,
      read: 0,
      paused: false,
    };
    this.opened.push(dst);
    this.streams.add(info);
    this.live++;
    this.liveTo.set(info.dst, (this.liveTo.get(info.dst) ?? 0) + 1);
    return new DirectStream(this, dst, ev, info, this.o);
  }

  /** The stream's local connection is gone (or never came): count it out once. */
  release(info: StreamInfo, end: string): void {
    if (info.state === "closed") return;
    info.state = "closed";
    info.end ??= end;
    this.streams.delete(info);
    this.live--;
    const n = (this.liveTo.get(info.dst) ?? 1) - 1;
    if (n > 0) this.liveTo.set(info.dst, n);
    else this.liveTo.delete(info.dst);
  }
}

class DirectStream implements RemoteStream {
  #conn?: Deno.TcpConn;
  /** close() or abort() has been called. */
  #done = false;
  #over = false;
  #queued = 0;
  #queue: Uint8Array[] = [];
  #writing = false;
  #resume?: () => void;
  #closeWhenDrained = false;
  #high: number;

  constructor(
    private t: DirectTransport,
    dst: Destination,
    private ev: RemoteStreamEvents,
    private info: StreamInfo,
    o: DirectOptions,
  ) {
    this.#high = o.highWater ?? 256 * 1024;
    this.#dial(dst, o);
  }

  write(d: Uint8Array): void {
    if (this.#done) return;
    this.#queue.push(d.slice());
    this.#queued += d.length;
    this.info.taken += d.length;
    if (this.#queued >= this.#high) this.#over = true;
    this.#pump();
  }

  writable(): boolean {
    return !this.#over;
  }

  close(): void {
    if (this.#done) return;
    this.#done = true;
    this.#closeWhenDrained = true;
    if (this.info.state !== "closed") this.info.state = "closing";
    if (!this.#writing && this.#queue.length === 0) this.#shut("close");
  }

  abort(): void {
    if (this.#done) return;
    this.#done = true;
    this.#queue.length = 0;
    this.#shut("abort");
  }

  pause(p: boolean): void {
    if (p && !this.info.paused) this.t.pauses++;
    this.info.paused = p;
    if (!p) {
      this.#resume?.();
      this.#resume = undefined;
    }
  }

  #shut(end: string): void {
    this.t.release(this.info, end);
    try {
      this.#conn?.close();
    } catch { /* closed */ }
  }

  async #dial(dst: Destination, o: DirectOptions): Promise<void> {
    if (o.openDelayMs) await new Promise((r) => setTimeout(r, o.openDelayMs));
    const to = o.map(dst);
    if (!to) {
      this.t.release(this.info, "unreachable");
      if (!this.#done) this.ev.opened("unreachable");
      return;
    }
    try {
      this.#conn = await Deno.connect({ ...to, transport: "tcp" });
      this.#conn.setNoDelay(true);
    } catch (e) {
      const refused = e instanceof Deno.errors.ConnectionRefused;
      this.t.release(this.info, refused ? "refused" : "unreachable");
      if (!this.#done) this.ev.opened(refused ? "refused" : "unreachable");
      return;
    }
    if (this.#done) {
      this.#shut("closed while opening");
      return;
    }
    this.info.state = "open";
    this.ev.opened("ok");
    this.#pump();
    this.#read(this.#conn);
  }

  async #pump(): Promise<void> {
    const conn = this.#conn;
    if (this.#writing || !conn) return;
    this.#writing = true;
    try {
      while (this.#queue.length > 0) {
        const c = this.#queue.shift()!;
        let o = 0;
        while (o < c.length) o += await conn.write(c.subarray(o));
        this.info.written += c.length;
        this.#queued -= c.length;
        if (this.#over && this.#queued < this.#high / 2) {
          this.#over = false;
          if (!this.#done) this.ev.writable();
        }
      }
    } catch {
      if (!this.#done) this.ev.aborted("write failed");
      this.#done = true;
      this.#shut("write failed");
      return;
    } finally {
      this.#writing = false;
    }
    if (this.#closeWhenDrained) this.#shut("close");
  }

  async #read(c: Deno.TcpConn): Promise<void> {
    const buf = new Uint8Array(this.t.readSize);
    try {
      while (true) {
        if (this.info.paused) await new Promise<void>((r) => (this.#resume = r));
        const n = await c.read(buf);
        if (this.#done) return;
        if (n === null) {
          this.t.release(this.info, "eof");
          this.ev.end();
          return;
        }
        this.info.read += n;
        this.ev.data(buf.slice(0, n));
        this.t.afterData?.();
      }
    } catch {
      if (!this.#done) {
        this.t.release(this.info, "reset by destination");
        this.ev.aborted("connection reset by the destination");
      }
    }
  }
}
