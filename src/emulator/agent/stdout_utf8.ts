/**
 * The agent's `processStdoutData` (specs/ssm-protocol.md §9 "Binary safety: not exact"): every
 * pty read is appended to the bytes held back from the previous read and re-assembled rune by
 * rune with Go's `utf8.DecodeRune`, which yields three measured quirks that we reproduce:
 *
 * - an invalid byte decodes as RuneError of width 1 and is passed through unchanged;
 * - a literal U+FFFD (`EF BF BD`) also decodes as RuneError, but of width 3: the agent writes only
 *   the first byte and skips the width, so it comes out as just `EF`;
 * - a RuneError that starts within the last 3 bytes (fewer than utf8.UTFMax left) stops the pass:
 *   those bytes are held for the next read, and lost if none comes (EOF).
 *
 * Valid runes are re-encoded by the agent, which gives back the same bytes, so we copy them.
 */

const UTF_MAX = 4;

/** Go's `first` table folded into [size, lowest and highest allowed second byte]; 0 = invalid. */
function leadInfo(b: number): [number, number, number] {
  if (b < 0x80) return [1, 0, 0];
  if (b < 0xc2) return [0, 0, 0];
  if (b < 0xe0) return [2, 0x80, 0xbf];
  if (b === 0xe0) return [3, 0xa0, 0xbf];
  if (b === 0xed) return [3, 0x80, 0x9f];
  if (b < 0xf0) return [3, 0x80, 0xbf];
  if (b === 0xf0) return [4, 0x90, 0xbf];
  if (b < 0xf4) return [4, 0x80, 0xbf];
  if (b === 0xf4) return [4, 0x80, 0x8f];
  return [0, 0, 0];
}

/**
 * Go's `utf8.DecodeRune` reduced to what the agent looks at: the width, and whether the result
 * is RuneError (an invalid or incomplete sequence, width 1, or a literal U+FFFD, width 3).
 */
export function decodeRune(p: Uint8Array, at: number): { size: number; error: boolean } {
  const n = p.length - at;
  const b0 = p[at];
  const [size, lo, hi] = leadInfo(b0);
  if (size === 1) return { size: 1, error: false };
  if (size === 0 || n < size) return { size: 1, error: true };
  const b1 = p[at + 1];
  if (b1 < lo || b1 > hi) return { size: 1, error: true };
  for (let k = 2; k < size; k++) {
    const b = p[at + k];
    if (b < 0x80 || b > 0xbf) return { size: 1, error: true };
  }
  const isReplacement = size === 3 && b0 === 0xef && b1 === 0xbf && p[at + 2] === 0xbd;
  return { size, error: isReplacement };
}

export interface StdoutPass {
  /** The bytes the agent sends now. */
  out: Uint8Array;
  /** At most 3 bytes carried into the next call; dropped at EOF. */
  held: Uint8Array;
}

/** One agent read: `held` from the previous call, then the new bytes. Pure. */
export function processStdoutData(held: Uint8Array, data: Uint8Array): StdoutPass {
  const buf = new Uint8Array(held.length + data.length);
  buf.set(held);
  buf.set(data, held.length);
  const out = new Uint8Array(buf.length);
  let o = 0;
  let i = 0;
  while (i < buf.length) {
    const { size, error } = decodeRune(buf, i);
    if (!error) {
      out.set(buf.subarray(i, i + size), o);
      o += size;
      i += size;
      continue;
    }
    if (buf.length - i < UTF_MAX) break;
    out[o++] = buf[i];
    i += size;
  }
  return { out: out.subarray(0, o), held: buf.slice(i) };
}

/** The stateful wrapper a reader uses: feed each read, drop whatever is held at EOF. */
export class StdoutReassembler {
  #held: Uint8Array = new Uint8Array(0);

  push(data: Uint8Array): Uint8Array {
    const r = processStdoutData(this.#held, data);
    this.#held = r.held;
    return r.out;
  }

  /** Bytes that EOF will lose (the agent never flushes them). */
  get held(): number {
    return this.#held.length;
  }
}
