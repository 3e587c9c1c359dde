/**
 * A Port session in multiplexed mode: the healing data-channel session (channel_session.ts)
 * carrying an smux client. smux streams and the local connections on them survive a resumed
 * WebSocket because the session keeps all sequence state across it (§10).
 */
import {
  ChannelSession,
  type ChannelSessionOptions,
  type SessionApi,
  type SessionEnd,
  type SessionGrant,
  type SessionState,
} from "./channel_session.ts";
import type { HandshakeInfo } from "./handshake.ts";
import { compareVersions, PayloadFlag, PayloadType } from "./message.ts";
import { SMUX_HEADER, SmuxClient, type SmuxStream, type StreamHandlers } from "./smux.ts";

export type { SessionApi, SessionEnd, SessionGrant, SessionState };
export type PortSessionOptions = ChannelSessionOptions;

/** Port forwarding needs an agent newer than this for smux (§8). */
const MIN_MUX_AGENT = "3.0.196.0";

export class PortSession extends ChannelSession {
  readonly smux: SmuxClient;

  private constructor(opts: PortSessionOptions) {
    super(opts, true);
    this.smux = new SmuxClient((bytes) => {
      this.channel.send(PayloadType.Output, bytes, Date.now());
      this.pump();
    }, this.channel.maxPayload - SMUX_HEADER);
  }

  /** Connect, complete the handshake, and return once streams can be opened. */
  static async open(opts: PortSessionOptions): Promise<PortSession> {
    const s = new PortSession(opts);
    await s.start();
    return s;
  }

  openStream(handlers: StreamHandlers): SmuxStream {
    return this.smux.open(handlers);
  }

  protected onHandshake(info: HandshakeInfo): string | undefined {
    if (info.sessionType !== "Port") {
      return `the session is of type ${info.sessionType ?? "unknown"}, not Port`;
    }
    if (compareVersions(info.agentVersion, MIN_MUX_AGENT) <= 0) {
      return `the SSM agent on the instance is ${info.agentVersion}; ssm-proxy needs a newer one (> ${MIN_MUX_AGENT}): update amazon-ssm-agent`;
    }
    return undefined;
  }

  protected onData(payloadType: number, payload: Uint8Array): void {
    if (payloadType !== PayloadType.Output) return;
    try {
      this.smux.receive(payload);
    } catch (err) {
      this.fail(`corrupt stream from the agent: ${(err as Error).message}`);
    }
  }

  protected override onFlag(flag: number): void {
    if (flag === PayloadFlag.ConnectToPortError) this.smux.connectError();
  }

  /** A smux NOP rides in input_stream_data, so its ack proves the whole path alive. */
  protected heartbeat(): void {
    this.smux.nop();
  }

  protected override onEnd(): void {
    this.smux.abort();
  }
}
