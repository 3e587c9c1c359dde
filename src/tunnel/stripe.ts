/**
 * One stripe: a Port session to the agent daemon's port and one smux stream on it, speaking the
 * tunnel protocol (wire.ts). It hands received packets up and sends batches down, dropping
 * rather than queueing when the session is backed up (a real link drops; inner TCP then backs
 * off instead of the outer stream filling with stale data).
 */
import { ExitCode, UserError } from "../errors.ts";

/** The instance has no ssm-proxy-agent on the port, or one too old to talk to; installable. */
export class AgentUnavailable extends UserError {
  override name = "AgentUnavailable";
  constructor(readonly reason: "missing" | "old", message: string) {
    super(message, ExitCode.Remote);
  }
}
import type { PortSession } from "../ssm/session.ts";
import type { SmuxStream } from "../ssm/smux.ts";
import { identityRefusal, isIdentityCode, type Prover } from "./identity.ts";
import type { Liveness } from "./liveness.ts";
import {
  encodeHello,
  encodePackets,
  encodePing,
  encodePong,
  encodeProofFrame,
  FEATURE_IDENTITY,
  FrameReader,
  FrameType,
  type Hello,
  type LoadReport,
  PROTOCOL_VERSION,
  type Welcome,
  WireError,
} from "./wire.ts";

export interface StripeHandlers {
  packets(packets: Uint8Array[]): void;
  /**
   * The stripe is gone (session ended, stream closed, protocol error). `fatal`: the agent broke
   * the protocol or speaks another version, so a new session to it would fail the same way.
   */
  down(reason: string, fatal: boolean): void;
}

export interface StripeStats {
  packetsOut: number;
  bytesOut: number;
  packetsIn: number;
  bytesIn: number;
  dropsOut: number;
  rttMs: number;
}

/** How the handshake proves the client's identity when the agent asks (identity.ts). */
export interface HandshakeOptions {
  /** Signs a proof per nonce; absent, a CHALLENGE is a protocol error. */
  prover?: Prover;
  /** The instance, for messages ("i-0abc…"); default "the instance". */
  where?: string;
}

const HELLO_TIMEOUT_MS = 15_000;

export class Stripe {
  #stream?: SmuxStream;
  #reader = new FrameReader();
  #welcome = Promise.withResolvers<Welcome>();
  #handlers?: StripeHandlers;
  #up = false;
  #pingSent = new Map<string, number>();
  #downReason?: string;
  #failure?: UserError;
  #fatal = false;
  #timer?: ReturnType<typeof setTimeout>;
  #handshake: HandshakeOptions & { offered: boolean } = { offered: false };
  /** A CHALLENGE was answered, or the WELCOME came: another CHALLENGE breaks the protocol. */
  #challenged = false;
  #welcomed = false;
  readonly stats: StripeStats = {
    packetsOut: 0,
    bytesOut: 0,
    packetsIn: 0,
    bytesIn: 0,
    dropsOut: 0,
    rttMs: 0,
  };
  /** Whether the far end still answers (set by the supervisor; absent: keepalive off). */
  liveness?: Liveness;
  /** The agent's last LOAD report and when it came (performance.now()). */
  load?: LoadReport & { at: number };
  /** When the last PONG came (performance.now()), and the least RTT seen: the idle path. */
  rttAt = -Infinity;
  minRttMs = Infinity;
  /** When a packet last went either way (performance.now()). */
  lastPacketAt = performance.now();
  /** The agent's WELCOME, once the handshake is done (its verified identity, for status). */
  welcome?: Welcome;

  constructor(
    readonly index: number,
    readonly session: PortSession,
    private agentPort: number,
  ) {
    this.#welcome.promise.catch(() => {});
  }

  get up(): boolean {
    return this.#up;
  }

  /** Why the stripe went down, once it has (an IdentityRefused ends the tunnel). */
  get failure(): UserError | undefined {
    return this.#failure;
  }

