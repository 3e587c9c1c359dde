/**
 * smux v1 client session (specs/ssm-protocol.md §8): the plugin's role. Stream ids are odd and
 * start at 3; the agent (server) never opens streams and sends no SYN-ACK. Sans-IO: bytes from
 * the data channel in, bytes for the data channel out through `write`.
 *
 * smux v1 has no flow-control window, so receive-side backpressure is the caller's: it watches
 * `bufferedBytes` of its streams and stops acking the data channel when they grow.
 */
import {
  Cmd,
  encodeFrame,
  encodePsh,
  SMUX_HEADER,
  SMUX_MAX_FRAME,
  SmuxParser,
} from "./smux_frame.ts";

export { SMUX_HEADER };

export interface StreamHandlers {
  data(chunk: Uint8Array): void;
  /** The remote side closed (FIN). `refused`: the agent reported ConnectToPortError for it. */
  end(refused: boolean): void;
}

export class SmuxStream {
  #closedLocal = false;
  #closedRemote = false;
  receivedBytes = 0;
  sentBytes = 0;

  constructor(
    readonly id: number,
    private session: SmuxClient,
    public handlers: StreamHandlers,
  ) {}

  get closed(): boolean {
    return this.#closedLocal && this.#closedRemote;
  }
  get remoteClosed(): boolean {
    return this.#closedRemote;
  }

  write(data: Uint8Array): void {
    if (this.#closedLocal || data.length === 0) return;
    this.sentBytes += data.length;
    this.session.emit(encodePsh(this.id, data, this.session.maxFrame));
  }

  /** Send FIN (idempotent). There is no half-close in the agent: it closes the TCP side. */
  close(): void {
    if (this.#closedLocal) return;
    this.#closedLocal = true;
    this.session.emit(encodeFrame(Cmd.FIN, this.id));
    this.session.forget(this);
  }

  /** @internal */
  remoteFin(refused: boolean): void {
    if (this.#closedRemote) return;
    this.#closedRemote = true;
    this.session.forget(this);
    this.handlers.end(refused);
  }
}

export class SmuxClient {
  #parser = new SmuxParser();
  #streams = new Map<number, SmuxStream>();
  #nextId = 3;
  /** ConnectToPortError flags not yet matched to the stream they belong to. */
  #refusals = 0;
  readonly stats = { opened: 0, refused: 0, nops: 0, strays: 0 };

  /**
   * `maxFrame`: largest PSH payload. Sized so one frame fills one data-channel message, the
   * receiver then rarely has to reassemble frames across messages.
   */
  constructor(private write: (bytes: Uint8Array) => void, readonly maxFrame = SMUX_MAX_FRAME) {}

  get streamCount(): number {
    return this.#streams.size;
  }

  open(handlers: StreamHandlers): SmuxStream {
    const id = this.#nextId;
    this.#nextId += 2;
    const s = new SmuxStream(id, this, handlers);
    this.#streams.set(id, s);
    this.stats.opened++;
    this.write(encodeFrame(Cmd.SYN, id));
    return s;
  }

  /** A NOP on stream 0: harmless to the server, and the data channel acks it (our heartbeat). */
  nop(): void {
    this.write(encodeFrame(Cmd.NOP, 0));
  }

  /** Bytes from Output payloads, in order. Throws SmuxError on a corrupt stream. */
  receive(bytes: Uint8Array): void {
    for (const f of this.#parser.push(bytes)) {
      const s = this.#streams.get(f.streamId);
      switch (f.cmd) {
        case Cmd.PSH:
          if (!s || s.remoteClosed) {
            this.stats.strays++;
            break;
          }
          s.receivedBytes += f.data.length;
          s.handlers.data(f.data);
          break;
        case Cmd.FIN: {
          if (!s) break;
          // The agent sends the flag, then FINs the stream it could not connect.
          const refused = this.#refusals > 0 && s.receivedBytes === 0;
          if (refused) {
            this.#refusals--;
            this.stats.refused++;
          }
          s.remoteFin(refused);
          break;
        }
        case Cmd.NOP:
          this.stats.nops++;
          break;
        case Cmd.SYN:
          this.stats.strays++; // servers do not open streams
          break;
      }
    }
  }

  /** The data channel delivered Flag ConnectToPortError. */
  connectError(): void {
    this.#refusals++;
  }

  /** Everything is over (session closed): end every stream without sending. */
  abort(): void {
    for (const s of [...this.#streams.values()]) s.remoteFin(false);
  }

  /** @internal */
  emit(bytes: Uint8Array): void {
    this.write(bytes);
  }

  /** @internal */
  forget(s: SmuxStream): void {
    if (s.closed) this.#streams.delete(s.id);
  }
}
