/**
 * Agentless mode's stream transport (DESIGN §9, specs/netstack.md §8.4, §9): each TCP connection
 * into the VPC becomes one smux stream of an AWS-StartPortForwardingSessionToRemoteHost session
 * whose host/port are the connection's destination. Sessions are pooled per dst:port and carry
 * many streams; they are started at a bounded rate, capped in number, and closed when idle.
 * One host timer serves every deadline (grace, open timeout, slot wait, token, idle).
 */
import type { PortSession } from "../ssm/session.ts";
import type { SmuxStream } from "../ssm/smux.ts";
import { Deadlines, TokenBucket } from "./limits.ts";
import type * as T from "./types.ts";

export interface PoolOptions {
  /** StartSession (AWS-StartPortForwardingSessionToRemoteHost, host = dst.host, portNumber =
   * dst.port) + PortSession.open. Injected so tests use the emulator and production the SDK. */
  openSession(dst: T.Destination): Promise<PortSession>;
  /** Close a session with no streams after this long (default 60 s). */
  idleMs?: number;
  /** Cap on sessions (default 32): at the cap the oldest idle one is closed; if none is idle,
   * a new destination waits up to `waitMs` (default 10 s) for one, then opened("timeout"). */
  maxSessions?: number;
  waitMs?: number;
  /** An open not answered within this (default 20 s, §8.2) is opened("timeout"). */
  openTimeoutMs?: number;
  /** New sessions per second and burst (§9: 5/s, burst 20). */
  sessionsPerSecond?: number;
  sessionBurst?: number;
  /** A session whose oldest unanswered stream is this old is presumed stuck dialing (§8.4). */
  blockedMs?: number;
  log?: (line: string) => void;
  now?: () => number;
}

export interface PoolStats {
  sessions: number;
  streams: number;
  opening: number;
  refused: number;
  failedSessions: number;
  sessionIds: string[];
}

const REFUSED_MS = 10_000;
const FORBIDDEN_MS = 60_000;
/** A failure this recent makes the next open wait out the grace period again. */
const FAILED_MS = 60_000;
/** Data this recent lets an open report ok as soon as its SYN is written. */
const GOOD_MS = 300_000;
/** Each kind of failure is logged once per destination within this. */
const LOG_REPEAT_MS = 600_000;
const MAX_CACHE = 4096;

class Rec {
  /** waiting: no session yet; grace: SYN out, result withheld; closed: we sent FIN; done. */
  state: "waiting" | "grace" | "open" | "closed" | "done" = "waiting";
  /** After abort() (or a close() before the result) no event reaches the caller. */
  silent = false;
  graceUntil = 0;
  attachedAt = 0;
  start?: Start;
  entry?: Entry;
  smux?: SmuxStream;
  paused = false;
  /** Counted in its entry's `paused`. */
  holding = false;
  wantWritable = false;
  retried = false;
  constructor(
    readonly dst: T.Destination,
    readonly key: string,
    readonly events: T.RemoteStreamEvents,
    readonly deadline: number,
  ) {}
}

interface Start {
  key: string;
  dst: T.Destination;
  /** slot: waiting under the cap; token: waiting for the rate limit; open: StartSession runs. */
  phase: "slot" | "token" | "open";
  slotDeadline: number;
  waiters: Set<Rec>;
}

class Entry {
  /** Streams neither we closed nor the remote ended: what keeps the session from idling. */
  streams = new Set<Rec>();
  /** Streams, in open order, with neither a byte nor a FIN yet and no later stream answered. */
  unresolved: Rec[] = [];
  paused = 0;
  waitingWritable = false;
  dead = false;
  constructor(readonly key: string, readonly session: PortSession, public idleSince: number) {}
}

