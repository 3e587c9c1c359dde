/**
 * The client→agent half of a paced session. specs/ssm-protocol.md §15 budgets a session at about
 * 1 KiB per ms *per direction*; the pump (pump.ts) holds the output side to it, this holds the
 * input side: `input_stream_data` frames wait their turn so their payloads are taken at no more
 * than `bytesPerMs`. Everything else (acks, publication, flags) passes at once, and nothing is
 * dropped: the engine acks a frame only when it gets it, so a client that sends faster than the
 * budget sees its window fill, as it would against a session that is at its limit.
 *
 * Without it an upload through the emulator runs as fast as one process can parse frames, and
 * several parallel sessions (`agent install --parallel`) look no faster than one.
 */

/** Frame offsets (§3): MessageType at 4 (32 bytes, space-padded), PayloadLength at 116. */
const TYPE_OFFSET = 4;
const PAYLOAD_LENGTH_OFFSET = 116;
const INPUT_TYPE = new TextEncoder().encode("input_stream_data");

/** Payload bytes of an `input_stream_data` frame; 0 for any other frame (and a short one). */
export function inputPayloadBytes(frame: Uint8Array): number {
  if (frame.length < PAYLOAD_LENGTH_OFFSET + 4) return 0;
  for (let i = 0; i < INPUT_TYPE.length; i++) {
    if (frame[TYPE_OFFSET + i] !== INPUT_TYPE[i]) return 0;
  }
  const next = frame[TYPE_OFFSET + INPUT_TYPE.length];
  if (next !== 0x20 && next !== 0) return 0;
  return new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
    .getUint32(PAYLOAD_LENGTH_OFFSET);
}

export interface InputGateOptions {
  bytesPerMs: number;
  /** Credit a late timer may bank, in ms of budget (the pump allows the same). */
  maxCatchUpMs: number;
  deliver(frame: Uint8Array): void;
  now?: () => number;
}

export class InputGate {
  #queue: Uint8Array[] = [];
  /** When the budget allows the next input payload byte. */
  #next = -Infinity;
  #timer?: ReturnType<typeof setTimeout>;
  #closed = false;
  readonly #now: () => number;

  constructor(private o: InputGateOptions) {
    this.#now = o.now ?? (() => performance.now());
  }

  /** Input frames waiting for budget. */
  get queued(): number {
    return this.#queue.length;
  }

  push(frame: Uint8Array): void {
    if (this.#closed) return;
    if (inputPayloadBytes(frame) === 0) {
      this.o.deliver(frame);
      return;
    }
    this.#queue.push(frame);
    if (this.#queue.length === 1) this.#flush();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#queue = [];
  }

  #flush(): void {
    this.#timer = undefined;
    while (!this.#closed && this.#queue.length > 0) {
      const now = this.#now();
      if (this.#next > now) {
        this.#timer = setTimeout(() => this.#flush(), this.#next - now);
        return;
      }
      const frame = this.#queue.shift()!;
      const start = Math.max(this.#next, now - this.o.maxCatchUpMs);
      this.#next = start + inputPayloadBytes(frame) / this.o.bytesPerMs;
      this.o.deliver(frame);
    }
  }
}
