/**
 * The emulator's MGS (`ssmmessages`): the client's data-channel WebSocket, token checks, the
 * emulated agent attached per session, channel_closed, and the fault control endpoint.
 *
 * Choices where the real service is unknown (specs/ssm-protocol.md §14):
 * - Rejections are WebSocket closes with a reason: 1008 for a bad first frame or a token that is
 *   unknown, reused or for another session; 4000 for a socket replaced by a newer one for the
 *   same session; 1000 after channel_closed; 1001 when the emulator shuts down.
 * - agent_session_state is dropped (the plugin ignores it) unless `forwardAgentSessionState`.
 * - Malformed binary frames from the client are dropped and logged; the socket stays open.
 * - While no client socket is attached, the agent's output stays in its unacked buffer; a new
 *   socket gets every unacked frame again at once.
 */
import type { SessionRegistry } from "./sessions.ts";
import { FaultController, type FaultLink } from "./faults.ts";
import { AGENT_DEFAULTS, type AgentOptions, type EmulatedAgentSession } from "./agent/session.ts";
import { createAgentSession } from "./agent/create.ts";
import { channelClosedFrame, publicationFrame, sessionStateFrame } from "./agent/wire.ts";

export interface MgsOptions {
  registry: SessionRegistry;
  /** The real agent's 1024-byte reads with 1 ms sleeps; false: 32 KiB reads, no sleep. */
  pacing: boolean;
  log?: (line: string) => void;
  agent?: Partial<AgentOptions>;
  /** channel_closed header: 116 (default) or 112, as real MGS reportedly sends it (§4). */
  channelClosedHeaderLength?: 112 | 116;
  forwardAgentSessionState?: boolean;
  /** Seed of the fault PRNG. */
  seed?: number;
  idleTimeoutMs?: number;
  maxSessionDurationMs?: number;
  /** How long a new socket may take to send its OpenDataChannel frame. */
  openTimeoutMs?: number;
  /** Shell sessions' extra environment, merged over `agent.shellEnv`. */
  shellEnv?: Record<string, string>;
}

export interface Mgs {
  handle(req: Request): Response | undefined;
  faults: FaultController;
  close(): Promise<void>;
}

export const IDLE_TIMEOUT_OUTPUT =
  "Your session timed out due to inactivity and has been terminated.";
export const MAX_DURATION_OUTPUT =
  "Your session has reached the maximum session duration and has been terminated.";
export const CloseCode = { Normal: 1000, GoingAway: 1001, Rejected: 1008, Replaced: 4000 } as const;

const DATA_CHANNEL = /^\/v1\/data-channel\/([^/]+)$/;
const CHECK_MS = 100;

interface Client {
  ws: WebSocket;
  toAgent: FaultLink;
  toClient: FaultLink;
  sink: (frame: Uint8Array) => void;
}

interface Entry {
  sessionId: string;
  target: string;
  agent: EmulatedAgentSession;
  client?: Client;
}

