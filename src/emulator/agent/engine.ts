/**
 * The emulated SSM agent's data-channel engine (specs/ssm-protocol.md §5, §6): sequencing, acks,
 * the out-of-order buffer, the outgoing buffer with RTO-driven retransmission, pause, and the
 * Port handshake. Sans-IO: frames and the current time go in; frames and callbacks come out
 * through `EngineHost`. The host owns sockets and timers (it calls `tick` every 100 ms).
 *
 * Written from the agent's side of the spec, where agent and plugin differ: duplicates are
 * re-acked, resends come every RTO and never give up, and in-order input that arrives before the
 * handshake completes is acked and thrown away. Shell sessions without KMS have no handshake at
 * all (§6 step 4): `handshake: false` makes `start` skip it, so input is taken at once and the
 * first output message (seq 0, SYN) is the shell's own output.
 */
import {
  type ClientMessage,
  decodeMessage,
  FrameError,
  jsonBytes,
  MessageType,
  PayloadType,
} from "../../ssm/message.ts";
import { RttEstimator } from "./rtt.ts";
import { ackFrame, streamFrame } from "./wire.ts";

export interface EngineHost {
  /** One frame towards the client; the host drops it when no client socket is attached. */
  send(frame: Uint8Array): void;
  /** In-order stream input after the handshake. False means "not ready": no ack, client resends. */
  input(payloadType: number, payload: Uint8Array): boolean;
  handshakeComplete(clientVersion: string): void;
  /** The session cannot go on (bad HandshakeResponse, handshake timeout). */
  fail(reason: string): void;
  log(line: string): void;
}

export interface EngineConfig {
  agentVersion: string;
  sessionType: string;
  properties: Record<string, string> | null;
  handshakeTimeoutMs: number;
  outgoingCapacity: number;
  incomingCapacity: number;
  /** False: no handshake (Standard_Stream / InteractiveCommands without KMS). Default true. */
  handshake?: boolean;
}

export const ENGINE_DEFAULTS = {
  agentVersion: "3.3.0.0",
  handshakeTimeoutMs: 15_000,
  outgoingCapacity: 100_000,
  incomingCapacity: 100_000,
} as const;

export const HANDSHAKE_TIMEOUT_MESSAGE =
  "Handshake timed out. Please ensure that you have the latest version of the session manager plugin.";

interface Outgoing {
  frame: Uint8Array;
  lastSent: number;
  /** False while paused: buffered but never put on the wire yet. */
  sent: boolean;
}

interface HandshakeResponse {
  ClientVersion?: unknown;
  ProcessedClientActions?: unknown;
}

type Outcome = "ok" | "notReady" | "error";

export class AgentEngine {
  #nextSeq = 0;
  #expected = 0;
  /** Insertion-ordered, so the first entry is always the oldest unacked message. */
  #out = new Map<number, Outgoing>();
  #outBytes = 0;
  #in = new Map<number, ClientMessage>();
  #rtt = new RttEstimator();
  #paused = false;
  #hs: "idle" | "waiting" | "complete" | "skipped" | "failed" = "idle";
  #hsStartedAt = 0;
  #clientVersion = "";
  #lastStreamActivity: number;
  #pendingFailure?: string;

  constructor(private cfg: EngineConfig, private host: EngineHost, now: number) {
    this.#lastStreamActivity = now;
  }

  /** True once input is taken: after HandshakeComplete, or at once without a handshake. */
  get handshakeComplete(): boolean {
    return this.#hs === "complete" || this.#hs === "skipped";
  }
  get clientVersion(): string {
    return this.#clientVersion;
  }
  get paused(): boolean {
    return this.#paused;
  }
  get rto(): number {
    return this.#rtt.rto;
  }
  get unackedCount(): number {
    return this.#out.size;
  }
  /** Frame bytes held for retransmission; the host throttles its readers on this. */
  get unackedBytes(): number {
    return this.#outBytes;
  }
  get nextSequenceNumber(): number {
    return this.#nextSeq;
  }
  get expectedSequenceNumber(): number {
    return this.#expected;
  }
  /** Last time stream data (not acks) went either way; MGS's idle timeout reads it. */
  get lastStreamActivity(): number {
    return this.#lastStreamActivity;
  }

