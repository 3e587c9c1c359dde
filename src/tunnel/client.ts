/**
 * The client side of a tunnel: stripes (Port sessions to the agent daemon) joined by one tunnel
 * id, and the pump between them and the Tun. Each new flow goes on the least-loaded live stripe
 * and stays there (flows.ts), so it stays in order; the agent answers it on the stripe it heard
 * it on. A stripe whose far end stops answering is declared dead (liveness.ts) and its flows
 * move while its supervisor brings it back on a new session (supervisor.ts). With `auto`, the
 * number of stripes follows the load (striping.ts).
 */
import type { Tun } from "../net/types.ts";
import type { PortSession } from "../ssm/session.ts";
import { FlowTable } from "./flows.ts";
import type { HealState } from "./heal.ts";
import { livenessFor, type LivenessOptions } from "./liveness.ts";
import { flowHash, ipVersion } from "./packet.ts";
import { Stripe } from "./stripe.ts";
import { backedUp, StripePlanner, type StripeSample } from "./striping.ts";
import { StripeSupervisor, type SupervisorOptions } from "./supervisor.ts";
import { newHello, openStripes } from "./connect.ts";
import type { Hello, Welcome } from "./wire.ts";

export interface TunnelOptions {
  /** Open the Port session for stripe i (StartSession to the agent port). */
  openSession(stripe: number): Promise<PortSession>;
  /** A fixed number of stripes, or `auto`: start with one and follow the load. */
  stripes: number | "auto";
  /** With `auto`: the most stripes to open (default 8). */
  maxStripes?: number;
  agentPort: number;
  mtu: number;
  /** Stripe PING interval (0: off): RTT, liveness, and traffic that keeps the idle timeout away. */
  pingMs?: number;
  /** When a silent stripe is dead (default from pingMs, liveness.ts; tests shorten it). */
  liveness?: LivenessOptions;
  /** `auto`: backlog that must last before growing, idle time before retiring (striping.ts). */
  growAfterMs?: number;
  retireIdleMs?: number;
  /** Stop healing a stripe after this long (default 10 min); the tunnel ends when all have. */
  giveUpMs?: number;
  /** A known maximum session duration: sessions are replaced ahead of it. */
  maxSessionMs?: number;
  log?: (line: string) => void;
}

export interface TunnelStats {
  packetsOut: number;
  bytesOut: number;
  packetsIn: number;
  bytesIn: number;
  dropsOut: number;
  dropsIn: number;
  stripesUp: number;
  rttMs: number;
  reconnects: number;
  /** Stripes open (up or healing), the most allowed, whether `auto` sizes them. */
  stripesOpen?: number;
  stripesMax?: number;
  stripesAuto?: boolean;
  /** The last change of the stripe set and why ("2 -> 4 stripes: ..."). */
  stripesReason?: string;
  /** Flows moved off a backed-up stripe to an idle one. */
  flowMoves?: number;
  /** Bytes received on each open stripe, by stripe index: how evenly flows were placed. */
  stripeBytesIn?: Record<number, number>;
}

/** How the tunnel is doing, for status and the live line. */
export interface TunnelHealth {
  state: HealState;
  /** Resumes plus new sessions, over all stripes. */
  reconnects: number;
  /** Total stripe-time spent healing, ms. */
  healingMs: number;
  lastError?: string;
  /** Current session ids, one per stripe. */
  sessions: string[];
  /** The maximum session duration in force (configured or learned), ms. */
  maxSessionMs?: number;
}

const DEFAULT_GIVE_UP_MS = 10 * 60_000;
const DEFAULT_MAX_STRIPES = 8;
/** How often stripes are checked: liveness, backlog, rebalancing, auto sizing. */
const TICK_MS = 500;
/** After a stripe could not be added, wait this long before trying again. */
const GROW_RETRY_MS = 30_000;

