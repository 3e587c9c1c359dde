/**
 * Keeps one stripe of a tunnel alive across sessions (DESIGN §4 "Healing"). PortSession already
 * survives transport loss (ResumeSession + re-dial); this covers the session itself ending
 * (channel_closed, empty resume token, agent gone): open a NEW session to the same target and
 * say HELLO again with the same tunnel id and stripe index, so the agent hands back the same
 * address and the tun, its routes and the connections over it never notice. A session whose end
 * is foreseeable (a known maximum duration) is replaced before it ends: make, then break.
 */
import { ExitCode, UserError } from "../errors.ts";
import type { PortSession } from "../ssm/session.ts";
import { backoffDelays } from "../ssm/backoff.ts";
import { HealTracker, learnMaxDuration, rolloverAt } from "./heal.ts";
import { IdentityRefused } from "./identity.ts";
import { Liveness, type LivenessOptions } from "./liveness.ts";
import { type HandshakeOptions, Stripe, type StripeStats } from "./stripe.ts";
import type { Hello, Welcome } from "./wire.ts";

export interface SupervisorOptions {
  index: number;
  hello: Omit<Hello, "stripe">;
  /** The address the tunnel was given first: every re-join must get it back. */
  address: string;
  agentPort: number;
  /** How each new session's handshake proves the client's identity (identity.ts). */
  handshake?: HandshakeOptions;
  openSession(stripe: number): Promise<PortSession>;
  packets(packets: Uint8Array[]): void;
  /** The stripe gave up for good (or was closed). */
  gone(reason: string): void;
  /**
   * The agent refused this client's identity, on a new session or a live one: no session can
   * help, so the stripe stopped at once. Absent: reported through `gone`.
   */
  refused?(e: IdentityRefused): void;
  /** A session ended saying it hit the maximum duration after `ms`: tell every stripe. */
  learnedMaxDuration(ms: number): void;
  giveUpMs: number;
  maxSessionMs?: number;
  /** Declare a stripe dead when its far end stops answering (absent: keepalive off). */
  liveness?: LivenessOptions;
  log?: (line: string) => void;
  now?: () => number;
}

/** How long an old session may keep delivering after its replacement carries the stripe. */
const DRAIN_MS = 2_000;

export class StripeSupervisor {
  readonly tracker: HealTracker;
  #stripe: Stripe;
  #openedAt: number;
  #closed = false;
  #maxMs?: number;
  #rollTimer?: ReturnType<typeof setTimeout>;
  #rolling = false;
  #downWhileRolling?: { stripe: Stripe; reason: string };
  /** Resolves the current backoff sleep early (recover()). */
  #wake?: () => void;
  #retired: StripeStats = zeroStats();
  #retiredResumes = 0;
  #now: () => number;

  /** A stripe added to a running tunnel: its first session, then supervision as usual. */
  static async open(o: SupervisorOptions): Promise<StripeSupervisor> {
    return new StripeSupervisor(o, await joinStripe(o));
  }

  constructor(private o: SupervisorOptions, first: Stripe) {
    this.#now = o.now ?? Date.now;
    this.tracker = new HealTracker(o.giveUpMs);
    this.#maxMs = o.maxSessionMs;
    this.#stripe = first;
    this.#openedAt = this.#now();
    this.#install(first);
  }

  get stripe(): Stripe {
    return this.#stripe;
  }

  get index(): number {
    return this.o.index;
  }

  /** Up and carrying traffic (its session may be resuming underneath). */
  get up(): boolean {
    return this.tracker.state === "up" && this.#stripe.up;
  }

  /** Resumes (same session) plus re-joins (new sessions). */
  get reconnects(): number {
    return this.#retiredResumes + this.#stripe.session.reconnects + this.tracker.rejoins;
  }

  /** Counters summed over every session this stripe has had. */
  stats(): StripeStats {
    const s = this.#stripe.stats;
    const r = this.#retired;
    return {
      packetsOut: r.packetsOut + s.packetsOut,
      bytesOut: r.bytesOut + s.bytesOut,
      packetsIn: r.packetsIn + s.packetsIn,
      bytesIn: r.bytesIn + s.bytesIn,
      dropsOut: r.dropsOut + s.dropsOut,
      rttMs: s.rttMs,
    };
  }

