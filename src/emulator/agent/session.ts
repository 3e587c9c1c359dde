/**
 * One emulated agent Port session: the port side (smux server or basic) on the shared session
 * core (session_core.ts: engine, paced output pump, 100 ms tick). It belongs to the SESSION, not
 * to a WebSocket: MGS attaches and detaches client sockets, and sequence numbers, buffers, TCP
 * connections and smux streams carry on across them (ResumeSession, §10).
 */
import { compareVersions, flagPayload, parseFlag, PayloadType } from "../../ssm/message.ts";
import { type DestinationMap, formatHostPort, mapDestination } from "../destinations.ts";
import { BasicPort } from "./basic.ts";
import { type PortDocument, resolvePortDocument } from "./document.ts";
import { ENGINE_DEFAULTS } from "./engine.ts";
import {
  checkForbidden,
  DEFAULT_DENIED_PORT_FORWARDING_REMOTE_IPS,
  type InstanceFacts,
  literalHost,
  lookupHost,
  vpcReservedAddresses,
} from "./forbidden.ts";
import { type KeepAlive, MuxServer, type PortHost } from "./mux.ts";
import { EmulatedSessionCore } from "./session_core.ts";

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
  /**
   * Port sessions: destinations dialled at another address (destinations.ts), e.g. a VPC
   * address at a local service where the lab's namespaces do not exist.
   */
  destinations?: DestinationMap;
  /**
   * Remote-host Port sessions: `Mgs.DeniedPortForwardingRemoteIPs` of the agents whose instance
   * sets none (`instanceFacts`); default the agent's own list (forbidden.ts).
   */
  deniedPortForwardingRemoteIPs: readonly string[];
  /**
   * Remote-host Port sessions: also refuse loopback destinations, as newer agents are reported
   * to (`Forwarding to IP address 127.0.0.1 is forbidden.`). Off by default: not in the agent
   * source this follows.
   */
  denyLoopbackRemoteHost: boolean;
  /**
   * What the agent on a target knows of itself (its VPC CIDRs from IMDS, its own denied list);
   * the emulator server reads them from the fixtures. None: no VPC addresses are refused.
   */
  instanceFacts?: (target: string) => InstanceFacts | undefined;
}

export const AGENT_DEFAULTS: AgentOptions = {
  agentVersion: ENGINE_DEFAULTS.agentVersion,
  handshakeTimeoutMs: ENGINE_DEFAULTS.handshakeTimeoutMs,
  smuxKeepAliveIntervalMs: 10_000,
  smuxKeepAliveTimeoutMs: 30_000,
  maxUnackedBytes: 4 * 1024 * 1024,
  shellEnv: {},
  shellInitialWaitMs: 1000,
  deniedPortForwardingRemoteIPs: DEFAULT_DENIED_PORT_FORWARDING_REMOTE_IPS,
  denyLoopbackRemoteHost: false,
};

/**
 * How long a refused Port session waits for the client to ack HandshakeComplete before it ends:
 * the agent's PrepareToCloseChannel (wait up to 2 s for its outgoing buffer to empty).
 */
export const CLOSE_DRAIN_MS = 2000;

export interface AgentSessionInit {
  sessionId: string;
  /** The instance id the session was started for. */
  target: string;
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

export class AgentSession extends EmulatedSessionCore<PortDocument> {
  #port?: MuxServer | BasicPort;
  #mode?: PortMode;
  /** The host matched the denied addresses: the session ends once HandshakeComplete is acked. */
  #refused?: { reason: string; at: number };

  constructor(init: AgentSessionInit) {
    super(init, {
      resolve: resolvePortDocument,
      engine: (doc) => ({ sessionType: "Port", properties: doc?.properties ?? null }),
      endedWithoutReason: "terminated by the client",
    });
  }

  get mode(): PortMode | undefined {
    return this.#mode;
  }

