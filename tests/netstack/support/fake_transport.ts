/**
 * An in-memory StreamTransport for the sans-IO TCP tests: it records every open and every call
 * the stack makes on a stream, and lets the test play the remote side (resolve the open, push
 * data, end, abort, toggle backpressure). Nothing is asynchronous: each test-side call runs the
 * stack's handler at once, as the session pool would between two batches.
 */
import type {
  Destination,
  OpenResult,
  RemoteStream,
  RemoteStreamEvents,
  StreamTransport,
} from "../../../src/netstack/types.ts";

export class FakeStream implements RemoteStream {
  /** Every chunk the stack wrote, copied (the stack may reuse the memory it passed). */
  readonly writes: Uint8Array[] = [];
  /** Every pause(true|false) call, in order. */
  readonly pauses: boolean[] = [];
  closeCalls = 0;
  abortCalls = 0;
  /** Contract breaches: a write while `writable()` was false, or after close/abort. */
  writesWhileBlocked = 0;
  writesAfterClose = 0;
  result?: OpenResult;
  #canWrite = true;
  /** Bytes the stream takes before `writable()` turns false (Infinity: no limit). */
  #budget = Infinity;

  constructor(readonly dst: Destination, readonly events: RemoteStreamEvents) {}

  // ---- RemoteStream (the stack's side) ---------------------------------------------------

  write(data: Uint8Array): void {
    if (!this.writable()) this.writesWhileBlocked++;
    if (this.closeCalls > 0 || this.abortCalls > 0) this.writesAfterClose++;
    this.writes.push(data.slice());
    this.#budget -= data.length;
  }

  writable(): boolean {
    return this.#canWrite && this.#budget > 0;
  }

  close(): void {
    this.closeCalls++;
  }

  abort(): void {
    this.abortCalls++;
  }

  pause(paused: boolean): void {
    this.pauses.push(paused);
  }

  // ---- the remote's side (the test) ------------------------------------------------------

  get closed(): boolean {
    return this.closeCalls > 0;
  }

  get aborted(): boolean {
    return this.abortCalls > 0;
  }

  /** Closed or aborted by the stack. */
  get done(): boolean {
    return this.closeCalls > 0 || this.abortCalls > 0;
  }

  get paused(): boolean {
    return this.pauses.length > 0 && this.pauses[this.pauses.length - 1];
  }

  /** Everything the stack wrote, as one array. */
  received(): Uint8Array {
    return concat(this.writes);
  }

  get receivedLength(): number {
    return this.writes.reduce((n, w) => n + w.length, 0);
  }

  resolve(result: OpenResult = "ok"): void {
    this.result = result;
    this.events.opened(result);
  }

  push(chunk: Uint8Array): void {
    this.events.data(chunk);
  }

  end(): void {
    this.events.end();
  }

  fail(reason = "test"): void {
    this.events.aborted(reason);
  }

  /** Backpressure on (false) or off (true); turning it off reports `writable` to the stack. */
  setWritable(on: boolean): void {
    this.#canWrite = on;
    this.#budget = Infinity;
    if (on) this.events.writable();
  }

  /** Take `n` more bytes, then stop being writable; reports `writable` when n > 0. */
  grant(n: number): void {
    this.#canWrite = true;
    this.#budget = n;
    if (n > 0) this.events.writable();
  }
}

export class FakeTransport implements StreamTransport {
  readonly opens: FakeStream[] = [];

  open(dst: Destination, events: RemoteStreamEvents): RemoteStream {
    const s = new FakeStream(dst, events);
    this.opens.push(s);
    return s;
  }

  /** The most recent open. */
  get last(): FakeStream {
    const s = this.opens[this.opens.length - 1];
    if (!s) throw new Error("no stream was opened");
    return s;
  }
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
