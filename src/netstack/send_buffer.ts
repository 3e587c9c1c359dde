/**
 * Bytes from the remote stream waiting to be sent or acknowledged (specs/netstack.md §5.4):
 * chunks kept by reference from SND.UNA on, read at any offset for (re)transmission, dropped
 * from the front as the kernel acknowledges them.
 */
export class SendBuffer {
  #chunks: Uint8Array[] = [];
  #first = 0;
  /** Offset of SND.UNA's byte inside the first chunk. */
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** Copy `n` bytes starting `offset` bytes after the front into `out` at `at`. */
  copy(offset: number, n: number, out: Uint8Array, at = 0): void {
    if (offset + n > this.#length) throw new RangeError(`copy ${offset}+${n} of ${this.#length}`);
    let i = this.#first;
    let skip = this.#head + offset;
    while (skip >= this.#chunks[i].length) {
      skip -= this.#chunks[i].length;
      i++;
    }
    while (n > 0) {
      const c = this.#chunks[i++];
      const k = Math.min(n, c.length - skip);
      out.set(c.subarray(skip, skip + k), at);
      at += k;
      n -= k;
      skip = 0;
    }
  }

  /** Forget the first `n` bytes (acknowledged). */
  drop(n: number): void {
    n = Math.min(n, this.#length);
    this.#length -= n;
    while (n > 0) {
      const k = Math.min(n, this.#chunks[this.#first].length - this.#head);
      this.#head += k;
      n -= k;
      if (this.#head === this.#chunks[this.#first].length) {
        this.#first++;
        this.#head = 0;
      }
    }
    if (this.#first === this.#chunks.length) {
      this.#chunks = [];
      this.#first = 0;
    } else if (this.#first >= 256) {
      this.#chunks = this.#chunks.slice(this.#first);
      this.#first = 0;
    }
  }

  clear(): void {
    this.#chunks = [];
    this.#first = 0;
    this.#head = 0;
    this.#length = 0;
  }
}
