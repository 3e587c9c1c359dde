/**
 * Fault injection between a client's data-channel WebSocket and the emulated agent, in both
 * directions. Used programmatically (tests) and through MGS's `POST /_emulator/faults`:
 *
 *   {"action":"dropWebSocket","sessionId"?:string}            abrupt close, no close handshake
 *   {"action":"stall","ms":number,"sessionId"?:string}         hold every frame both ways for ms
 *   {"action":"duplicate","probability":number}               deliver a frame twice
 *   {"action":"reorder","probability":number}                 swap a frame with the next one
 *   {"action":"delay","ms":number}                            delay every frame, order kept
 *   {"action":"pausePublication","ms":number,"sessionId"?:string}
 *   {"action":"channelClosed","sessionId"?:string,"output"?:string}
 *   {"action":"idleTimeout","ms":number|null}                 null disables
 *   {"action":"maxSessionDuration","ms":number|null}          null disables
 *   {"action":"corruptInput","afterBytes":number,"sessionId"?:string}
 *       shell sessions only: after the agent has accepted (acked) the input, replace the first
 *       ASCII letter/digit at input-stream offset ≥ afterBytes with another letter/digit (base64
 *       stays base64 but decodes differently); once. Without sessionId it arms the NEXT shell
 *       session to start; with one, that session (now, or when its data channel first opens).
 *       "corrupt_input" is accepted as the same action.
 *   {"action":"seed","seed":number}                           restart the PRNG
 *   {"action":"reset"}                                         everything off, PRNG reseeded
 *   {"action":"state"}                                         no change; returns the state
 *
 * Reply: 200 `{"ok":true,"sessions":[ids affected],"state":{...}}`, or 400 `{"ok":false,"error"}`.
 * Omitting sessionId means every session with a client attached (corruptInput: see above).
 * Probabilities use a seeded PRNG (mulberry32) so a test run is reproducible.
 */
import { CorruptionPlan } from "./agent/corrupt.ts";

export interface FaultHooks {
  /** Each returns the ids of the sessions it acted on. */
  dropWebSocket(sessionId?: string): string[];
  pausePublication(ms: number, sessionId?: string): string[];
  channelClosed(sessionId?: string, output?: string): string[];
  /** Arms corruptInput on running shell sessions (all, or the one with this id). */
  corruptInput(afterBytes: number, sessionId?: string): string[];
  /** Sessions a stall would hit (stalls are applied by the links themselves). */
  sessions(sessionId?: string): string[];
}

export interface FaultState {
  duplicate: number;
  reorder: number;
  delayMs: number;
  idleTimeoutMs: number | null;
  maxSessionDurationMs: number | null;
  /** Session id (or "*") → epoch ms until which its traffic is held. */
  stalls: Record<string, number>;
  /** corruptInput armed for sessions not started yet: the next shell session, and by id. */
  corruptInput: { next: number | null; sessions: Record<string, number> };
  seed: number;
}

export class FaultError extends Error {
  override name = "FaultError";
}

/** How long a frame held back for a swap waits for a successor before going out alone. */
const REORDER_WAIT_MS = 20;

export class FaultController {
  #hooks?: FaultHooks;
  #seed: number;
  #rng: () => number;
  #dup = 0;
  #reorder = 0;
  #delay = 0;
  #idle: number | null;
  #maxDuration: number | null;
  #idleSetAt = Date.now();
  #stalls = new Map<string, number>();
  #links = new Set<FaultLink>();
  #corrupt = new CorruptionPlan();

  constructor(
    seed = 1,
    private defaults: { idleTimeoutMs?: number; maxSessionDurationMs?: number } = {},
  ) {
    this.#seed = seed;
    this.#rng = mulberry32(seed);
    this.#idle = defaults.idleTimeoutMs ?? null;
    this.#maxDuration = defaults.maxSessionDurationMs ?? null;
  }

  /** MGS binds itself here; the actions that need sockets go through it. */
  bind(hooks: FaultHooks): void {
    this.#hooks = hooks;
  }

  dropWebSocket(sessionId?: string): string[] {
    return this.#h().dropWebSocket(sessionId);
  }