  /**
   * Sends the HandshakeRequest as seq 0 (SYN) and starts the 15 s handshake clock; without a
   * handshake, only opens the engine for input.
   */
  start(now: number): void {
    if (this.#hs !== "idle") return;
    if (this.cfg.handshake === false) {
      this.#hs = "skipped";
      return;
    }
    this.#hs = "waiting";
    this.#hsStartedAt = now;
    const request = {
      AgentVersion: this.cfg.agentVersion,
      RequestedClientActions: [{
        ActionType: "SessionType",
        ActionParameters: { SessionType: this.cfg.sessionType, Properties: this.cfg.properties },
      }],
    };
    this.send(PayloadType.HandshakeRequest, jsonBytes(request), now);
  }

  /** A sequenced output_stream_data message; buffered until acked. Returns its seq. */
  send(payloadType: number, payload: Uint8Array, now: number): number {
    const seq = this.#nextSeq++;
    const frame = streamFrame(seq, payloadType, payload, now);
    this.#lastStreamActivity = now;
    // A full buffer means the agent sends once and keeps no copy (§5 table).
    if (this.#out.size >= this.cfg.outgoingCapacity) {
      if (!this.#paused) this.host.send(frame);
      return seq;
    }
    this.#out.set(seq, { frame, lastSent: now, sent: !this.#paused });
    this.#outBytes += frame.length;
    if (!this.#paused) this.host.send(frame);
    return seq;
  }

  /** One binary frame from the client, after fault injection. */
  receive(bytes: Uint8Array, now: number): void {
    let msg: ClientMessage;
    try {
      msg = decodeMessage(bytes, { verifyDigest: false });
    } catch (e) {
      this.host.log(`agent: dropped malformed frame (${(e as Error).message})`);
      return;
    }
    if (this.#hs === "failed") return;
    switch (msg.messageType) {
      case MessageType.InputStreamData:
        this.#unpause(now);
        this.#lastStreamActivity = now;
        this.#onStreamData(msg, now);
        this.#flushFailure();
        return;
      case MessageType.Acknowledge:
        this.#unpause(now);
        this.#onAck(msg, now);
        return;
      default:
        this.host.log(`agent: ignored ${JSON.stringify(msg.messageType)} from the client`);
    }
  }

  /** pause_publication from MGS: hold new messages, stop resending (§5 "Flow control"). */
  pause(): void {
    this.#paused = true;
  }

  /** start_publication from MGS. */
  startPublication(now: number): void {
    this.#unpause(now);
  }

  /**
   * A new client socket: the agent's state is the session's, so it carries on and puts every
   * unacked message back on the wire at once instead of one per RTO, so a resumed client
   * catches up quickly. (Whether real MGS buffers while the client is away is unknown.)
   */
  reattach(now: number): void {
    this.#paused = false;
    for (const o of this.#out.values()) {
      o.sent = true;
      o.lastSent = now;
      this.host.send(o.frame);
    }
  }

  /** The 100 ms scheduler tick: handshake timeout, stalled input, the oldest message's RTO. */
  tick(now: number): void {
    if (this.#hs === "failed") return;
    if (this.#hs === "waiting" && now - this.#hsStartedAt > this.cfg.handshakeTimeoutMs) {
      this.#fail(HANDSHAKE_TIMEOUT_MESSAGE);
      return;
    }
    // Buffered input that found the handler not ready was already acked; nobody resends it.
    this.#drain(now);
    this.#flushFailure();
    if (this.#paused) return;
    const oldest = this.#out.values().next();
    if (oldest.done || !oldest.value.sent) return;
    if (now - oldest.value.lastSent > this.#rtt.rto) {
      oldest.value.lastSent = now;
      this.host.send(oldest.value.frame);
    }
  }

  /**
   * The host became ready again after refusing input: process what the out-of-order buffer holds
   * now instead of at the next tick (the client resends the refused in-order message itself).
   */
  retryInput(now: number): void {
    if (this.#hs === "failed") return;
    this.#drain(now);
    this.#flushFailure();
  }

  #unpause(now: number): void {
    if (!this.#paused) return;
    this.#paused = false;
    // Messages queued while paused have never been sent; send them now, in order.
    for (const o of this.#out.values()) {
      if (o.sent) continue;
      o.sent = true;
      o.lastSent = now;
      this.host.send(o.frame);
    }
  }

  #onAck(msg: ClientMessage, now: number): void {
    let seq: unknown;
    try {
      seq = JSON.parse(new TextDecoder().decode(msg.payload))?.AcknowledgedMessageSequenceNumber;
    } catch {
      seq = undefined;
    }
    if (typeof seq !== "number") {
      this.host.log("agent: dropped acknowledge without a sequence number");
      return;
    }
    const o = this.#out.get(seq);
    if (!o) return;
    this.#rtt.sample(now - o.lastSent);
    this.#out.delete(seq);
    this.#outBytes -= o.frame.length;
  }

  #onStreamData(msg: ClientMessage, now: number): void {
    const seq = Number(msg.sequenceNumber);
    if (seq === this.#expected) {
      if (this.#hs === "failed" || this.#process(msg, now) !== "ok") return;
      this.host.send(ackFrame(msg, now));
      this.#expected++;
      this.#drain(now);
    } else if (seq > this.#expected) {
      if (this.#in.has(seq) || this.#in.size < this.cfg.incomingCapacity) {
        this.#in.set(seq, msg);
        this.host.send(ackFrame(msg, now));
      }
    } else {
      // The agent re-acks duplicates; the plugin does not (§5, pitfall 6).
      this.host.send(ackFrame(msg, now));
    }
  }

  #drain(now: number): void {
    while (true) {
      const m = this.#in.get(this.#expected);
      if (!m || this.#hs === "failed") return;
      // Already acked when buffered; an error cannot be retried, so it is dropped.
      if (this.#process(m, now) === "notReady") return;
      this.#in.delete(this.#expected);
      this.#expected++;
    }
  }

  #process(msg: ClientMessage, now: number): Outcome {
    if (msg.payloadType === PayloadType.HandshakeResponse) {
      return this.#onHandshakeResponse(msg.payload, now);
    }
    if (!this.handshakeComplete) {
      this.host.log(`agent: discarded seq ${msg.sequenceNumber} received before HandshakeComplete`);
      return "ok";
    }
    return this.host.input(msg.payloadType, msg.payload) ? "ok" : "notReady";
  }

  #onHandshakeResponse(payload: Uint8Array, now: number): Outcome {
    if (this.#hs !== "waiting") return "ok";
    let r: HandshakeResponse;
    try {
      r = JSON.parse(new TextDecoder().decode(payload));
      if (r === null || typeof r !== "object" || Array.isArray(r)) {
        throw new FrameError("not an object");
      }
      if (r.ProcessedClientActions != null && !Array.isArray(r.ProcessedClientActions)) {
        throw new FrameError("ProcessedClientActions is not an array");
      }
    } catch (e) {
      // As in the agent, an unreadable response is not acked; the client may resend it.
      this.host.log(`agent: HandshakeResponse unreadable: ${(e as Error).message}`);
      return "error";
    }
    this.#clientVersion = typeof r.ClientVersion === "string" ? r.ClientVersion : "";
    const actions = (r.ProcessedClientActions ?? []) as Record<string, unknown>[];
    const bad = actions.find((a) => a?.ActionStatus !== 1);
    if (bad) {
      // The response itself was readable, so it is acked; the session fails right after (§6).
      this.#hs = "failed";
      this.#pendingFailure =
        `${bad?.ActionType} failed on client with status ${bad?.ActionStatus} error: ${
          bad?.Error ?? ""
        }`;
      return "ok";
    }
    const ns = Math.round((now - this.#hsStartedAt) * 1e6);
    this.send(
      PayloadType.HandshakeComplete,
      jsonBytes({ HandshakeTimeToComplete: ns, CustomerMessage: "" }),
      now,
    );
    this.#hs = "complete";
    this.host.handshakeComplete(this.#clientVersion);
    return "ok";
  }

  #fail(reason: string): void {
    this.#hs = "failed";
    this.host.fail(reason);
  }

  #flushFailure(): void {
    const reason = this.#pendingFailure;
    if (reason === undefined) return;
    this.#pendingFailure = undefined;
    this.host.fail(reason);
  }
}
