/**
 * What every client session has in common, whatever it carries (Port with smux, or a shell):
 * the DataChannel engine, its WebSocket, the 100 ms scheduler, dead-peer detection and healing.
 * On transport loss it calls ResumeSession and re-dials the ORIGINAL StreamUrl with the new
 * token, keeping all sequence state (§10), so whatever rides on the session survives.
 *
 * Subclasses say what the payloads mean (`onData`, `onFlag`), what proves the path alive when
 * nothing else is sent (`heartbeat`), and whether a handshake is expected (§6).
 */
import { type ChannelEvent, DataChannel } from "./channel.ts";
import type { HandshakeInfo } from "./handshake.ts";
import { flagPayload, PayloadFlag, PayloadType } from "./message.ts";
import { DataChannelSocket, HIGH_WATER } from "./websocket.ts";
import { backoffDelays } from "./backoff.ts";
import { ExitCode, UserError } from "../errors.ts";

export interface SessionGrant {
  sessionId: string;
  streamUrl: string;
  tokenValue: string;
}

export interface SessionApi {
  /** ResumeSession; an empty tokenValue means the session is gone. */
  resume(sessionId: string): Promise<{ tokenValue: string }>;
  terminate(sessionId: string): Promise<void>;
}

export interface ChannelSessionOptions {
  grant: SessionGrant;
  api: SessionApi;
  /** Send a heartbeat when nothing was sent for this long; its ack proves the path alive. */
  heartbeatMs?: number;
  /** Declare the transport dead when a message stays unacked and nothing arrives for this long. */
  deadAfterMs?: number;
  /** Give up healing after this long without a working transport. */
  healForMs?: number;
  handshakeTimeoutMs?: number;
  maxPayload?: number;
  window?: number;
  windowBytes?: number;
  log?: (line: string) => void;
}

export type SessionState = "connecting" | "up" | "healing" | "closed";

export interface SessionEnd {
  /** "terminated": we ended it; "closed": the service ended it; "failed": we could not keep it. */
  kind: "terminated" | "closed" | "failed";
  message: string;
}

type Defaults = "heartbeatMs" | "deadAfterMs" | "healForMs" | "handshakeTimeoutMs";

export abstract class ChannelSession {
  readonly channel: DataChannel;
  readonly sessionId: string;
  state: SessionState = "connecting";
  agentVersion = "";
  reconnects = 0;
  lastError = "";

  protected readonly opts: Required<Pick<ChannelSessionOptions, Defaults>> & ChannelSessionOptions;
  #handshake: boolean;
  #socket?: DataChannelSocket;
  #clientId = crypto.randomUUID();
  #timer?: ReturnType<typeof setInterval>;
  #lastSent = Date.now();
  #writableWaiters: (() => void)[] = [];
  #ready = Promise.withResolvers<void>();
  #ended = Promise.withResolvers<SessionEnd>();
  #endedValue?: SessionEnd;
  #healing = false;

  protected constructor(opts: ChannelSessionOptions, handshake: boolean) {
    this.opts = {
      heartbeatMs: 5_000,
      deadAfterMs: 15_000,
      healForMs: 120_000,
      handshakeTimeoutMs: 20_000,
      ...opts,
    };
    this.#handshake = handshake;
    this.sessionId = opts.grant.sessionId;
    this.channel = new DataChannel({
      maxPayload: opts.maxPayload,
      window: opts.window,
      windowBytes: opts.windowBytes,
      handshake,
    });
    this.#ready.promise.catch(() => {});
  }

  // ---- what a subclass decides ---------------------------------------------------------------

  /** The agent's HandshakeRequest; a returned string fails the session with that message. */
  protected abstract onHandshake(info: HandshakeInfo): string | undefined;
  /** In-order Output / StdErr / ExitCode payloads. */
  protected abstract onData(payloadType: number, payload: Uint8Array): void;
  /** Something small and harmless whose ack proves the path alive. */
  protected abstract heartbeat(): void;
  protected onFlag(_flag: number): void {}
  /** The session is over; release whatever rides on it. */
  protected onEnd(): void {}

