/**
 * DNS over TCP framing (RFC 1035 §4.2.2): each message is preceded by its length as two bytes,
 * big-endian. The stream hands us arbitrary chunks, so a prefix or a message may be split
 * anywhere and several may share a chunk.
 */

/** The message with its 2-byte length prefix, in a new buffer. */
export function frame(msg: Uint8Array): Uint8Array {
  if (msg.length > 0xffff) {
    throw new RangeError(`DNS message of ${msg.length} bytes cannot be framed`);
  }
  const out = new Uint8Array(2 + msg.length);
  out[0] = msg.length >>> 8;
  out[1] = msg.length & 0xff;
  out.set(msg, 2);
  return out;
}

/** Reassembles framed messages from a byte stream. */
export class FrameReader {
  /** The first byte of a prefix split across chunks, or -1. */
  #half = -1;
  /** The message being filled, once its length is known. */
  #body: Uint8Array | undefined;
  #filled = 0;

  /** Bytes held for an incomplete frame. */
  get pending(): number {
    return (this.#half >= 0 ? 1 : 0) + (this.#body ? 2 + this.#filled : 0);
  }

  /**
   * Feed the next chunk; returns the messages it completed, in order. Each is a fresh copy, so
   * the caller may keep or edit it and may reuse `chunk`. Zero-length frames carry nothing and
   * are skipped.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.#body) {
        const n = Math.min(this.#body.length - this.#filled, chunk.length - at);
        this.#body.set(chunk.subarray(at, at + n), this.#filled);
        this.#filled += n;
        at += n;
        if (this.#filled === this.#body.length) {
          out.push(this.#body);
          this.#body = undefined;
        }
        continue;
      }
      let len: number;
      if (this.#half >= 0) {
        len = (this.#half << 8) | chunk[at++];
        this.#half = -1;
      } else if (at + 1 < chunk.length) {
        len = (chunk[at] << 8) | chunk[at + 1];
        at += 2;
      } else {
        this.#half = chunk[at++];
        break;
      }
      if (len === 0) continue;
      if (at + len <= chunk.length) {
        // The common case: the whole message is in this chunk; one copy, no staging.
        out.push(chunk.slice(at, at + len));
        at += len;
      } else {
        this.#body = new Uint8Array(len);
        this.#filled = 0;
      }
    }
    return out;
  }
}
