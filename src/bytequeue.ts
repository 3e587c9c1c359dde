/**
 * A FIFO of byte chunks for stream parsers: push chunks as they arrive, then peek at headers
 * and take bodies. A body inside one chunk is returned as a view (no copy); only bodies that
 * span chunks are copied, so parsing stays linear however the stream is cut. Chunks are kept by
 * reference until consumed: callers must not reuse a pushed buffer.
 */
const EMPTY = new Uint8Array(0);

export class ByteQueue {
  #chunks: Uint8Array[] = [];
  /** Index of the first chunk still in use (consumed ones are dropped in bulk, not shifted). */
  #first = 0;
  /** Offset into the first chunk of the first unconsumed byte. */
  #head = 0;
  #length = 0;
  #scratch = new Uint8Array(16);

  get length(): number {
    return this.#length;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The next `n` bytes (n ≤ 16) without consuming them; valid until the next call. */
  peek(n: number): Uint8Array {
    if (n > this.#length || n > this.#scratch.length) throw new RangeError(`peek ${n}`);
    const first = this.#chunks[this.#first];
    if (first.length - this.#head >= n) return first.subarray(this.#head, this.#head + n);
    let o = 0;
    let at = this.#head;
    for (let i = this.#first; o < n; i++, at = 0) {
      const c = this.#chunks[i];
      const k = Math.min(n - o, c.length - at);
      this.#scratch.set(c.subarray(at, at + k), o);
      o += k;
    }
    return this.#scratch.subarray(0, n);
  }

  /** Consume and return `n` bytes. */
  take(n: number): Uint8Array {
    if (n > this.#length) throw new RangeError(`take ${n} of ${this.#length}`);
    if (n === 0) return EMPTY;
    this.#length -= n;
    const first = this.#chunks[this.#first];
    if (first.length - this.#head >= n) {
      const out = first.subarray(this.#head, this.#head + n);
      this.#advance(n);
      return out;
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.#chunks[this.#first];
      const k = Math.min(n - o, c.length - this.#head);
      out.set(c.subarray(this.#head, this.#head + k), o);
      o += k;
      this.#advance(k);
    }
    return out;
  }

  /**
   * Copy `n` bytes that start `offset` bytes into the queue to `out` at `at`, consuming nothing
   * (a TCP sender reads what it may have to send again).
   */
  copyOut(offset: number, n: number, out: Uint8Array, at = 0): void {
    if (offset + n > this.#length) throw new RangeError(`copy ${offset}+${n} of ${this.#length}`);
    if (n === 0) return;
    let i = this.#first;
    let skip = this.#head + offset;
    while (skip >= this.#chunks[i].length) skip -= this.#chunks[i++].length;
    while (n > 0) {
      const c = this.#chunks[i++];
      const k = Math.min(n, c.length - skip);
      out.set(c.subarray(skip, skip + k), at);
      at += k;
      n -= k;
      skip = 0;
    }
  }

  clear(): void {
    this.#chunks = [];
    this.#first = 0;
    this.#head = 0;
    this.#length = 0;
  }

  skip(n: number): void {
    if (n > this.#length) throw new RangeError(`skip ${n} of ${this.#length}`);
    this.#length -= n;
    while (n > 0) {
      const k = Math.min(n, this.#chunks[this.#first].length - this.#head);
      this.#advance(k);
      n -= k;
    }
  }

  #advance(k: number): void {
    this.#head += k;
    if (this.#head === this.#chunks[this.#first].length) {
      this.#first++;
      this.#head = 0;
      if (this.#first === this.#chunks.length) {
        this.#chunks = [];
        this.#first = 0;
      } else if (this.#first >= 1024) {
        this.#chunks = this.#chunks.slice(this.#first);
        this.#first = 0;
      }
    }
  }
}

/** Join chunks into one buffer (one copy). */
export function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
