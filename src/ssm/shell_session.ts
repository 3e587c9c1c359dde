/**
 * A shell session (InteractiveCommands / Standard_Stream, specs/ssm-protocol.md §6, §9): raw
 * bytes in and out of a pseudo-terminal on the instance. Without KMS there is no handshake; the
 * agent's first message is already output (after its 1 s initial wait).
 *
 * Not byte-exact: input goes through the pty's line discipline and output through the agent's
 * UTF-8 re-assembly, so callers send text a terminal passes unchanged (see install/upload.ts).
 */
import { ChannelSession, type ChannelSessionOptions } from "./channel_session.ts";
import type { HandshakeInfo } from "./handshake.ts";
import { jsonBytes, PayloadType } from "./message.ts";
import { ExitCode, UserError } from "../errors.ts";

export interface ShellSessionOptions extends ChannelSessionOptions {
  /** Output (type 1; 11 and 12 too if the agent separates streams), in order. */
  output(bytes: Uint8Array, payloadType: number): void;
  /** Terminal size told to the agent; wide, so nothing the remote side prints wraps. */
  cols?: number;
  rows?: number;
}

const SHELL_TYPES = new Set(["Standard_Stream", "InteractiveCommands", "NonInteractiveCommands"]);

export class ShellSession extends ChannelSession {
  #output: ShellSessionOptions["output"];
  #size: Uint8Array;

  private constructor(opts: ShellSessionOptions) {
    super(opts, false);
    this.#output = opts.output;
    this.#size = jsonBytes({ cols: opts.cols ?? 300, rows: opts.rows ?? 100 });
  }

  static async open(opts: ShellSessionOptions): Promise<ShellSession> {
    const s = new ShellSession(opts);
    await s.start();
    // The plugin's shell handler sends the terminal size first (§6 "Plugin side").
    s.#sendSize();
    return s;
  }

  /** Queue input; resolves once it is within the send window (backpressure). */
  async write(bytes: Uint8Array): Promise<void> {
    const max = this.channel.maxPayload;
    for (let i = 0; i < bytes.length; i += max) {
      await this.waitWritable();
      if (this.state === "closed") {
        throw new UserError(this.endReason ?? `session ${this.sessionId} ended`, ExitCode.Remote);
      }
      this.channel.send(PayloadType.Output, bytes.subarray(i, i + max), Date.now());
      this.pump();
    }
  }

  /** Resolves once everything written so far was acknowledged by the agent. */
  async drained(): Promise<void> {
    while (this.state !== "closed" && (this.channel.unacked > 0 || this.channel.queuedBytes > 0)) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  protected onHandshake(info: HandshakeInfo): string | undefined {
    if (info.unsupported.includes("KMSEncryption")) {
      return "this account's Session Manager preferences encrypt shell sessions with KMS, which ssm-proxy does not support; install the agent with scripts/setup-ec2-instance.sh instead";
    }
    if (info.sessionType !== undefined && !SHELL_TYPES.has(info.sessionType)) {
      return `the session is of type ${info.sessionType}, not a shell`;
    }
    return undefined;
  }

  protected onData(payloadType: number, payload: Uint8Array): void {
    this.#output(payload, payloadType);
  }

  /** A repeated Size message changes nothing on the instance; its ack proves the path alive. */
  protected heartbeat(): void {
    this.#sendSize();
  }

  #sendSize(): void {
    this.channel.send(PayloadType.Size, this.#size, Date.now());
    this.pump();
  }
}