  /**
   * Open the stream, say hello, and wait for the agent's welcome; with FEATURE_IDENTITY in the
   * hello, answer the agent's CHALLENGE with a proof from `o.prover` first.
   */
  async handshake(hello: Omit<Hello, "stripe">, o: HandshakeOptions = {}): Promise<Welcome> {
    this.#handshake = { ...o, offered: hello.features.includes(FEATURE_IDENTITY) };
    this.#stream = this.session.openStream({
      data: (chunk) => this.#onData(chunk),
      end: (refused) =>
        refused
          ? this.#fail(
            new AgentUnavailable(
              "missing",
              `nothing listens on port ${this.agentPort} of the instance: ssm-proxy-agent is not installed or not running there (ssm-proxy agent install, or start --install-agent), or pass the right --agent-port`,
            ),
          )
          : this.#fail(new UserError("the agent closed the tunnel stream", ExitCode.Remote)),
    });
    this.session.ended.then((e) => this.#fail(new UserError(e.message, ExitCode.Remote)));
    this.#stream.write(encodeHello({ ...hello, stripe: this.index }));
    this.#arm(
      `ssm-proxy-agent did not answer within ${
        HELLO_TIMEOUT_MS / 1000
      } s: is the agent on port ${this.agentPort} an ssm-proxy-agent?`,
    );
    try {
      const w = await this.#welcome.promise;
      if (w.version !== PROTOCOL_VERSION) {
        throw new UserError(
          `the agent chose protocol version ${w.version}, which this ssm-proxy does not speak`,
          ExitCode.Remote,
        );
      }
      this.welcome = w;
      this.#up = true;
      return w;
    } finally {
      clearTimeout(this.#timer);
    }
  }

  /** (Re)starts the handshake's deadline: the agent checking a proof with STS takes its time. */
  #arm(message: string): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => this.#fail(new UserError(message, ExitCode.Remote)),
      HELLO_TIMEOUT_MS,
    );
  }

  /** The agent's CHALLENGE: sign a proof bound to its nonce and send it, once per handshake. */
  #challenge(nonce: string): void {
    const { prover, offered } = this.#handshake;
    if (this.#welcomed || this.#challenged || !prover || !offered) {
      const why = this.#welcomed || this.#challenged
        ? "an identity CHALLENGE after the handshake"
        : "an identity CHALLENGE though this client offered no proof";
      this.#fail(new UserError(`protocol error from the agent: ${why}`, ExitCode.Remote), true);
      return;
    }
    this.#challenged = true;
    prover(nonce).then((text) => {
      if (this.#downReason) return;
      this.#stream?.write(encodeProofFrame(text));
      this.#arm(
        `ssm-proxy-agent did not answer this client's identity proof within ${
          HELLO_TIMEOUT_MS / 1000
        } s (it checks proofs with STS: can it reach STS?)`,
      );
    }, (e) => {
      this.#fail(
        e instanceof UserError ? e : new UserError(
          `could not sign the identity proof ssm-proxy-agent asked for: ${
            (e as Error).message ?? e
          }`,
          ExitCode.Auth,
        ),
      );
    });
  }

  /** Start delivering packets to `h` (after the handshake). */
  attach(h: StripeHandlers): void {
    this.#handlers = h;
    if (this.#downReason) h.down(this.#downReason, this.#fatal);
  }

  /** Send a batch; false (and counted as drops) when the session cannot take it now. */
  send(packets: Uint8Array[]): boolean {
    if (!this.#up || !this.#stream) return false;
    if (!this.session.writable) {
      this.stats.dropsOut += packets.length;
      return false;
    }
    let bytes = 0;
    for (const p of packets) bytes += p.length;
    this.#stream.write(encodePackets(packets));
    this.stats.packetsOut += packets.length;
    this.stats.bytesOut += bytes;
    const now = performance.now();
    this.lastPacketAt = now;
    this.liveness?.sent(now);
    return true;
  }

  /** Liveness and RTT probe; also keeps the session's idle timer from firing. */
  ping(): void {
    if (!this.#up || !this.#stream) return;
    const nonce = crypto.getRandomValues(new Uint8Array(8));
    const key = nonce.join(",");
    const now = performance.now();
    this.#pingSent.set(key, now);
    if (this.#pingSent.size > 16) this.#pingSent.delete(this.#pingSent.keys().next().value!);
    this.#stream.write(encodePing(nonce));
    this.liveness?.sent(now);
  }

  close(): void {
    this.#up = false;
    this.#stream?.close();
  }

  #onData(chunk: Uint8Array): void {
    let frames;
    try {
      frames = this.#reader.push(chunk);
    } catch (e) {
      this.#fail(
        new UserError(
          `protocol error from the agent: ${(e as WireError).message}`,
          ExitCode.Remote,
        ),
        true,
      );
      return;
    }
    if (frames.length > 0) this.liveness?.heard();
    for (const f of frames) {
      switch (f.type) {
        case FrameType.Welcome:
          this.#welcomed = true;
          this.#welcome.resolve(f.welcome);
          break;
        case FrameType.Challenge:
          this.#challenge(f.nonce);
          break;
        case FrameType.Packets:
          this.stats.packetsIn += f.packets.length;
          for (const p of f.packets) this.stats.bytesIn += p.length;
          this.lastPacketAt = performance.now();
          this.#handlers?.packets(f.packets);
          break;
        case FrameType.Ping:
          this.#stream?.write(encodePong(f.nonce));
          break;
        case FrameType.Pong: {
          const key = f.nonce.join(",");
          const t = this.#pingSent.get(key);
          if (t !== undefined) {
            this.#pingSent.delete(key);
            const now = performance.now();
            this.stats.rttMs = now - t;
            this.rttAt = now;
            this.minRttMs = Math.min(this.minRttMs, this.stats.rttMs);
          }
          break;
        }
        case FrameType.Load:
          this.load = { ...f.load, at: performance.now() };
          break;
        case FrameType.Error:
          if (isIdentityCode(f.error.code)) {
            const h = this.#handshake;
            this.#fail(
              identityRefusal(f.error.code, f.error.message, h.where ?? "the instance", h.offered),
              true,
            );
            break;
          }
          this.#fail(
            f.error.code === "unsupported-version"
              ? new AgentUnavailable(
                "old",
                `ssm-proxy-agent on the instance does not speak this client's protocol (it speaks ${
                  (f.error.versions ?? []).join(", ") || "?"
                }): update it (ssm-proxy agent install, or start --install-agent) or this client`,
              )
              : new UserError(
                `ssm-proxy-agent refused the tunnel: ${f.error.message || f.error.code}`,
                ExitCode.Remote,
              ),
            f.error.code === "unsupported-version",
          );
          break;
        default:
          break; // unknown frame types are skipped by design
      }
    }
  }

  #fail(e: UserError, fatal = false): void {
    if (this.#downReason) return;
    this.#downReason = e.message;
    this.#failure = e;
    this.#fatal = fatal;
    clearTimeout(this.#timer);
    this.#up = false;
    this.#welcome.reject(e);
    this.#stream?.close();
    this.#handlers?.down(e.message, fatal);
  }
}
