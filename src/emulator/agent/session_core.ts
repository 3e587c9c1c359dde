/**
 * What every emulated agent session has, whatever its type: the engine with its host callbacks,
 * the paced output pump, the 100 ms scheduler tick, attach/detach of client sockets (the first
 * attach starts the session, later ones resume it, §10), and the end. A session type (Port in
 * session.ts, shell in shell.ts) resolves its document and fills in the hooks.
 */
import { PayloadType } from "../../ssm/message.ts";
import { DocumentError } from "./document.ts";
import { AgentEngine, ENGINE_DEFAULTS, type EngineConfig } from "./engine.ts";
import { InputGate } from "./input_gate.ts";
import { OutputPump, PACED, UNPACED } from "./pump.ts";
import type { AgentSessionInit, EmulatedAgentSession } from "./session.ts";

const TICK_MS = 100;
/** Input credit a paced session may bank: 32 KiB at 1 KiB/ms. */
const INPUT_BURST_MS = 32;
/** The pipe between the port side or pty and the pump; small, so reads stop early. */
const PIPE_HIGH_WATER = 64 * 1024;

/** What sets one session type apart at construction. */
export interface SessionKind<D> {
  /** The document; a DocumentError ends the session when the client attaches. */
  resolve(documentName: string, parameters: Record<string, string[]>): D;
  /** What the HandshakeRequest announces, and whether there is a handshake at all. */
  engine(doc: D | undefined): Pick<EngineConfig, "sessionType" | "properties" | "handshake">;
  /** Logged when the session ends without a reason (Flag 2, a finished shell). */
  endedWithoutReason: string;
}

export abstract class EmulatedSessionCore<D> implements EmulatedAgentSession {
  readonly engine: AgentEngine;
  protected readonly doc?: D;
  protected readonly pump: OutputPump;
  /** Paced sessions take input at the same budget as output (input_gate.ts). */
  readonly #gate?: InputGate;
  #docError?: string;
  #sink?: (frame: Uint8Array) => void;
  #tick?: ReturnType<typeof setInterval>;
  #started = false;
  #ended = false;
  #endedWithoutReason: string;

  protected constructor(protected readonly init: AgentSessionInit, kind: SessionKind<D>) {
    try {
      this.doc = kind.resolve(init.documentName, init.parameters);
    } catch (e) {
      if (!(e instanceof DocumentError)) throw e;
      this.#docError = e.message;
    }
    this.#endedWithoutReason = kind.endedWithoutReason;
    this.engine = new AgentEngine(
      {
        agentVersion: init.agent.agentVersion,
        handshakeTimeoutMs: init.agent.handshakeTimeoutMs,
        outgoingCapacity: ENGINE_DEFAULTS.outgoingCapacity,
        incomingCapacity: ENGINE_DEFAULTS.incomingCapacity,
        ...kind.engine(this.doc),
      },
      {
        send: (frame) => this.#sink?.(frame),
        input: (pt, payload) => this.onInput(pt, payload),
        handshakeComplete: (clientVersion) => this.onStart(clientVersion),
        fail: (reason) => this.end(reason),
        log: init.log,
      },
      Date.now(),
    );
    this.pump = new OutputPump({
      ...(init.pacing ? PACED : UNPACED),
      highWater: PIPE_HIGH_WATER,
      canSend: () =>
        !this.#ended && !this.engine.paused &&
        this.engine.unackedBytes < init.agent.maxUnackedBytes,
      emit: (chunk) => this.engine.send(PayloadType.Output, chunk, Date.now()),
    });
    if (init.pacing) {
      this.#gate = new InputGate({
        bytesPerMs: PACED.chunkSize / PACED.pacingMs,
        // The budget holds on average; a burst (a batch of TCP acks) passes without waiting on
        // millisecond timers, which would add their delay to every flow's round trip.
        maxCatchUpMs: INPUT_BURST_MS,
        deliver: (frame) => this.#take(frame),
      });
    }
  }

  /**
   * The session's own side starts: after HandshakeComplete with the client's version, or at the
   * first attach (no version) when the session has no handshake.
   */
  protected abstract onStart(clientVersion?: string): void;
  /** In-order stream input from the engine; false means "not ready" (no ack, client resends). */
  protected abstract onInput(payloadType: number, payload: Uint8Array): boolean;
  /** Releases the session's own side, after the pump is closed. */
  protected abstract onClose(): Promise<void>;
  /** After each received frame and each tick, once the pump has been kicked. */
  protected afterStep(): void {}

  get lastStreamActivity(): number {
    return this.engine.lastStreamActivity;
  }

  protected get ended(): boolean {
    return this.#ended;
  }

  /** A client socket (after its fault link). The first starts the session; later ones resume. */
  attach(sink: (frame: Uint8Array) => void): void {
    this.#sink = sink;
    if (this.#ended) return;
    if (this.#docError !== undefined) {
      this.end(this.#docError);
      return;
    }
    const now = Date.now();
    if (this.#started) {
      this.engine.reattach(now);
      this.pump.kick();
      return;
    }
    this.#started = true;
    this.#tick = setInterval(() => this.#onTick(), TICK_MS);
    this.engine.start(now);
    // Without a handshake the engine takes input at once.
    if (this.engine.handshakeComplete) this.onStart();
  }

  /** The socket went away; output keeps accumulating in the engine's buffer. */
  detach(sink: (frame: Uint8Array) => void): void {
    if (this.#sink === sink) this.#sink = undefined;
  }

  receive(frame: Uint8Array): void {
    if (this.#ended) return;
    if (this.#gate) this.#gate.push(frame);
    else this.#take(frame);
  }

  #take(frame: Uint8Array): void {
    if (this.#ended) return;
    this.engine.receive(frame, Date.now());
    this.pump.kick();
    this.afterStep();
  }

  pausePublication(): void {
    this.engine.pause();
  }

  startPublication(): void {
    this.engine.startPublication(Date.now());
    this.pump.kick();
  }

  async close(): Promise<void> {
    this.#ended = true;
    clearInterval(this.#tick);
    this.#gate?.close();
    this.#sink = undefined;
    // The pump first: it releases a reader waiting for room, so the reading loops can finish.
    await this.pump.close();
    await this.onClose();
  }

  #onTick(): void {
    if (this.#ended) return;
    this.engine.tick(Date.now());
    this.pump.kick();
    this.afterStep();
  }

  protected end(reason: string | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.init.log(
      `agent: session ${this.init.sessionId} ends: ${reason ?? this.#endedWithoutReason}`,
    );
    // Deferred so the message that ended the session is acked before channel_closed goes out.
    queueMicrotask(() => this.init.end(reason));
  }
}
