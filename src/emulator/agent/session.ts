/**
 * One emulated agent Port session: the engine, the port side (smux server or basic), the paced
 * output pump and the 100 ms scheduler tick. It belongs to the SESSION, not to a WebSocket: MGS
 * attaches and detaches client sockets, and sequence numbers, buffers, TCP connections and smux
 * streams carry on across them (ResumeSession, §10).
 */
import { compareVersions, flagPayload, parseFlag, PayloadType } from "../../ssm/message.ts";
import { BasicPort } from "./basic.ts";
import { DocumentError, type PortDocument, resolvePortDocument } from "./document.ts";
import { AgentEngine, ENGINE_DEFAULTS } from "./engine.ts";
import { type KeepAlive, MuxServer, type PortHost } from "./mux.ts";
import { OutputPump, PACED, UNPACED } from "./pump.ts";

export interface AgentOptions {
  /** 4-part, so the plugin's version compare works (§8). */
  agentVersion: string;
  handshakeTimeoutMs: number;
  /** xtaci/smux defaults: NOP every 10 s, close after 30 s of silence from the client. */
  smuxKeepAliveIntervalMs: number;
  smuxKeepAliveTimeoutMs: number;
  /**
   * The pump stops reading the port side while more than this is unacked. Real agents only cap
   * the count (100 000 messages); a byte cap keeps a 50 MB transfer from ballooning memory.
   */
  maxUnackedBytes: number;
  /**
   * Shell sessions: merged over the emulator's own environment (after TERM=xterm-256color and
   * LANG=C.UTF-8), so tests can set PATH or HOME for the shell.
   */
  shellEnv: Record<string, string>;
  /** Shell sessions: the agent's wait before its first pty read (§6 step 5: 1 s). */
  shellInitialWaitMs: number;
  /** Shell sessions: the working directory; default the emulator's own. */
  shellCwd?: string;
}

export const AGENT_DEFAULTS: AgentOptions = {
  agentVersion: ENGINE_DEFAULTS.agentVersion,
  handshakeTimeoutMs: ENGINE_DEFAULTS.handshakeTimeoutMs,
  smuxKeepAliveIntervalMs: 10_000,
  smuxKeepAliveTimeoutMs: 30_000,
  maxUnackedBytes: 4 * 1024 * 1024,
  shellEnv: {},
  shellInitialWaitMs: 1000,
};

export interface AgentSessionInit {
  sessionId: string;
  documentName: string;
  parameters: Record<string, string[]>;
  pacing: boolean;
  agent: AgentOptions;
  log: (line: string) => void;
  /** The session must end (Flag 2, handshake failure, smux death…); MGS terminates it. */
  end: (reason: string | undefined) => void;
  /** agent_session_state the agent sends besides Connected (a shell's "Terminating", §5). */
  sessionState?: (state: string) => void;
}

/** What MGS needs of an emulated agent session, whatever its type (Port or shell). */
export interface EmulatedAgentSession {
  readonly lastStreamActivity: number;
  attach(sink: (frame: Uint8Array) => void): void;
  detach(sink: (frame: Uint8Array) => void): void;
  receive(frame: Uint8Array): void;
  pausePublication(): void;
  startPublication(): void;
  close(): Promise<void>;
  /** Arms the corruptInput fault (shell sessions only); see corrupt.ts. */
  corruptInput?(afterBytes: number): void;
}

export type PortMode = "mux" | "basic";

const TICK_MS = 100;
/** The pipe between the port side and the pump; small, so TCP reads stop early. */
const PIPE_HIGH_WATER = 64 * 1024;

export class AgentSession implements EmulatedAgentSession {
  readonly engine: AgentEngine;
  #doc?: PortDocument;
  #docError?: string;
  #pump: OutputPump;
  #port?: MuxServer | BasicPort;
  #mode?: PortMode;
  #sink?: (frame: Uint8Array) => void;
  #tick?: ReturnType<typeof setInterval>;
  #started = false;
  #ended = false;