export class Tunnel {
  readonly tunnelId: string;
  /** Stripe index → its supervisor; indexes come and go with `auto`. */
  #sups = new Map<number, StripeSupervisor>();
  #opening = new Set<number>();
  #closed = false;
  #pinger?: ReturnType<typeof setInterval>;
  #ticker?: ReturnType<typeof setInterval>;
  #dropsIn = 0;
  #ended = Promise.withResolvers<string>();
  #onPackets: (pkts: Uint8Array[]) => void = () => {};
  #maxMs?: number;
  #flows = new FlowTable();
  #planner: StripePlanner;
  #max: number;
  #auto: boolean;
  #reason?: string;
  #moves = 0;
  #noGrowUntil = 0;
  #lastDrops = new WeakMap<Stripe, number>();
  #liveness?: LivenessOptions;

  private constructor(
    private o: TunnelOptions,
    readonly welcome: Welcome,
    stripes: Stripe[],
    private hello: Omit<Hello, "stripe">,
  ) {
    this.tunnelId = hello.tunnelId;
    this.#maxMs = o.maxSessionMs;
    this.#auto = o.stripes === "auto";
    this.#max = hello.stripes;
    this.#liveness = o.liveness ?? livenessFor(o.pingMs ?? 10_000);
    this.#planner = new StripePlanner({
      auto: this.#auto,
      max: this.#max,
      growAfterMs: o.growAfterMs,
      retireIdleMs: o.retireIdleMs,
    });
    for (const s of stripes) {
      this.#sups.set(s.index, new StripeSupervisor(this.#supOptions(s.index), s));
    }
  }

  /** Open the first stripes and complete the hello; all stripes must get the same address. */
  static async connect(o: TunnelOptions): Promise<Tunnel> {
    const auto = o.stripes === "auto";
    const initial = auto ? 1 : o.stripes as number;
    // The most there may be: agents check every HELLO of a tunnel says the same count.
    const hello = newHello(auto ? o.maxStripes ?? DEFAULT_MAX_STRIPES : initial, o.mtu);
    const { welcome, stripes } = await openStripes(o, hello, initial);
    return new Tunnel(o, welcome, stripes, hello);
  }

  /**
   * Resolves with the reason once the tunnel is over: close(), or every stripe gave up healing.
   * A stripe that is healing does not end it.
   */
  get ended(): Promise<string> {
    return this.#ended.promise;
  }

  /** The current stripe of each index, by index (they are replaced as sessions come and go). */
  get stripes(): readonly Stripe[] {
    return this.#ordered().map((s) => s.stripe);
  }

  /** Which stripe carries the flow of packet `p` (tests, diagnostics). */
  stripeOf(p: Uint8Array): number | undefined {
    return this.#flows.stripeOf(flowHash(p));
  }

  /** Pump packets between `tun` and the stripes until close(). */
  async run(tun: Tun): Promise<void> {
    this.#onPackets = (pkts) => {
      for (const p of pkts) if (!tun.write(p)) this.#dropsIn++;
    };
    const pingMs = this.o.pingMs ?? 10_000;
    if (pingMs > 0) {
      this.#pinger = setInterval(() => {
        for (const s of this.#sups.values()) s.stripe.ping();
      }, pingMs);
    }
    for (const s of this.#sups.values()) s.stripe.ping();
    this.#ticker = setInterval(() => this.#tick(), TICK_MS);
    const batches = new Map<number, Uint8Array[]>();
    while (!this.#closed) {
      const packets = await tun.read(250);
      if (this.#closed) break;
      if (packets.length === 0) continue;
      const live = this.#live();
      // Nothing up: drop, like a link that is down; the senders retransmit once healed.
      if (live.length === 0) continue;
      const now = performance.now();
      batches.clear();
      for (const p of packets) {
        if (ipVersion(p) !== 4) continue; // the agent routes IPv4; skip the kernel's IPv6 chatter
        // Even with one stripe: flows must stay where they are when more stripes come.
        const i = this.#flows.place(flowHash(p), live, now)!;
        let b = batches.get(i);
        if (!b) batches.set(i, b = []);
        b.push(p);
      }
      for (const [i, b] of batches) this.#sups.get(i)?.stripe.send(b);
    }
  }

  stats(): TunnelStats {
    const t: TunnelStats = {
      packetsOut: 0,
      bytesOut: 0,
      packetsIn: 0,
      bytesIn: 0,
      dropsOut: 0,
      dropsIn: this.#dropsIn,
      stripesUp: 0,
      rttMs: 0,
      reconnects: 0,
    };
    for (const s of this.#sups.values()) {
      const st = s.stats();
      t.packetsOut += st.packetsOut;
      t.bytesOut += st.bytesOut;
      t.packetsIn += st.packetsIn;
      t.bytesIn += st.bytesIn;
      t.dropsOut += st.dropsOut;
      t.reconnects += s.reconnects;
      if (s.up) t.stripesUp++;
      t.rttMs = Math.max(t.rttMs, st.rttMs);
    }
    t.stripesOpen = this.#sups.size;
    t.stripesMax = this.#max;
    t.stripesAuto = this.#auto;
    if (this.#reason) t.stripesReason = this.#reason;
    t.flowMoves = this.#moves;
    t.stripeBytesIn = Object.fromEntries(
      [...this.#sups].map(([i, s]) => [i, s.stats().bytesIn]),
    );
    return t;
  }

  health(now = Date.now()): TunnelHealth {
    let healing = false;
    let up = false;
    let healingMs = 0;
    let reconnects = 0;
    let lastError: string | undefined;
    for (const s of this.#sups.values()) {
      const tr = s.tracker;
      const resuming = s.stripe.session.state === "healing";
      if (tr.state === "healing" || (tr.state === "up" && resuming)) healing = true;
      else if (tr.state === "up" && s.up) up = true;
      healingMs += tr.healingMs(now);
      reconnects += s.reconnects;
      const err = tr.lastError || s.stripe.session.lastError;
      if (err) lastError = err;
    }
    return {
      state: healing ? "healing" : up ? "up" : "down",
      reconnects,
      healingMs,
      ...(lastError ? { lastError } : {}),
      sessions: this.#ordered().map((s) => s.stripe.session.sessionId),
      ...(this.#maxMs !== undefined ? { maxSessionMs: this.#maxMs } : {}),
    };
  }

  /** The machine slept or the network changed: probe every stripe now rather than later. */
  recover(reason: string): void {
    this.o.log?.(`${reason}; checking every session now`);
    for (const s of this.#sups.values()) s.recover(reason);
  }

  /** Stop pumping and end every session on AWS. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#pinger);
    clearInterval(this.#ticker);
    await Promise.all([...this.#sups.values()].map((s) => s.close()));
    this.#ended.resolve("closed");
  }

  #gone(reason: string): void {
    this.o.log?.(reason);
    if ([...this.#sups.values()].every((s) => s.tracker.state === "down")) {
      this.#ended.resolve(reason);
    }
  }

  #learned(ms: number): void {
    if (this.#maxMs !== undefined && this.#maxMs <= ms) return;
    this.#maxMs = ms;
    this.o.log?.(
      `learned the maximum session duration: ${
        Math.round(ms / 1000)
      } s; sessions will be replaced ahead of it`,
    );
    for (const s of this.#sups.values()) s.setMaxSessionMs(ms);
  }

  #ordered(): StripeSupervisor[] {
    return [...this.#sups.values()].sort((a, b) => a.index - b.index);
  }

  /** Sorted indexes of stripes that carry traffic now (up, session not resuming). */
  #live(): number[] {
    const live: number[] = [];
    for (const [i, s] of this.#sups) if (s.up && s.stripe.session.state === "up") live.push(i);
    return live.sort((a, b) => a - b);
  }

  #supOptions(index: number): SupervisorOptions {
    const o = this.o;
    return {
      index,
      hello: this.hello,
      address: this.welcome.address,
      agentPort: o.agentPort,
      openSession: o.openSession,
      packets: (p) => this.#onPackets(p),
      gone: (reason) => this.#gone(reason),
      learnedMaxDuration: (ms) => this.#learned(ms),
      giveUpMs: o.giveUpMs ?? DEFAULT_GIVE_UP_MS,
      maxSessionMs: this.#maxMs,
      liveness: this.#liveness,
      log: o.log,
    };
  }

  /** Liveness, backlog, rebalancing and auto sizing, every TICK_MS. */
  #tick(): void {
    if (this.#closed) return;
    const now = performance.now();
    this.#flows.sweep(now);
    const samples: StripeSample[] = [];
    const congested = new Set<number>();
    for (const [i, sup] of this.#sups) {
      if (!sup.up) continue;
      const st = sup.stripe;
      const verdict = st.liveness?.tick(now);
      if (verdict === "probe") st.ping();
      if (verdict === "dead") {
        const secs = Math.round(st.liveness!.waitingMs(now) / 1000);
        this.#flows.forgetStripe(i);
        sup.dead(`no answer on stripe ${i} for ${secs} s (its agent side is gone)`);
        continue;
      }
      if (st.session.state !== "up") continue;
      const drops = st.stats.dropsOut;
      const dropped = drops > (this.#lastDrops.get(st) ?? drops);
      this.#lastDrops.set(st, drops);
      const backed = backedUp({
        droppedHere: dropped,
        writable: st.session.writable,
        load: st.load,
        rttMs: st.stats.rttMs,
        rttAt: st.rttAt,
        minRttMs: st.minRttMs,
      }, now);
      // A stripe carrying traffic is probed every tick: its RTT shows a queue building.
      if (verdict !== "probe" && now - st.lastPacketAt < TICK_MS) st.ping();
      if (backed) congested.add(i);
      samples.push({ index: i, congested: backed, idleMs: now - st.lastPacketAt });
    }
    const live = samples.map((x) => x.index).sort((a, b) => a - b);
    this.#moves += this.#flows.rebalance(live, congested, now, 8).length;
    let busyFlows = 0;
    for (const n of this.#flows.busyCounts(now).values()) busyFlows += n;
    const d = this.#planner.decide({
      now,
      live: samples,
      open: this.#sups.size + this.#opening.size,
      busyFlows,
    });
    if (d?.kind === "grow" && now >= this.#noGrowUntil) this.#grow(d.count, d.reason);
    if (d?.kind === "retire") this.#retire(d.index, d.reason);
  }

  #grow(count: number, reason: string): void {
    const before = this.#sups.size;
    for (let n = 0; n < count; n++) {
      let i = 0;
      while (this.#sups.has(i) || this.#opening.has(i)) i++;
      if (i >= this.#max) break;
      this.#opening.add(i);
      StripeSupervisor.open(this.#supOptions(i)).then((sup) => {
        this.#opening.delete(i);
        if (this.#closed) return void sup.close();
        this.#sups.set(i, sup);
        sup.stripe.ping();
        this.#planner.reset();
      }, (e) => {
        this.#opening.delete(i);
        this.#noGrowUntil = performance.now() + GROW_RETRY_MS;
        this.o.log?.(`could not add stripe ${i}: ${(e as Error).message}`);
      });
    }
    this.#changed(`${before} -> ${before + this.#opening.size} stripes: ${reason}`);
  }

  #retire(index: number, reason: string): void {
    const sup = this.#sups.get(index);
    if (!sup) return;
    this.#sups.delete(index);
    this.#flows.forgetStripe(index);
    sup.close();
    this.#changed(`${this.#sups.size + 1} -> ${this.#sups.size} stripes: ${reason}`);
  }

  #changed(reason: string): void {
    this.#reason = reason;
    this.o.log?.(reason);
  }
}