export class SessionPool implements T.StreamTransport {
  #o: Required<Omit<PoolOptions, "log">> & Pick<PoolOptions, "log">;
  #entries = new Map<string, Entry[]>();
  #starts = new Map<string, Start>();
  #slotQueue: Start[] = [];
  #tokenQueue: Start[] = [];
  #pending = new Set<Rec>();
  #background = new Set<Promise<unknown>>();
  /** "Until" times: refused dst:port, forbidden host, failed and good dst:port, logged lines. */
  #refused = new Deadlines(MAX_CACHE);
  #forbidden = new Deadlines(MAX_CACHE);
  #failed = new Deadlines(MAX_CACHE);
  #good = new Deadlines(MAX_CACHE);
  #logged = new Deadlines(MAX_CACHE);
  #tokens: TokenBucket;
  #timer?: ReturnType<typeof setTimeout>;
  #timerAt = Infinity;
  #closed = false;
  #refusedCount = 0;
  #failedSessions = 0;

  constructor(o: PoolOptions) {
    this.#o = {
      idleMs: 60_000,
      maxSessions: 32,
      waitMs: 10_000,
      openTimeoutMs: 20_000,
      sessionsPerSecond: 5,
      sessionBurst: 20,
      blockedMs: 5_000,
      now: Date.now,
      ...o,
    };
    this.#tokens = new TokenBucket(this.#o.sessionsPerSecond, this.#o.sessionBurst, this.#o.now());
  }

  open(dst: T.Destination, events: T.RemoteStreamEvents): T.RemoteStream {
    const key = dst.family === 6 ? `[${dst.host}]:${dst.port}` : `${dst.host}:${dst.port}`;
    const s = new Rec(dst, key, events, this.#o.now() + this.#o.openTimeoutMs);
    this.#pending.add(s);
    // Every answer, even a cached one, comes after open() has returned the handle.
    queueMicrotask(() => this.#route(s));
    return {
      write: (data) => {
        if (s.state === "open") s.smux!.write(data);
      },
      writable: () => this.#writable(s),
      close: () => this.#finish(s, false),
      // smux v1 has no RST: an abort is a FIN whose stream we stop listening to.
      abort: () => this.#finish(s, true),
      pause: (paused) => {
        s.paused = paused;
        this.#hold(s, paused);
      },
    };
  }

  stats(): PoolStats {
    const all = this.#all();
    return {
      sessions: all.length,
      streams: all.reduce((n, e) => n + e.streams.size, 0),
      opening: this.#starts.size,
      refused: this.#refusedCount,
      failedSessions: this.#failedSessions,
      sessionIds: all.map((e) => e.session.sessionId),
    };
  }

  /** The live sessions (health, and probing them after sleep or a network change). */
  sessions(): PortSession[] {
    return this.#all().map((e) => e.session);
  }

  /** Terminate every session; open streams get aborted(), unanswered opens "unreachable". */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const s of [...this.#pending]) this.#report(s, "unreachable");
    this.#starts.clear();
    this.#slotQueue = [];
    this.#tokenQueue = [];
    for (const e of this.#all()) {
      for (const s of [...e.streams]) this.#endStream(s, "the session pool closed");
      this.#retire(e);
    }
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  // ---- opening -------------------------------------------------------------------------------

  #route(s: Rec): void {
    if (s.state !== "waiting") return;
    const now = this.#o.now();
    if (this.#closed) return this.#report(s, "unreachable");
    if (this.#forbidden.live(s.dst.host, now) || this.#refused.live(s.key, now)) {
      return this.#report(s, "refused");
    }
    const entry = this.#usable(s.key, now);
    if (entry) return this.#attach(entry, s, now);
    s.start = this.#starts.get(s.key);
    if (!s.start) {
      const slotDeadline = now + this.#o.waitMs;
      s.start = { key: s.key, dst: s.dst, phase: "slot", slotDeadline, waiters: new Set() };
      this.#starts.set(s.key, s.start);
      this.#slotQueue.push(s.start);
    }
    s.start.waiters.add(s);
    this.#pump(now);
    this.#arm(Math.min(s.deadline, s.start?.slotDeadline ?? Infinity));
  }

  /** The newest live session to this destination that is not stuck behind a dial (§8.4). */
  #usable(key: string, now: number): Entry | undefined {
    const list = this.#entries.get(key) ?? [];
    for (let i = list.length - 1; i >= 0; i--) {
      const e = list[i];
      if (e.dead || e.session.state === "closed") continue;
      const head = e.unresolved[0];
      if (head && now - head.attachedAt >= this.#o.blockedMs) {
        this.#note("blocked", key, `${key}: a stream has had no answer; using another session`);
        continue;
      }
      return e;
    }
    return undefined;
  }

  #all(): Entry[] {
    return [...this.#entries.values()].flat();
  }

  /**
   * Moves session starts along: a slot under the cap (evicting the session idle longest if
   * need be), then a token from the bucket, so a port scan cannot become a StartSession storm.
   */
  #pump(now: number): void {
    if (this.#closed) return;
    while (this.#slotQueue.length > 0) {
      let used = this.#all().length;
      for (const st of this.#starts.values()) if (st.phase !== "slot") used++;
      if (used >= this.#o.maxSessions) {
        const idle = this.#all().filter((e) => e.streams.size === 0);
        const oldest = idle.sort((a, b) => a.idleSince - b.idleSince)[0];
        if (!oldest) break;
        this.#retire(oldest, false);
      }
      const st = this.#slotQueue.shift()!;
      st.phase = "token";
      this.#tokenQueue.push(st);
    }
    while (this.#tokenQueue.length > 0 && this.#tokens.take(now)) {
      this.#launch(this.#tokenQueue.shift()!);
    }
    if (this.#tokenQueue.length > 0) this.#arm(now + this.#tokens.waitMs(now));
  }

  #launch(st: Start): void {
    st.phase = "open";
    this.#track((async () => {
      let session: PortSession;
      try {
        session = await this.#o.openSession(st.dst);
      } catch (e) {
        return this.#startFailed(st, e);
      }
      this.#started(st, session);
    })());
  }

  #started(st: Start, session: PortSession): void {
    if (this.#starts.get(st.key) === st) this.#starts.delete(st.key);
    if (this.#closed) return void this.#track(session.terminate());
    if (session.state === "closed") {
      return this.#startFailed(st, new Error(session.endReason ?? "the session ended at once"));
    }
    const now = this.#o.now();
    const e = new Entry(st.key, session, now);
    this.#entries.set(st.key, [...this.#entries.get(st.key) ?? [], e]);
    this.#track(session.ended.then((end) => {
      if (end.kind !== "terminated") {
        this.#o.log?.(`session ${session.sessionId} to ${e.key} ended: ${end.message}`);
      }
      this.#retire(e);
    }));
    for (const s of st.waiters) this.#attach(e, s, now);
    if (e.streams.size === 0) this.#idle(e, now); // its waiters gave up meanwhile
  }

  #startFailed(st: Start, err: unknown): void {
    if (this.#starts.get(st.key) === st) this.#starts.delete(st.key);
    this.#failedSessions++;
    const now = this.#o.now();
    const denied = isDenial(err);
    if (denied) this.#forbidden.put(st.dst.host, now + FORBIDDEN_MS, now);
    this.#failed.put(st.key, now + FAILED_MS, now);
    const message = (err as Error)?.message ?? String(err);
    this.#note(denied ? "forbidden" : "unreachable", st.key, `${st.key}: ${message}`);
    for (const s of [...st.waiters]) this.#report(s, denied ? "refused" : "unreachable");
    this.#pump(now);
  }

  /** Open the smux stream (SYN) and answer now, or after the grace period (§8.4). */
  #attach(e: Entry, s: Rec, now: number): void {
    s.start = undefined;
    s.entry = e;
    s.attachedAt = now;
    e.streams.add(s);
    e.unresolved.push(s);
    s.smux = e.session.openStream({
      data: (chunk) => this.#onData(s, chunk),
      end: (refused) => this.#onEnd(s, refused),
    });
    this.#hold(s, s.paused);
    if (this.#good.live(s.key, now) && !this.#failed.live(s.key, now)) {
      return this.#report(s, "ok");
    }
    s.state = "grace";
    s.graceUntil = now + grace(e.session);
    this.#arm(s.graceUntil);
  }

  #report(s: Rec, result: T.OpenResult): void {
    if (s.state !== "waiting" && s.state !== "grace") return;
    this.#pending.delete(s);
    if (result === "ok") s.state = "open";
    else {
      if (result === "refused") this.#refusedCount++;
      if (result === "timeout") {
        this.#note("timeout", s.key, `${s.key}: no session in time (busy, rate-limited or slow)`);
      }
      this.#release(s);
      s.state = "done";
    }
    if (!s.silent) s.events.opened(result);
  }

  // ---- stream events -------------------------------------------------------------------------

  #onData(s: Rec, chunk: Uint8Array): void {
    const now = this.#o.now();
    this.#resolved(s);
    this.#good.put(s.key, now + GOOD_MS, now);
    this.#report(s, "ok"); // bytes prove the dial worked, grace or not
    if (s.state === "open" && !s.silent) s.events.data(chunk);
  }

  #onEnd(s: Rec, refused: boolean): void {
    const e = s.entry!;
    const now = this.#o.now();
    this.#resolved(s);
    if (refused) {
      this.#refused.put(s.key, now + REFUSED_MS, now);
      this.#failed.put(s.key, now + FAILED_MS, now);
      this.#note("refused", s.key, `${s.key} refused the connection on the instance side`);
    }
    const over = e.session.state === "closed";
    // The agent checks a remote host after the handshake and ends the whole session ("Forwarding
    // to IP address … is forbidden"): remember the host and refuse at once, with no retry.
    const forbidden = over && isDenial({ message: e.session.endReason });
    if (forbidden && !this.#forbidden.live(s.dst.host, now)) {
      this.#forbidden.put(s.dst.host, now + FORBIDDEN_MS, now);
      this.#note("forbidden", s.key, `${s.key}: ${e.session.endReason}`);
    }
    if (s.state === "grace") {
      if (refused || forbidden) return this.#report(s, "refused");
      if (over && !s.retried && now < s.deadline) {
        // Nothing was written yet: the same open can go to the destination's next session.
        this.#release(s);
        s.retried = true;
        s.state = "waiting";
        return this.#route(s);
      }
      if (over) return this.#report(s, "unreachable");
      this.#report(s, "ok"); // accepted, then closed at once: the app sees connect, then EOF
    }
    const reason = over ? e.session.endReason ?? "session ended" : null;
    this.#endStream(s, refused ? "refused by the destination" : reason);
  }

  /** The remote side is over: end() for a plain FIN, aborted(reason) otherwise. */
  #endStream(s: Rec, abortReason: string | null): void {
    if (s.state !== "open" && s.state !== "closed") return;
    s.state = "done";
    this.#detach(s);
    if (s.silent) return;
    if (abortReason === null) s.events.end();
    else s.events.aborted(abortReason);
  }

  /** Any later stream answering proves the agent's accept loop got past the earlier ones. */
  #resolved(s: Rec): void {
    const u = s.entry!.unresolved;
    const i = u.indexOf(s);
    if (i >= 0) u.splice(0, i + 1);
  }

  #finish(s: Rec, silent: boolean): void {
    if (silent || s.state === "waiting" || s.state === "grace") s.silent = true;
    if (s.state === "waiting" || s.state === "grace") {
      this.#pending.delete(s);
      this.#release(s);
      s.state = "done";
    } else if (s.state === "open" || s.state === "closed") {
      s.state = s.silent ? "done" : "closed";
      this.#detach(s);
    }
  }

  /** Take an unanswered stream off its session start or its session. */
  #release(s: Rec): void {
    const st = s.start;
    s.start = undefined;
    if (st && st.waiters.delete(s) && st.waiters.size === 0 && st.phase !== "open") {
      this.#starts.delete(st.key);
      this.#slotQueue = this.#slotQueue.filter((x) => x !== st);
      this.#tokenQueue = this.#tokenQueue.filter((x) => x !== st);
      this.#pump(this.#o.now());
    }
    this.#detach(s);
  }

  #detach(s: Rec): void {
    const e = s.entry;
    if (!e || !e.streams.delete(s)) return;
    this.#hold(s, false);
    s.wantWritable = false;
    s.smux!.close(); // FIN; after the remote's FIN it also frees the smux stream
    if (e.streams.size === 0 && !e.dead) this.#idle(e, this.#o.now());
  }

  #idle(e: Entry, now: number): void {
    e.idleSince = now;
    if (this.#slotQueue.length > 0) this.#pump(now); // a waiting destination can have it now
    else this.#arm(now + this.#o.idleMs);
  }

  // ---- backpressure --------------------------------------------------------------------------

  #writable(s: Rec): boolean {
    if (s.state !== "open") return false;
    const e = s.entry!;
    if (e.session.writable) return true;
    s.wantWritable = true;
    if (e.waitingWritable) return false;
    e.waitingWritable = true; // one waiter per session, however many streams wait
    this.#track(
      e.session.waitWritable().then(() => {
        e.waitingWritable = false;
        if (e.dead || e.session.state === "closed") return;
        for (const w of [...e.streams]) {
          if (!w.wantWritable) continue;
          w.wantWritable = false;
          if (w.state === "open" && !w.silent) w.events.writable();
        }
      }),
    );
    return false;
  }

  /** smux v1 has no per-stream window: one paused stream stops the whole session's acks. */
  #hold(s: Rec, want: boolean): void {
    const e = s.entry;
    if (!e || s.holding === want || (want && !e.streams.has(s))) return;
    s.holding = want;
    e.paused += want ? 1 : -1;
    e.session.channel.setReceiveReady(e.paused === 0);
  }

  // ---- sessions and time ---------------------------------------------------------------------

  /** Out of the pool (ended, idle, evicted or pool closed); terminated if still running. */
  #retire(e: Entry, regrant = true): void {
    if (!e.dead) {
      e.dead = true;
      const list = (this.#entries.get(e.key) ?? []).filter((x) => x !== e);
      if (list.length > 0) this.#entries.set(e.key, list);
      else this.#entries.delete(e.key);
      if (e.session.state !== "closed") this.#track(e.session.terminate());
    }
    // Normally empty: a closing session has already ended its smux streams.
    for (const s of [...e.streams]) this.#onEnd(s, false);
    if (regrant) this.#pump(this.#o.now());
  }

  #arm(at: number): void {
    if (this.#closed || at >= this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#tick(), Math.max(0, at - this.#o.now()));
  }

  #tick(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#o.now();
    for (const s of [...this.#pending]) {
      if (s.state === "grace") {
        // The SYN is out: the open timeout is about getting a session, not about the grace.
        if (now >= s.graceUntil) this.#report(s, "ok");
        else this.#arm(s.graceUntil);
        continue;
      }
      // A start still waiting for a slot gives up after waitMs: every session is busy.
      const slot = s.start?.phase === "slot" ? s.start.slotDeadline : Infinity;
      const limit = Math.min(s.deadline, slot);
      if (now >= limit) this.#report(s, "timeout");
      else this.#arm(limit);
    }
    this.#pump(now);
    for (const e of this.#all()) {
      if (e.streams.size > 0) continue;
      if (now - e.idleSince >= this.#o.idleMs) this.#retire(e);
      else this.#arm(e.idleSince + this.#o.idleMs);
    }
  }

  #note(kind: string, key: string, line: string): void {
    const now = this.#o.now();
    if (this.#logged.live(`${kind} ${key}`, now)) return;
    this.#logged.put(`${kind} ${key}`, now + LOG_REPEAT_MS, now);
    this.#o.log?.(line);
  }

  #track(p: Promise<unknown>): void {
    const q = p.catch(() => {}).finally(() => this.#background.delete(q));
    this.#background.add(q);
  }
}

/** How long to hold "ok" for a refusal that arrives about one session RTT after the SYN. */
function grace(session: PortSession): number {
  // The path's measured round trip (the handshake gives the first sample), not the smoothed
  // RTT, which still carries the protocol's 100 ms starting value right after the handshake.
  const min = session.channel.rtt.minMs;
  if (!Number.isFinite(min)) return 200; // no sample yet
  return Math.min(1.5 * min + 50, 500);
}

/** StartSession refused by IAM, or the agent's DeniedPortForwardingRemoteIPs (§8.4). */
function isDenial(err: unknown): boolean {
  const e = err as { name?: string; message?: string } | undefined;
  return /AccessDenied|access denied|not authorized|forbidden|DeniedPortForwarding/i.test(
    `${e?.name ?? ""} ${e?.message ?? ""}`,
  );
}