  /** Stop all traffic of a session (or all) without closing; frames are held, then delivered. */
  stall(ms: number, sessionId?: string): string[] {
    checkMs(ms);
    this.#stalls.set(sessionId ?? "*", Date.now() + ms);
    for (const l of this.#links) l.wake();
    return this.#h().sessions(sessionId);
  }

  duplicate(probability: number): void {
    this.#dup = checkProbability(probability);
  }

  reorder(probability: number): void {
    this.#reorder = checkProbability(probability);
  }

  delay(ms: number): void {
    this.#delay = checkMs(ms);
  }

  pausePublication(ms: number, sessionId?: string): string[] {
    return this.#h().pausePublication(checkMs(ms), sessionId);
  }

  channelClosed(sessionId?: string, output?: string): string[] {
    return this.#h().channelClosed(sessionId, output);
  }

  /**
   * Corrupt one byte of a shell session's input after the agent accepted it (see the header).
   * Returns the running sessions it armed; otherwise it waits for the session to start.
   */
  corruptInput(afterBytes: number, sessionId?: string): string[] {
    if (!(Number.isInteger(afterBytes) && afterBytes >= 0)) {
      throw new FaultError(`afterBytes must be a non-negative integer, got ${afterBytes}`);
    }
    const hit = sessionId === undefined ? [] : this.#h().corruptInput(afterBytes, sessionId);
    if (hit.length === 0) this.#corrupt.arm(afterBytes, sessionId);
    return hit;
  }

  /** MGS, starting a shell session: the corruptInput armed for it, consumed. */
  claimInputCorruption(sessionId: string): number | undefined {
    return this.#corrupt.claim(sessionId);
  }

  /** Sessions end after `ms` with no stream data either way; acks do not count. */
  idleTimeout(ms: number | null): void {
    this.#idle = ms === null ? null : checkMs(ms);
    this.#idleSetAt = Date.now();
  }

  maxSessionDuration(ms: number | null): void {
    this.#maxDuration = ms === null ? null : checkMs(ms);
  }

  seed(seed: number): void {
    if (!Number.isInteger(seed)) throw new FaultError("seed must be an integer");
    this.#seed = seed;
    this.#rng = mulberry32(seed);
  }

  reset(): void {
    this.#dup = this.#reorder = this.#delay = 0;
    this.#idle = this.defaults.idleTimeoutMs ?? null;
    this.#maxDuration = this.defaults.maxSessionDurationMs ?? null;
    this.#stalls.clear();
    this.#corrupt.clear();
    this.#rng = mulberry32(this.#seed);
    for (const l of this.#links) l.wake();
  }

  state(): FaultState {
    return {
      duplicate: this.#dup,
      reorder: this.#reorder,
      delayMs: this.#delay,
      idleTimeoutMs: this.#idle,
      maxSessionDurationMs: this.#maxDuration,
      stalls: Object.fromEntries(this.#stalls),
      corruptInput: this.#corrupt.state(),
      seed: this.#seed,
    };
  }

  /** The JSON control surface; throws FaultError on anything it does not understand. */
  control(body: unknown): { ok: true; sessions: string[]; state: FaultState } {
    if (body === null || typeof body !== "object") {
      throw new FaultError("body must be a JSON object");
    }
    const b = body as Record<string, unknown>;
    const sid = optString(b.sessionId, "sessionId");
    let sessions: string[] = [];
    switch (b.action) {
      case "dropWebSocket":
        sessions = this.dropWebSocket(sid);
        break;
      case "stall":
        sessions = this.stall(num(b.ms, "ms"), sid);
        break;
      case "duplicate":
        this.duplicate(num(b.probability, "probability"));
        break;
      case "reorder":
        this.reorder(num(b.probability, "probability"));
        break;
      case "delay":
        this.delay(num(b.ms, "ms"));
        break;
      case "pausePublication":
        sessions = this.pausePublication(num(b.ms, "ms"), sid);
        break;
      case "channelClosed":
        sessions = this.channelClosed(sid, optString(b.output, "output"));
        break;
      case "idleTimeout":
        this.idleTimeout(b.ms === null ? null : num(b.ms, "ms"));
        break;
      case "maxSessionDuration":
        this.maxSessionDuration(b.ms === null ? null : num(b.ms, "ms"));
        break;
      case "corruptInput":
      case "corrupt_input":
        sessions = this.corruptInput(num(b.afterBytes, "afterBytes"), sid);
        break;
      case "seed":
        this.seed(num(b.seed, "seed"));
        break;
      case "reset":
        this.reset();
        break;
      case "state":
        break;
      default:
        throw new FaultError(`unknown action ${JSON.stringify(b.action)}`);
    }
    return { ok: true, sessions, state: this.state() };
  }

  // ---- used by MGS and the links --------------------------------------------------------------

  get idleTimeoutMs(): number | null {
    return this.#idle;
  }
  /** The idle clock never counts from before the timeout was set. */
  get idleTimeoutSetAt(): number {
    return this.#idleSetAt;
  }
  get maxSessionDurationMs(): number | null {
    return this.#maxDuration;
  }
  get delayMs(): number {
    return this.#delay;
  }

  /** One direction of one client socket. */
  link(sessionId: string, deliver: (frame: Uint8Array) => void): FaultLink {
    const l = new FaultLink(this, sessionId, deliver, () => this.#links.delete(l));
    this.#links.add(l);
    return l;
  }

  stalledUntil(sessionId: string): number {
    return Math.max(this.#stalls.get(sessionId) ?? 0, this.#stalls.get("*") ?? 0);
  }

  passThrough(sessionId: string, now: number): boolean {
    return this.#delay === 0 && this.#dup === 0 && this.#reorder === 0 &&
      this.stalledUntil(sessionId) <= now;
  }

  rollDuplicate(): boolean {
    return this.#dup > 0 && this.#rng() < this.#dup;
  }
  rollReorder(): boolean {
    return this.#reorder > 0 && this.#rng() < this.#reorder;
  }

  #h(): FaultHooks {
    if (!this.#hooks) throw new FaultError("fault controller is not bound to an MGS");
    return this.#hooks;
  }
}

/**
 * A FIFO with a clock: frames wait out the delay and any stall, in order; then an optional swap
 * with the next frame and an optional duplicate. With no fault active a frame goes straight
 * through, synchronously, so the fast path costs nothing.
 */
export class FaultLink {
  #queue: { frame: Uint8Array; at: number }[] = [];
  #held?: Uint8Array;
  #heldTimer?: ReturnType<typeof setTimeout>;
  #timer?: ReturnType<typeof setTimeout>;
  #closed = false;
  #drainWaiters: (() => void)[] = [];

  constructor(
    private ctl: FaultController,
    readonly sessionId: string,
    private deliver: (frame: Uint8Array) => void,
    private onClose: () => void,
  ) {}

  push(frame: Uint8Array): void {
    if (this.#closed) return;
    const now = Date.now();
    if (this.#queue.length === 0 && !this.#held && this.ctl.passThrough(this.sessionId, now)) {
      this.deliver(frame);
      return;
    }
    this.#queue.push({ frame, at: now + this.ctl.delayMs });
    this.#pump();
  }

  /** Resolves once every frame pushed so far has been delivered (or the link closed). */
  drained(): Promise<void> {
    if (this.#closed || (this.#queue.length === 0 && !this.#held)) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** The controller changed a stall; re-evaluate now. */
  wake(): void {
    if (!this.#closed && this.#queue.length > 0) this.#pump();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#heldTimer);
    this.#queue = [];
    this.#held = undefined;
    this.onClose();
    this.#notifyDrained();
  }

  #pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = Date.now();
    const stallEnd = this.ctl.stalledUntil(this.sessionId);
    if (stallEnd > now) {
      this.#timer = setTimeout(() => this.#pump(), stallEnd - now);
      return;
    }
    while (this.#queue.length > 0 && !this.#closed) {
      const head = this.#queue[0];
      if (head.at > now) {
        this.#timer = setTimeout(() => this.#pump(), head.at - now);
        return;
      }
      this.#queue.shift();
      this.#emit(head.frame);
    }
    this.#notifyDrained();
  }

  #emit(frame: Uint8Array): void {
    const held = this.#held;
    if (held) {
      this.#held = undefined;
      clearTimeout(this.#heldTimer);
      this.#out(frame);
      this.#out(held);
      return;
    }
    if (this.ctl.rollReorder()) {
      this.#held = frame;
      this.#heldTimer = setTimeout(() => {
        const h = this.#held;
        this.#held = undefined;
        if (h && !this.#closed) this.#out(h);
        this.#notifyDrained();
      }, REORDER_WAIT_MS);
      return;
    }
    this.#out(frame);
  }

  #out(frame: Uint8Array): void {
    this.deliver(frame);
    if (!this.#closed && this.ctl.rollDuplicate()) this.deliver(frame);
  }

  #notifyDrained(): void {
    if (!this.#closed && (this.#queue.length > 0 || this.#held)) return;
    const w = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const f of w) f();
  }
}

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkProbability(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new FaultError(`probability must be within 0..1, got ${p}`);
  return p;
}

function checkMs(ms: number): number {
  if (!(Number.isFinite(ms) && ms >= 0)) {
    throw new FaultError(`ms must be a non-negative number, got ${ms}`);
  }
  return ms;
}

function num(v: unknown, name: string): number {
  if (typeof v !== "number") throw new FaultError(`${name} must be a number`);
  return v;
}

function optString(v: unknown, name: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new FaultError(`${name} must be a string`);
  return v;
}
