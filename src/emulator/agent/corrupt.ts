/**
 * The `corruptInput` fault: one byte of a shell session's input is changed after the agent has
 * accepted (and acked) it, as a flaky instance or a buggy agent would, so only an end-to-end
 * check (a digest of the uploaded file) can notice. A link-level corruption would fail the
 * message digest and simply be resent.
 *
 * Only an ASCII letter or digit is replaced, by another letter or digit, so base64 text stays
 * base64 and a decoder does not stop at it. The replacement's base64 value differs from the
 * original by 31, which always changes its top bits, so the decoded bytes change even in the
 * last character before `=` padding (whose low bits a decoder ignores).
 */

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const INDEX = new Map([...ALNUM].map((c, i) => [c.charCodeAt(0), i]));

/** The letter/digit that replaces `b`, or undefined when `b` is not one. */
export function replacementFor(b: number): number | undefined {
  const i = INDEX.get(b);
  if (i === undefined) return undefined;
  return ALNUM.charCodeAt(i < 31 ? i + 31 : i - 31);
}

export interface CorruptResult {
  payload: Uint8Array;
  /** Input-stream offset of the replaced byte, or undefined if this payload had none to hit. */
  at?: number;
}

/**
 * Replace the first letter/digit at stream offset ≥ `afterBytes` within `payload`, which starts
 * at stream offset `offset`. Pure: the input is never modified; a hit returns a copy.
 */
export function corruptPayload(
  payload: Uint8Array,
  offset: number,
  afterBytes: number,
): CorruptResult {
  for (let i = Math.max(0, afterBytes - offset); i < payload.length; i++) {
    const r = replacementFor(payload[i]);
    if (r === undefined) continue;
    const out = payload.slice();
    out[i] = r;
    return { payload: out, at: offset + i };
  }
  return { payload };
}

/** corruptInput faults waiting for their shell session: the next one to start, or by id. */
export class CorruptionPlan {
  #next: number | null = null;
  #byId = new Map<string, number>();

  arm(afterBytes: number, sessionId?: string): void {
    if (sessionId === undefined) this.#next = afterBytes;
    else this.#byId.set(sessionId, afterBytes);
  }

  /** The offset armed for this session (its own first, else "the next"), consumed. */
  claim(sessionId: string): number | undefined {
    const own = this.#byId.get(sessionId);
    if (own !== undefined) {
      this.#byId.delete(sessionId);
      return own;
    }
    const next = this.#next ?? undefined;
    this.#next = null;
    return next;
  }

  clear(): void {
    this.#next = null;
    this.#byId.clear();
  }

  state(): { next: number | null; sessions: Record<string, number> } {
    return { next: this.#next, sessions: Object.fromEntries(this.#byId) };
  }
}