  // ---- public -------------------------------------------------------------------------------

  /** Resolves when the session is over, with why. */
  get ended(): Promise<SessionEnd> {
    return this.#ended.promise;
  }

  /** Why the session ended, once it has. */
  get endReason(): string | undefined {
    return this.#endedValue?.message;
  }

  get writable(): boolean {
    return this.channel.writable && (this.#socket?.bufferedAmount ?? 0) < HIGH_WATER;
  }

  /** Resolves once more data may be queued (or the session ended). */
  waitWritable(): Promise<void> {
    if (this.writable || this.#endedValue) return Promise.resolve();
    return new Promise((r) => this.#writableWaiters.push(r));
  }

  /**
   * Something outside says the path may be dead (the machine slept, the network changed): drop
   * the transport and resume now instead of waiting for the dead-peer timer.
   */
  checkNow(reason: string): void {
    if (this.state === "up") this.#transportLost(reason);
  }

  /** Tell the agent to end the session (Flag TerminateSession), then TerminateSession by API. */
  async terminate(): Promise<void> {
    if (this.#endedValue) return;
    if (this.#socket?.open && this.channel.ready) {
      this.channel.send(PayloadType.Flag, flagPayload(PayloadFlag.TerminateSession), Date.now());
      this.pump();
    }
    this.end({ kind: "terminated", message: `session ${this.sessionId} terminated` });
    try {
      await this.opts.api.terminate(this.sessionId);
    } catch (e) {
      this.#log(`TerminateSession failed: ${(e as Error).message}`);
    }
  }

  // ---- for subclasses -----------------------------------------------------------------------

  /** Connect and, if one is expected, complete the handshake. Shuts down on failure. */
  protected async start(): Promise<void> {
    const what = this.#handshake ? "no handshake from the SSM agent" : "no data channel";
    const timeout = setTimeout(
      () => this.fail(`${what} within ${this.opts.handshakeTimeoutMs / 1000} s`),
      this.opts.handshakeTimeoutMs,
    );
    try {
      await this.#connect(this.opts.grant.tokenValue);
      this.#timer = setInterval(() => this.#onTick(), this.channel.tickInterval);
      if (!this.#handshake && !this.#endedValue) {
        this.state = "up";
        this.#ready.resolve();
      }
      await this.#ready.promise;
    } catch (e) {
      this.#shutdown();
      throw e;
    } finally {
      clearTimeout(timeout);
    }
  }

  /** Hand queued frames to the socket and wake writers if there is room again. */
  protected pump(): void {
    const frames = this.channel.takeOutgoing();
    if (frames.length > 0) {
      this.#lastSent = Date.now();
      const s = this.#socket;
      if (s?.open) { for (const f of frames) s.send(f); }
      // Otherwise they are lost with the socket; the channel resends unacked data on reconnect.
    }
    if (this.#writableWaiters.length > 0 && (this.writable || this.#endedValue)) {
      const w = this.#writableWaiters;
      this.#writableWaiters = [];
      for (const r of w) r();
    }
  }

  protected fail(message: string): void {
    this.lastError = message;
    this.#ready.reject(new UserError(message, ExitCode.Remote));
    this.end({ kind: "failed", message });
  }

  protected end(end: SessionEnd): void {
    if (this.#endedValue) return;
    this.#endedValue = end;
    this.state = "closed";
    this.#ready.reject(new UserError(end.message, ExitCode.Remote));
    this.onEnd();
    // A final frame (the TerminateSession flag) is queued on the socket before its close frame.
    this.pump();
    this.#shutdown();
    this.#ended.resolve(end);
  }

  // ---- plumbing -----------------------------------------------------------------------------

  async #connect(token: string): Promise<void> {
    const socket = await DataChannelSocket.open(
      this.opts.grant.streamUrl,
      token,
      this.#clientId,
      this.channel.clientVersion,
      {
        message: (bytes) => {
          this.channel.receive(bytes, Date.now());
          this.#handleEvents();
          this.pump();
        },
        closed: (reason) => this.#transportLost(reason),
      },
    );
    if (this.#endedValue) {
      socket.close();
      return;
    }
    this.#socket = socket;
  }

  #handleEvents(): void {
    for (const e of this.channel.takeEvents()) this.#onEvent(e);
  }

  #onEvent(e: ChannelEvent): void {
    switch (e.type) {
      case "handshake": {
        this.agentVersion = e.info.agentVersion;
        const problem = this.onHandshake(e.info);
        if (problem !== undefined) this.fail(problem);
        break;
      }
      case "ready":
        if (e.customerMessage) this.#log(e.customerMessage.trim());
        this.state = "up";
        this.#ready.resolve();
        break;
      case "data":
        this.onData(e.payloadType, e.payload);
        break;
      case "flag":
        if (e.flag === PayloadFlag.TerminateSession) {
          this.end({ kind: "closed", message: "the SSM agent ended the session" });
        } else this.onFlag(e.flag);
        break;
      case "closed":
        this.end({
          kind: "closed",
          message: e.output
            ? `session ${this.sessionId} closed by AWS: ${e.output}`
            : `session ${this.sessionId} was closed by AWS`,
        });
        break;
      case "paused":
      case "resumed":
        this.#log(`MGS ${e.type} publication`);
        break;
      case "bad-frame":
        this.#log(`dropped a malformed frame: ${e.message}`);
        break;
      case "stalled":
        this.#transportLost(`message ${e.seq} unacknowledged after ${e.attempts} resends`);
        break;
    }
  }

  #onTick(): void {
    const now = Date.now();
    this.channel.tick(now);
    if (this.state === "up" && this.#socket?.open) {
      if (now - this.#lastSent >= this.opts.heartbeatMs) this.heartbeat();
      const silent = now - this.#socket.lastReceived;
      if (this.channel.unacked > 0 && silent >= this.opts.deadAfterMs) {
        this.#transportLost(`no answer from the service for ${Math.round(silent / 1000)} s`);
        return;
      }
    }
    this.pump();
  }

  #transportLost(reason: string): void {
    if (this.#endedValue || this.#healing) return;
    this.lastError = reason;
    if (this.state === "connecting") {
      this.fail(reason);
      return;
    }
    this.#log(`connection lost (${reason}); resuming session`);
    this.#socket?.close();
    this.#socket = undefined;
    this.state = "healing";
    this.#healing = true;
    this.#heal().finally(() => (this.#healing = false));
  }

  async #heal(): Promise<void> {
    const deadline = Date.now() + this.opts.healForMs;
    for (const delay of backoffDelays()) {
      if (this.#endedValue) return;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, delay));
      if (this.#endedValue) return;
      try {
        const { tokenValue } = await this.opts.api.resume(this.sessionId);
        if (!tokenValue) {
          this.end({
            kind: "closed",
            message: `session ${this.sessionId} timed out or was terminated`,
          });
          return;
        }
        await this.#connect(tokenValue);
        if (this.#endedValue) return;
        this.reconnects++;
        this.state = "up";
        this.channel.reconnected(Date.now());
        this.pump();
        this.#log(`session ${this.sessionId} resumed`);
        return;
      } catch (e) {
        this.lastError = (e as Error).message;
        this.#log(`resume failed: ${this.lastError}`);
      }
    }
    this.fail(`could not resume session ${this.sessionId}: ${this.lastError}`);
  }

  #shutdown(): void {
    clearInterval(this.#timer);
    this.#socket?.close();
    this.#socket = undefined;
  }

  #log(line: string): void {
    this.opts.log?.(line);
  }
}
