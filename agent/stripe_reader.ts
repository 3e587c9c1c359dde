/**
 * One stripe's receiving side: bytes off the connection, frames out, a chunk at a time.
 */
import { type Frame, FrameReader, FrameType, WireError } from "../src/tunnel/wire.ts";

const ARENA = 64 * 1024;

/** The connection does not start with a HELLO frame: not an ssm-proxy client. */
export class NotHello extends WireError {
  override name = "NotHello";
}

export class StripeReader {
  #reader = new FrameReader();
  #arena = new Uint8Array(ARENA);
  #off = 0;
  /** Nothing read yet. */
  #fresh = true;

  constructor(readonly conn: Deno.Conn) {}

  /**
   * The frames completed by the next chunk (often none); null at EOF. Throws WireError on a
   * malformed frame, and NotHello at once when the stream's first byte cannot start a HELLO,
   * rather than waiting for a bogus length to fill.
   */
  async next(): Promise<Frame[] | null> {
    const chunk = await this.#read();
    if (chunk === null) return null;
    if (this.#fresh && chunk[0] !== FrameType.Hello) {
      throw new NotHello("first frame is not HELLO");
    }
    this.#fresh = false;
    return this.#reader.push(chunk);
  }

  /**
   * Reads into a shared arena: FrameReader keeps views of pushed chunks, so a region is never
   * reused; a fresh arena is started when the current one is nearly used up.
   */
  async #read(): Promise<Uint8Array | null> {
    if (this.#arena.length - this.#off < 4096) {
      this.#arena = new Uint8Array(ARENA);
      this.#off = 0;
    }
    const n = await this.conn.read(this.#arena.subarray(this.#off));
    if (n === null) return null;
    const chunk = this.#arena.subarray(this.#off, this.#off + n);
    this.#off += n;
    return chunk;
  }
}