  /**
   * On HandshakeComplete (Port sessions always have a handshake), as the agent's plugin starts:
   * a `host` is resolved and checked against the denied addresses first (forbidden.ts), on the
   * host as requested, before the destination map. Until the port side exists, input is
   * refused unacked (the plugin's ErrHandlerNotReady) and the client resends it.
   */
  protected onStart(clientVersion?: string): void {
    const version = clientVersion!;
    const host = this.doc!.properties.host;
    if (host === undefined) return this.#open(version);
    const literal = literalHost(host);
    if (literal) return this.#check(version, host, literal);
    lookupHost(host).catch((e) => {
      // The agent skips the check; its dials then fail, as the emulator's do.
      this.init.log(
        `agent: ${this.init.sessionId}: ${host} does not resolve (${(e as Error).message})`,
      );
      return [];
    }).then((addresses) => {
      if (this.ended) return;
      this.#check(version, host, addresses);
      this.engine.retryInput(Date.now());
      this.pump.kick();
    });
  }

  #check(version: string, host: string, resolved: string[]): void {
    const { agent, target, sessionId, log } = this.init;
    const facts = agent.instanceFacts?.(target);
    const reason = checkForbidden(host, resolved, {
      denied: facts?.deniedPortForwardingRemoteIPs ?? agent.deniedPortForwardingRemoteIPs,
      vpc: facts?.vpcCidrs ? vpcReservedAddresses(facts.vpcCidrs) : [],
      loopback: agent.denyLoopbackRemoteHost,
    });
    if (reason === undefined) return this.#open(version);
    log(`agent: ${sessionId}: ${reason}`);
    this.#refused = { reason, at: Date.now() };
    this.afterStep();
  }

  /** Mode choice is the agent's (§8): mux iff LocalPortForwarding and ClientVersion ≥ 1.1.70. */
  #open(version: string): void {
    const doc = this.doc!;
    const asked = localhostToIpv4(doc.destination);
    const own = mapDestination(
      this.init.agent.instanceFacts?.(this.init.target)?.destinations,
      asked,
    );
    const destination = own !== asked ? own : mapDestination(this.init.agent.destinations, asked);
    if (destination !== asked) {
      this.init.log(
        `agent: ${this.init.sessionId}: destination ${formatHostPort(asked)} mapped to ${
          formatHostPort(destination)
        }`,
      );
    }
    const host: PortHost = {
      destination,
      out: (bytes) => this.pump.push(bytes),
      room: () => this.pump.room(),
      flag: (value) => this.engine.send(PayloadType.Flag, flagPayload(value), Date.now()),
      fail: (reason) => this.end(reason),
      log: this.init.log,
    };
    const mux = doc.properties.type === "LocalPortForwarding" &&
      compareVersions(version, "1.1.70") >= 0;
    if (mux) {
      // The agent turns smux keepalive off only for clients newer than 1.2.331.0.
      const keepAlive: KeepAlive | undefined = compareVersions(version, "1.2.331.0") > 0
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
    this.init.log(`agent: ${this.init.sessionId}: ClientVersion ${version}, ${this.#mode} mode`);
  }

  /**
   * A refused session fails as the plugin does: its data channel waits up to 2 s for the
   * outgoing buffer to empty (HandshakeComplete acked), then the session ends and MGS sends
   * channel_closed with the plugin's output.
   */
  protected override afterStep(): void {
    const r = this.#refused;
    if (!r || this.ended) return;
    if (this.engine.unackedCount > 0 && Date.now() - r.at < CLOSE_DRAIN_MS) return;
    this.end(r.reason);
  }

  protected onInput(payloadType: number, payload: Uint8Array): boolean {
    if (!this.#port) return false;
    if (payloadType === PayloadType.Flag) {
      let flag: number;
      try {
        flag = parseFlag(payload);
      } catch {
        return true;
      }
      if (flag === 2) this.end(undefined);
      else if (this.#port instanceof BasicPort) this.#port.flag(flag);
      return true;
    }
    // Size and other types mean nothing to a Port session.
    if (payloadType !== PayloadType.Output) return true;
    return this.#port.input(payload);
  }

  protected async onClose(): Promise<void> {
    await this.#port?.close();
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