  constructor(private init: AgentSessionInit) {
    try {
      this.#doc = resolvePortDocument(init.documentName, init.parameters);
    } catch (e) {
      if (!(e instanceof DocumentError)) throw e;
      this.#docError = e.message;
    }
    const now = Date.now();
    this.engine = new AgentEngine(
      {
        agentVersion: init.agent.agentVersion,
        sessionType: "Port",
        properties: this.#doc?.properties ?? null,
        handshakeTimeoutMs: init.agent.handshakeTimeoutMs,
        outgoingCapacity: ENGINE_DEFAULTS.outgoingCapacity,
        incomingCapacity: ENGINE_DEFAULTS.incomingCapacity,
      },
      {
        send: (frame) => this.#sink?.(frame),
        input: (pt, payload) => this.#input(pt, payload),
        handshakeComplete: (cv) => this.#startPort(cv),
        fail: (reason) => this.#end(reason),
        log: init.log,
      },
      now,
    );
    const pacing = init.pacing ? PACED : UNPACED;
    this.#pump = new OutputPump({
      ...pacing,
      highWater: PIPE_HIGH_WATER,
      canSend: () =>
        !this.#ended && !this.engine.paused &&
        this.engine.unackedBytes < init.agent.maxUnackedBytes,
      emit: (chunk) => this.engine.send(PayloadType.Output, chunk, Date.now()),
    });
  }

  get mode(): PortMode | undefined {
    return this.#mode;
  }

  get lastStreamActivity(): number {
    return this.engine.lastStreamActivity;
  }

  /** A client socket (after its fault link). The first starts the handshake; later ones resume. */
  attach(sink: (frame: Uint8Array) => void): void {
    this.#sink = sink;
    if (this.#ended) return;
    if (this.#docError !== undefined) {
      this.#end(this.#docError);
      return;
    }
    const now = Date.now();
    if (!this.#started) {
      this.#started = true;
      this.#tick = setInterval(() => this.#onTick(), TICK_MS);
      this.engine.start(now);
    } else {
      this.engine.reattach(now);
      this.#pump.kick();
    }
  }

  /** The socket went away; output keeps accumulating in the engine's buffer. */
  detach(sink: (frame: Uint8Array) => void): void {
    if (this.#sink === sink) this.#sink = undefined;
  }

  receive(frame: Uint8Array): void {
    if (this.#ended) return;
    this.engine.receive(frame, Date.now());
    this.#pump.kick();
  }

  pausePublication(): void {
    this.engine.pause();
  }

  startPublication(): void {
    this.engine.startPublication(Date.now());
    this.#pump.kick();
  }

  async close(): Promise<void> {
    this.#ended = true;
    clearInterval(this.#tick);
    this.#sink = undefined;
    await this.#pump.close();
    await this.#port?.close();
  }

  #onTick(): void {
    if (this.#ended) return;
    this.engine.tick(Date.now());
    this.#pump.kick();
  }

  #end(reason: string | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.init.log(
      `agent: session ${this.init.sessionId} ends: ${reason ?? "terminated by the client"}`,
    );
    // Deferred so the message that ended the session is acked before channel_closed goes out.
    queueMicrotask(() => this.init.end(reason));
  }

  /** Mode choice is the agent's (§8): mux iff LocalPortForwarding and ClientVersion ≥ 1.1.70. */
  #startPort(clientVersion: string): void {
    const doc = this.#doc!;
    const host: PortHost = {
      destination: localhostToIpv4(doc.destination),
      out: (bytes) => this.#pump.push(bytes),
      room: () => this.#pump.room(),
      flag: (value) => this.engine.send(PayloadType.Flag, flagPayload(value), Date.now()),
      fail: (reason) => this.#end(reason),
      log: this.init.log,
    };
    const mux = doc.properties.type === "LocalPortForwarding" &&
      compareVersions(clientVersion, "1.1.70") >= 0;
    if (mux) {
      // The agent turns smux keepalive off only for clients newer than 1.2.331.0.
      const keepAlive: KeepAlive | undefined = compareVersions(clientVersion, "1.2.331.0") > 0
        ? undefined
        : {
          intervalMs: this.init.agent.smuxKeepAliveIntervalMs,
          timeoutMs: this.init.agent.smuxKeepAliveTimeoutMs,
        };
      this.#mode = "mux";
      this.#port = new MuxServer(host, keepAlive);
    } else {
      this.#mode = "basic";
      const basic = new BasicPort(host);
      this.#port = basic;
      basic.start();
    }
    this.init.log(
      `agent: ${this.init.sessionId}: ClientVersion ${clientVersion}, ${this.#mode} mode`,
    );
  }

  #input(payloadType: number, payload: Uint8Array): boolean {
    if (payloadType === PayloadType.Flag) {
      let flag: number;
      try {
        flag = parseFlag(payload);
      } catch {
        return true;
      }
      if (flag === 2) this.#end(undefined);
      else if (this.#port instanceof BasicPort) this.#port.flag(flag);
      return true;
    }
    // Size and other types mean nothing to a Port session.
    if (payloadType !== PayloadType.Output || !this.#port) return true;
    return this.#port.input(payload);
  }
}

/**
 * `localhost` is the instance's own loopback; dialled as 127.0.0.1 so the emulator never tries
 * ::1 first and so tests stay on 127.0.0.1.
 */
function localhostToIpv4(
  d: { hostname: string; port: number },
): { hostname: string; port: number } {
  return d.hostname === "localhost" ? { hostname: "127.0.0.1", port: d.port } : d;
}