  /** A maximum session duration became known: schedule the rollover of the current session. */
  setMaxSessionMs(ms: number): void {
    if (this.#maxMs !== undefined && this.#maxMs <= ms) return;
    this.#maxMs = ms;
    this.#schedule();
  }

  /** Something suggests the path is dead (the machine slept): check at once, retry at once. */
  recover(reason: string): void {
    if (this.#closed) return;
    if (this.tracker.state === "healing") this.#wake?.();
    else this.#stripe.session.checkNow(reason);
  }

  /**
   * The far end stopped answering (liveness.ts) though the session looks fine: drop this
   * session and heal on a new one, as if it had ended.
   */
  dead(reason: string): void {
    if (this.#closed || this.tracker.state !== "up") return;
    const s = this.#stripe;
    s.close();
    this.#down(s, reason);
  }

  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#rollTimer);
    this.#wake?.();
    this.#stripe.close();
    return this.#stripe.session.terminate().catch(() => {});
  }

  // ---- plumbing -----------------------------------------------------------------------------

  #install(s: Stripe): void {
    this.#stripe = s;
    if (this.o.liveness) s.liveness = new Liveness(this.o.liveness);
    const opened = this.#openedAt = this.#now();
    // The session's own end says why (the stream often closes first, with a vaguer reason).
    s.session.ended.then((e) => {
      const max = learnMaxDuration(e.message, this.#now() - opened);
      if (max !== undefined && !this.#closed) this.o.learnedMaxDuration(max);
    });
    s.attach({
      packets: (p) => this.o.packets(p),
      down: (reason, fatal) => this.#down(s, reason, fatal),
    });
    this.#schedule();
  }

  #schedule(): void {
    clearTimeout(this.#rollTimer);
    const at = rolloverAt(this.#openedAt, this.#maxMs);
    if (at === undefined || this.#closed) return;
    this.#rollTimer = setTimeout(() => this.#rollover(), Math.max(0, at - this.#now()));
  }

  #down(s: Stripe, reason: string, fatal = false): void {
    // A replaced stripe going away is expected; one that gave up stays down.
    if (this.#closed || s !== this.#stripe || this.tracker.state === "down") return;
    if (s.failure instanceof IdentityRefused) return this.#refuse(s.failure);
    if (fatal) {
      this.tracker.lost(this.#now(), reason);
      this.tracker.giveUp(this.#now());
      this.o.gone(reason);
      return;
    }
    // The agent drops the old connection as soon as the replacement says HELLO, which can beat
    // the WELCOME here: settle it when the rollover does.
    if (this.#rolling) {
      this.#downWhileRolling = { stripe: s, reason };
      return;
    }
    if (!this.tracker.lost(this.#now(), reason)) return;
    this.#log(`stripe ${this.o.index} down (${reason}); opening a new session`);
    this.#heal();
  }

  async #heal(): Promise<void> {
    let lastLogged = "";
    for (const delay of backoffDelays()) {
      if (this.#closed) return;
      if (this.tracker.shouldGiveUp(this.#now())) break;
      await new Promise<void>((r) => {
        const t = setTimeout(r, delay);
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.#wake = undefined;
      if (this.#closed) return;
      try {
        const s = await this.#join();
        if (this.#closed) {
          s.close();
          await s.session.terminate().catch(() => {});
          return;
        }
        this.#retire(this.#stripe);
        this.tracker.rejoined(this.#now());
        this.#install(s);
        this.#log(`stripe ${this.o.index} back up on session ${s.session.sessionId}`);
        return;
      } catch (e) {
        const msg = (e as Error).message;
        // The agent's policy no longer lets this identity in: no new session changes that.
        if (e instanceof IdentityRefused) return this.#refuse(e);
        this.tracker.failed(msg);
        // The agent will not hand the old address back to this tunnel id: retrying cannot help.
        if (e instanceof AddressChanged) break;
        // One line per distinct problem (expired credentials, say), not one per attempt.
        if (msg !== lastLogged) this.#log(`stripe ${this.o.index}: new session failed: ${msg}`);
        lastLogged = msg;
      }
    }
    if (this.#closed) return;
    this.tracker.giveUp(this.#now());
    this.o.gone(`stripe ${this.o.index} gave up healing: ${this.tracker.lastError}`);
  }

  /** Make before break: the replacement says HELLO (the agent moves the stripe to it), then the old session ends. */
  async #rollover(): Promise<void> {
    if (this.#closed || this.#rolling || this.tracker.state !== "up") return;
    this.#rolling = true;
    try {
      const s = await this.#join();
      const old = this.#stripe;
      if (this.#closed || old !== this.#stripe || this.tracker.state !== "up") {
        s.close();
        await s.session.terminate().catch(() => {});
        return;
      }
      this.#retire(old);
      this.tracker.rolledOver();
      this.#install(s);
      this.#log(`stripe ${this.o.index} rolled over to session ${s.session.sessionId}`);
      setTimeout(() => {
        old.close();
        old.session.terminate().catch(() => {});
      }, DRAIN_MS);
    } catch (e) {
      if (e instanceof IdentityRefused) return this.#refuse(e);
      this.tracker.failed((e as Error).message);
      this.#log(`stripe ${this.o.index}: rollover failed: ${(e as Error).message}`);
      // Try again soon; if the old session ends first, healing takes over.
      if (!this.#closed) this.#rollTimer = setTimeout(() => this.#rollover(), 5_000);
    } finally {
      this.#rolling = false;
      const missed = this.#downWhileRolling;
      this.#downWhileRolling = undefined;
      // A no-op when the rollover installed the replacement (the stripe is no longer current).
      if (missed) this.#down(missed.stripe, missed.reason);
    }
  }

  #join(): Promise<Stripe> {
    return joinStripe(this.o);
  }

  /** Stop for good: the agent refuses this identity, and would on every new session too. */
  #refuse(e: IdentityRefused): void {
    if (this.#closed) return;
    const now = this.#now();
    this.tracker.lost(now, e.message);
    this.tracker.giveUp(now);
    clearTimeout(this.#rollTimer);
    if (this.o.refused) this.o.refused(e);
    else this.o.gone(e.message);
  }

  #retire(s: Stripe): void {
    const r = this.#retired;
    r.packetsOut += s.stats.packetsOut;
    r.bytesOut += s.stats.bytesOut;
    r.packetsIn += s.stats.packetsIn;
    r.bytesIn += s.stats.bytesIn;
    r.dropsOut += s.stats.dropsOut;
    this.#retiredResumes += s.session.reconnects;
    s.stats.packetsOut =
      s.stats.bytesOut =
      s.stats.packetsIn =
      s.stats.bytesIn =
        0;
    s.stats.dropsOut = 0;
    // Its session is over or about to be; terminate it on AWS too (a no-op when already ended).
    if (this.tracker.state !== "up") s.session.terminate().catch(() => {});
  }

  #log(line: string): void {
    this.o.log?.(line);
  }
}

/** A new session and a HELLO on it; must get the tunnel's address back. */
async function joinStripe(o: SupervisorOptions): Promise<Stripe> {
  const session = await o.openSession(o.index);
  const s = new Stripe(o.index, session, o.agentPort);
  let w: Welcome;
  try {
    w = await s.handshake(o.hello, o.handshake);
    if (w.address !== o.address) {
      throw new AddressChanged(
        `the agent gave stripe ${o.index} address ${w.address}, not ${o.address}: it lost the tunnel's lease (restarted without stateDir?); start the tunnel again`,
      );
    }
  } catch (e) {
    s.close();
    await session.terminate().catch(() => {});
    throw e;
  }
  return s;
}

class AddressChanged extends UserError {
  constructor(message: string) {
    super(message, ExitCode.Remote);
  }
}

function zeroStats(): StripeStats {
  return { packetsOut: 0, bytesOut: 0, packetsIn: 0, bytesIn: 0, dropsOut: 0, rttMs: 0 };
}
