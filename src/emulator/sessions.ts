/**
 * The emulator's Session Manager session table: the seam between the SSM API (StartSession,
 * ResumeSession, TerminateSession) and MGS (the data-channel WebSocket). The API side creates
 * sessions and tokens; MGS consumes tokens and attaches the emulated agent.
 */

export interface EmulatedSession {
  sessionId: string;
  target: string;
  documentName: string;
  /** As given to StartSession: parameter name → array of strings. */
  parameters: Record<string, string[]>;
  /** Tokens handed out and not yet used to open a data channel. */
  tokens: Set<string>;
  state: "open" | "terminated";
  /** Epoch ms. */
  createdAt: number;
  /** Why it ended, shown to the client in channel_closed. */
  endReason?: string;
}

export interface SessionGrant {
  SessionId: string;
  StreamUrl: string;
  TokenValue: string;
}

type Listener = (s: EmulatedSession) => void;

export class SessionRegistry {
  #sessions = new Map<string, EmulatedSession>();
  #onTerminate: Listener[] = [];
  #counter = 0;

  /** `streamBase` is e.g. `ws://127.0.0.1:4566`; the StreamUrl path follows the real one. */
  constructor(private streamBase: () => string, private caller = "emulator-user") {}

  start(target: string, documentName: string, parameters: Record<string, string[]>): SessionGrant {
    const hex = crypto.randomUUID().replace(/-/g, "").slice(0, 17);
    const sessionId = `${this.caller}-${hex}${(this.#counter++).toString(16)}`;
    const s: EmulatedSession = {
      sessionId,
      target,
      documentName,
      parameters,
      tokens: new Set(),
      state: "open",
      createdAt: Date.now(),
    };
    this.#sessions.set(sessionId, s);
    return this.#grant(s);
  }

  /** A terminated or unknown session resumes with an empty token, as the plugin expects (§10). */
  resume(sessionId: string): SessionGrant | undefined {
    const s = this.#sessions.get(sessionId);
    if (!s) return undefined;
    if (s.state === "terminated") {
      return { SessionId: sessionId, StreamUrl: this.#streamUrl(sessionId), TokenValue: "" };
    }
    return this.#grant(s);
  }

  terminate(sessionId: string, reason?: string): EmulatedSession | undefined {
    const s = this.#sessions.get(sessionId);
    if (!s || s.state === "terminated") return s;
    s.state = "terminated";
    s.endReason = reason;
    s.tokens.clear();
    for (const l of this.#onTerminate) l(s);
    return s;
  }

  get(sessionId: string): EmulatedSession | undefined {
    return this.#sessions.get(sessionId);
  }

  list(): EmulatedSession[] {
    return [...this.#sessions.values()];
  }

  /** True once per token: a token opens one data-channel connection. */
  consumeToken(sessionId: string, token: string): boolean {
    const s = this.#sessions.get(sessionId);
    if (!s || s.state !== "open" || !s.tokens.has(token)) return false;
    s.tokens.delete(token);
    return true;
  }

  onTerminate(l: Listener): void {
    this.#onTerminate.push(l);
  }

  #grant(s: EmulatedSession): SessionGrant {
    const token = btoa(
      String.fromCharCode(...crypto.getRandomValues(new Uint8Array(48))),
    );
    s.tokens.add(token);
    return { SessionId: s.sessionId, StreamUrl: this.#streamUrl(s.sessionId), TokenValue: token };
  }

  #streamUrl(sessionId: string): string {
    return `${this.streamBase()}/v1/data-channel/${sessionId}?role=publish_subscribe`;
  }
}