export function createMgs(opts: MgsOptions): Mgs {
  const log = opts.log ?? (() => {});
  const agentOpts: AgentOptions = {
    ...AGENT_DEFAULTS,
    ...opts.agent,
    shellEnv: { ...opts.agent?.shellEnv, ...opts.shellEnv },
  };
  const faults = new FaultController(opts.seed ?? 1, opts);
  const entries = new Map<string, Entry>();
  const sockets = new Set<WebSocket>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const closing = new Set<Promise<void>>();
  const track = (p: Promise<void>) => {
    closing.add(p);
    p.finally(() => closing.delete(p));
  };
  let checker: ReturnType<typeof setInterval> | undefined;
  let closed = false;

  const matching = (sid?: string): Entry[] =>
    [...entries.values()].filter((e) => sid === undefined || e.sessionId === sid);

  faults.bind({
    sessions: (sid) => matching(sid).filter((e) => e.client).map((e) => e.sessionId),
    dropWebSocket(sid) {
      const hit = matching(sid).filter((e) => e.client);
      for (const e of hit) {
        log(`mgs: fault: dropping the WebSocket of ${e.sessionId}`);
        const c = e.client!;
        detach(e, c);
        dropAbruptly(c.ws);
      }
      return hit.map((e) => e.sessionId);
    },
    pausePublication(ms, sid) {
      const hit = matching(sid).filter((e) => e.client);
      for (const e of hit) {
        e.client!.sink(publicationFrame("pause", Date.now()));
        e.agent.pausePublication();
        const t = setTimeout(() => {
          timers.delete(t);
          if (entries.get(e.sessionId) !== e) return;
          e.client?.sink(publicationFrame("start", Date.now()));
          e.agent.startPublication();
        }, ms);
        timers.add(t);
      }
      return hit.map((e) => e.sessionId);
    },
    corruptInput(afterBytes, sid) {
      const hit = matching(sid).filter((e) => e.agent.corruptInput);
      for (const e of hit) e.agent.corruptInput!(afterBytes);
      return hit.map((e) => e.sessionId);
    },
    // The service ending the session: terminated in the registry, so ResumeSession is refused.
    channelClosed(sid, output) {
      const hit = matching(sid);
      for (const e of hit) opts.registry.terminate(e.sessionId, output ?? "");
      return hit.map((e) => e.sessionId);
    },
  });

  opts.registry.onTerminate((s) => {
    const e = entries.get(s.sessionId);
    if (closed || !e) return;
    entries.delete(s.sessionId);
    if (entries.size === 0) stopChecker();
    track(e.agent.close());
    const c = e.client;
    if (!c) return;
    e.client = undefined;
    c.sink(channelClosedFrame({
      sessionId: e.sessionId,
      destinationId: e.target,
      output: s.endReason ?? "",
      headerLength: opts.channelClosedHeaderLength ?? 116,
      now: Date.now(),
    }));
    log(`mgs: ${e.sessionId}: channel_closed (${s.endReason ?? "no output"})`);
    track(
      c.toClient.drained().then(() => {
        c.toAgent.close();
        c.toClient.close();
        closeSocket(c.ws, CloseCode.Normal, "session terminated");
      }),
    );
  });

  function detach(e: Entry, c: Client): void {
    if (e.client !== c) return;
    e.client = undefined;
    c.toAgent.close();
    c.toClient.close();
    e.agent.detach(c.sink);
  }

  function attach(sessionId: string, ws: WebSocket): void {
    const s = opts.registry.get(sessionId)!;
    let e = entries.get(sessionId);
    const first = !e;
    if (!e) {
      const agent = createAgentSession({
        sessionId,
        target: s.target,
        documentName: s.documentName,
        parameters: s.parameters,
        pacing: opts.pacing,
        agent: agentOpts,
        log,
        end: (reason) => opts.registry.terminate(sessionId, reason),
        sessionState: (state) => {
          if (!opts.forwardAgentSessionState) return;
          entries.get(sessionId)?.client?.sink(sessionStateFrame(sessionId, state, Date.now()));
        },
      });
      // A corruptInput fault armed for the next shell session (or for this id) applies now.
      if (agent.corruptInput) {
        const after = faults.claimInputCorruption(sessionId);
        if (after !== undefined) agent.corruptInput(after);
      }
      e = { sessionId, target: s.target, agent };
      entries.set(sessionId, e);
      startChecker();
    }
    const entry = e;
    if (entry.client) {
      const old = entry.client;
      detach(entry, old);
      closeSocket(old.ws, CloseCode.Replaced, "replaced by a newer connection for this session");
    }
    const toClient = faults.link(sessionId, (f) => send(ws, f));
    const toAgent = faults.link(sessionId, (f) => entry.agent.receive(f));
    const c: Client = { ws, toAgent, toClient, sink: (f) => toClient.push(f) };
    entry.client = c;
    ws.addEventListener("close", () => detach(entry, c));
    ws.addEventListener("message", (ev) => {
      if (ev.data instanceof ArrayBuffer) c.toAgent.push(new Uint8Array(ev.data));
      else log(`mgs: ${sessionId}: ignored a text frame after OpenDataChannel`);
    });
    if (first && opts.forwardAgentSessionState) {
      c.sink(sessionStateFrame(sessionId, "Connected", Date.now()));
    }
    log(`mgs: ${sessionId}: client ${first ? "connected" : "resumed"}`);
    entry.agent.attach(c.sink);
  }

  /** The first frame: OpenDataChannelInput JSON with the token from StartSession/ResumeSession. */
  function open(sessionId: string, ws: WebSocket, data: unknown): boolean {
    if (typeof data !== "string") {
      closeSocket(ws, CloseCode.Rejected, "expected an OpenDataChannel JSON text frame");
      return false;
    }
    let token: unknown;
    try {
      token = JSON.parse(data)?.TokenValue;
    } catch {
      token = undefined;
    }
    if (typeof token !== "string") {
      closeSocket(ws, CloseCode.Rejected, "OpenDataChannel frame without a TokenValue");
      return false;
    }
    if (!opts.registry.consumeToken(sessionId, token)) {
      log(`mgs: ${sessionId}: token rejected`);
      closeSocket(ws, CloseCode.Rejected, "invalid, reused or expired token for this session");
      return false;
    }
    attach(sessionId, ws);
    return true;
  }

  function upgrade(req: Request, sessionId: string): Response {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade\n", { status: 426 });
    }
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    sockets.add(socket);
    const deadline = setTimeout(() => {
      timers.delete(deadline);
      closeSocket(socket, CloseCode.Rejected, "no OpenDataChannel frame in time");
    }, opts.openTimeoutMs ?? 10_000);
    timers.add(deadline);
    const first = (ev: MessageEvent) => {
      socket.removeEventListener("message", first);
      clearTimeout(deadline);
      timers.delete(deadline);
      if (!closed) open(sessionId, socket, ev.data);
    };
    socket.addEventListener("message", first);
    socket.addEventListener("close", () => {
      clearTimeout(deadline);
      timers.delete(deadline);
      sockets.delete(socket);
    });
    return response;
  }

  function faultControl(req: Request): Response {
    // The signature is synchronous, so the reply streams: status 200 and an `ok` field.
    const body = req.text().then((text) => {
      try {
        return JSON.stringify(faults.control(text === "" ? { action: "state" } : JSON.parse(text)));
      } catch (e) {
        return JSON.stringify({ ok: false, error: (e as Error).message });
      }
    });
    const stream = new ReadableStream<Uint8Array>({
      async pull(ctl) {
        ctl.enqueue(new TextEncoder().encode(await body + "\n"));
        ctl.close();
      },
    });
    return new Response(stream, { headers: { "content-type": "application/json" } });
  }

  function startChecker(): void {
    checker ??= setInterval(checkLimits, CHECK_MS);
  }

  function stopChecker(): void {
    clearInterval(checker);
    checker = undefined;
  }

  /** Idle timeout and max duration are MGS's to enforce, not the agent's (§10). */
  function checkLimits(): void {
    const now = Date.now();
    const idle = faults.idleTimeoutMs;
    const max = faults.maxSessionDurationMs;
    for (const e of [...entries.values()]) {
      const since = Math.max(e.agent.lastStreamActivity, faults.idleTimeoutSetAt);
      const created = opts.registry.get(e.sessionId)?.createdAt ?? now;
      if (idle !== null && now - since > idle) {
        opts.registry.terminate(e.sessionId, IDLE_TIMEOUT_OUTPUT);
      } else if (max !== null && now - created > max) {
        opts.registry.terminate(e.sessionId, MAX_DURATION_OUTPUT);
      }
    }
  }

  return {
    faults,
    handle(req) {
      if (closed) return undefined;
      const url = new URL(req.url);
      if (url.pathname === "/_emulator/faults") {
        if (req.method === "POST" || req.method === "GET") return faultControl(req);
        return new Response("use POST\n", { status: 405 });
      }
      const m = DATA_CHANNEL.exec(url.pathname);
      return m ? upgrade(req, decodeURIComponent(m[1])) : undefined;
    },
    async close() {
      closed = true;
      stopChecker();
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const e of entries.values()) {
        if (e.client) detach(e, e.client);
        track(e.agent.close());
      }
      entries.clear();
      for (const ws of sockets) closeSocket(ws, CloseCode.GoingAway, "emulator shutting down");
      await Promise.all([...closing]);
    },
  };
}

function send(ws: WebSocket, frame: Uint8Array): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(frame);
}

function closeSocket(ws: WebSocket, code: number, reason: string): void {
  if (ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) return;
  try {
    ws.close(code, reason);
  } catch {
    // Not open yet or already gone.
  }
}

/**
 * The real endpoints vanish without a close frame (1006, §3). Deno's server cannot do that, but
 * `close(1006)` puts a close frame with that reserved code on the wire, which a conforming client
 * rejects as a protocol error and drops: the client sees an unclean close (Deno: code 0,
 * wasClean false), the nearest thing to a dropped connection.
 */
function dropAbruptly(ws: WebSocket): void {
  try {
    ws.close(1006);
  } catch {
    closeSocket(ws, 4006, "emulator fault: connection dropped");
  }
}
