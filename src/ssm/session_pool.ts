/**
 * The Port sessions of one `forward`: opens, watches and closes them as forward_pool.ts decides,
 * and says which one a new connection goes on. Each session heals on its own (channel_session
 * .ts); one that is lost for good takes only its own connections with it, except the first: the
 * forward lives as long as its first session, as it did with one.
 */
import { Lane } from "./forwarder.ts";
import { placeConnection, type PoolOptions, PoolPlanner } from "./forward_pool.ts";
import type { PortSession, SessionEnd } from "./session.ts";

export interface SessionPoolOptions {
  /** Start a session and complete its handshake; `log` is that session's own log. */
  open(log: (line: string) => void): Promise<PortSession>;
  policy: PoolOptions;
  log(line: string): void;
  /** How often the load is sampled. */
  tickMs?: number;
  /** After a session failed to open, this long before trying another. */
  retryAfterMs?: number;
}

export class SessionPool {
  #lanes: Lane[] = [];
  #next = 1;
  #opening = new Set<Promise<void>>();
  #planner: PoolPlanner;
  #timer?: ReturnType<typeof setInterval>;
  #closing = false;
  #growBlockedUntil = 0;
  readonly stats = { added: 0, retired: 0, lost: 0 };

  private constructor(readonly o: SessionPoolOptions, readonly first: PortSession) {
    this.#planner = new PoolPlanner(o.policy);
  }

  /**
   * Open the first session (with a fixed count, all of them at once) and start sampling.
   * Fails if the first session fails; extras that fail are retried later.
   */
  static async open(o: SessionPoolOptions): Promise<SessionPool> {
    const count = o.policy.auto ? 1 : o.policy.max;
    const opens = Array.from({ length: count }, (_, i) => o.open(laneLog(o.log, i + 1)));
    const [first, ...extras] = await Promise.allSettled(opens);
    if (first.status === "rejected") {
      await Promise.all(
        extras.map((r) => r.status === "fulfilled" ? r.value.terminate() : undefined),
      );
      throw first.reason;
    }
    const pool = new SessionPool(o, first.value);
    pool.#next = count + 1;
    pool.#add(first.value, 1);
    extras.forEach((r, i) => {
      if (r.status === "fulfilled") pool.#add(r.value, i + 2);
      else pool.#openFailed(r.reason);
    });
    pool.#timer = setInterval(() => pool.#tick(), o.tickMs ?? 500);
    return pool;
  }

  /** Resolves when the first session is over: then the forward is. */
  get ended(): Promise<SessionEnd> {
    return this.first.ended;
  }

  get lanes(): readonly Lane[] {
    return this.#lanes;
  }

  get sessions(): PortSession[] {
    return this.#lanes.map((l) => l.session);
  }

  /** The session a new connection goes on (and stays on). */
  pick = (): Lane => {
    const now = Date.now();
    const loads = this.#lanes.map((lane) => ({
      lane,
      index: lane.index,
      up: lane.session.state === "up",
      connections: lane.connections,
      busyConnections: lane.busyConnections(now),
    }));
    // The first session stays in the list until the forward ends, so there is always one.
    return (placeConnection(loads)?.lane) ?? this.#lanes[0];
  };

  /** End every session (Flag TerminateSession, then by API), including ones being opened. */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#timer);
    await Promise.all([
      ...this.#lanes.map((l) => l.session.terminate()),
      ...this.#opening,
    ]);
  }

  #add(session: PortSession, index: number): Lane {
    const lane = new Lane(session, index);
    this.#lanes.push(lane);
    session.ended.then((end) => this.#ended(lane, end));
    return lane;
  }

  #ended(lane: Lane, end: SessionEnd): void {
    if (this.#closing || lane.session === this.first) return;
    const i = this.#lanes.indexOf(lane);
    if (i < 0) return; // retired
    this.#lanes.splice(i, 1);
    this.stats.lost++;
    const n = lane.cutOff;
    this.o.log(
      `session ${lane.index} lost (${end.message})${
        n ? `; its ${n} connection${n === 1 ? " was" : "s were"} closed` : ""
      }`,
    );
  }

  #tick(): void {
    if (this.#closing) return;
    const now = Date.now();
    const d = this.#planner.decide({
      now,
      opening: this.#opening.size,
      lanes: this.#lanes.map((l) => ({
        index: l.index,
        up: l.session.state === "up",
        bytesIn: l.session.channel.stats.bytesIn,
        blocked: l.takeBlocked(),
        connections: l.connections,
        busyConnections: l.busyConnections(now),
      })),
    });
    if (d?.kind === "grow" && now >= this.#growBlockedUntil) this.#grow(d.reason);
    else if (d?.kind === "retire") this.#retire(d.index, d.reason);
  }

  #grow(reason: string): void {
    const index = this.#next++;
    const p = this.o.open(laneLog(this.o.log, index)).then(
      async (s) => {
        if (this.#closing) return void await s.terminate();
        this.#add(s, index);
        this.stats.added++;
        this.o.log(`session ${index} added (${s.sessionId}): ${reason}`);
      },
      (e) => this.#openFailed(e),
    );
    this.#opening.add(p);
    p.finally(() => this.#opening.delete(p));
  }

  #openFailed(e: unknown): void {
    this.#growBlockedUntil = Date.now() + (this.o.retryAfterMs ?? 30_000);
    if (!this.#closing) {
      this.o.log(`could not open another session: ${(e as Error).message}`);
    }
  }

  #retire(index: number, reason: string): void {
    const i = this.#lanes.findIndex((l) => l.index === index);
    if (i < 0) return;
    const [lane] = this.#lanes.splice(i, 1);
    this.stats.retired++;
    this.o.log(`session ${index} closed (${lane.session.sessionId}): ${reason}`);
    lane.session.terminate().catch(() => {});
  }
}

/** Lines from the first session as they always were; from others, marked with their number. */
function laneLog(log: (line: string) => void, index: number): (line: string) => void {
  return index === 1 ? log : (line) => log(`session ${index}: ${line}`);
}
