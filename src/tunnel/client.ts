/**
 * The client side of a tunnel: stripes (Port sessions to the agent daemon) joined by one tunnel
 * id, and the pump between them and the Tun. Each new flow goes on the least-loaded live stripe
 * and stays there (flows.ts), so it stays in order; the agent answers it on the stripe it heard
 * it on. A stripe whose far end stops answering is declared dead (liveness.ts) and its flows
 * move while its supervisor brings it back on a new session (supervisor.ts). With `auto`, the
 * number of stripes follows the load (striping.ts). Spread over several instances, each has its
 * own stripes and address, and a flow keeps its instance (spread.ts, nat.ts).
 */
import type { UserError } from "../errors.ts";
import type { Tun } from "../net/types.ts";
import { parseIPv6 } from "../../ffi/struct.ts";
import type { PortSession } from "../ssm/session.ts";
import { FlowTable } from "./flows.ts";
import { livenessFor, type LivenessOptions } from "./liveness.ts";
import { fromInstance, toInstance } from "./nat.ts";
import { carried, flowHash } from "./packet.ts";
import {
  bySlot,
  growSlot,
  indexOf,
  InstanceAffinity,
  type Member,
  slotOf,
  stripeKey,
} from "./spread.ts";
import { Stripe } from "./stripe.ts";
import { backedUp, StripePlanner, type StripeSample } from "./striping.ts";
import { StripeSupervisor, type SupervisorOptions } from "./supervisor.ts";
import { handshakeFor, type Opened, openMembers } from "./connect.ts";
import { Denials } from "./denials.ts";
import { IdentityRefused, identityText, type Prover } from "./identity.ts";
import {
  healthOf,
  instanceStats,
  sumStats,
  type TunnelHealth,
  type TunnelStats,
} from "./tunnel_stats.ts";

export type { TunnelHealth, TunnelStats } from "./tunnel_stats.ts";
import type { Welcome } from "./wire.ts";

export interface TunnelOptions {
  /** Open the Port session for stripe i of instance `instance` (StartSession to the agent port). */
  openSession(stripe: number, instance: number): Promise<PortSession>;
  /**
   * Spread over these instances (ids, in order; the first's address is the tun's). Stripe
   * counts are then per instance. Absent: one instance, `openSession(i, 0)`.
   */
  instances?: string[];
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
  /** The one instance's id, for messages (spread: `instances` name them). */
  target?: string;
  /**
   * Signs a proof of the client's IAM identity per agent nonce (identity.ts). Absent: the HELLO
   * offers none, and an agent that requires one refuses the tunnel.
   */
  prover?: Prover;
  log?: (line: string) => void;
}

const DEFAULT_GIVE_UP_MS = 10 * 60_000;
const DEFAULT_MAX_STRIPES = 8;
/** How often stripes are checked: liveness, backlog, rebalancing, auto sizing. */
const TICK_MS = 500;
/** After a stripe could not be added, wait this long before trying again. */
const GROW_RETRY_MS = 30_000;

export class Tunnel {
  readonly tunnelId: string;
  readonly welcome: Welcome;
  /** Stripe key (spread.ts; the index, for one instance) → its supervisor; they come and go with `auto`. */
  #sups = new Map<number, StripeSupervisor>();
  #opening = new Set<number>();
  #closed = false;
  #closing?: Promise<void>;
  #pinger?: ReturnType<typeof setInterval>;
  #ticker?: ReturnType<typeof setInterval>;
  #dropsIn = 0;
  #denials = new Denials();
  /** Why the tunnel ended, when that carries its own exit code (an identity refusal). */
  #failure?: UserError;
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
  /** Instances by slot; the first connected one's address is the tun's. */
  #members = new Map<number, Member>();
  #tunAddress: number;
  /** The tunnel's IPv6 address as bytes; undefined when IPv6 is not carried (also with --spread). */
  readonly #address6?: Uint8Array;
  /** Spread only: each flow's instance. */
  #affinity?: InstanceAffinity;

  private constructor(private o: TunnelOptions, opened: Opened[]) {
    const first = opened[0].member;
    this.tunnelId = first.hello.tunnelId;
    this.welcome = first.welcome;
    this.#tunAddress = first.address;
    this.#maxMs = o.maxSessionMs;
    this.#auto = o.stripes === "auto";
    this.#max = opened.reduce((n, x) => n + x.member.max, 0);
    this.#liveness = o.liveness ?? livenessFor(o.pingMs ?? 10_000);
    this.#planner = new StripePlanner({
      auto: this.#auto,
      max: this.#max,
      growAfterMs: o.growAfterMs,
      retireIdleMs: o.retireIdleMs,
      // Each instance keeps its first stripe: its lease, and somewhere to place flows.
      keep: (k) => indexOf(k) === 0,
    });
    if (o.instances) this.#affinity = new InstanceAffinity();
    // Spread rewrites IPv4 sources per instance (nat.ts); IPv6 is not carried there.
    else if (first.welcome.address6) this.#address6 = parseIPv6(first.welcome.address6);
    for (const { member, stripes } of opened) {
      this.#members.set(member.slot, member);
      for (const s of stripes) {
        const k = stripeKey(member.slot, s.index);
        this.#sups.set(k, new StripeSupervisor(this.#supOptions(k), s));
      }
    }
  }

  /**
   * Open the first stripes of each instance and complete the hellos; all stripes of an instance
   * must get the same address. Spread: an instance that fails is left out (said in the log);
   * the first failure is thrown when none connects.
   */
  static async connect(o: TunnelOptions): Promise<Tunnel> {
    return new Tunnel(o, await openMembers(o, DEFAULT_MAX_STRIPES));
  }

  /**
   * Resolves with the reason once the tunnel is over: close(), or every stripe gave up healing.
   * A stripe that is healing does not end it.
   */
  get ended(): Promise<string> {
    return this.#ended.promise;
  }

  /** Why the tunnel stopped whole, when it has its own exit code: an IdentityRefused. */
  get failure(): UserError | undefined {
    return this.#failure;
  }

  /** What the agent made of this client's identity, from the newest handshake (identity.ts). */
  identity(): string {
    const w = this.#ordered().find((s) => s.stripe.welcome)?.stripe.welcome ?? this.welcome;
    return identityText(w);
  }

  /** The current stripe of each index, by index (they are replaced as sessions come and go). */
  get stripes(): readonly Stripe[] {
    return this.#ordered().map((s) => s.stripe);
  }

  /** Which stripe (its key, spread.ts) carries the flow of packet `p` (tests, diagnostics). */
  stripeOf(p: Uint8Array): number | undefined {
    return this.#flows.stripeOf(flowHash(p));
  }

  /** Which instance (slot) the flow of packet `p` is on, spread (tests, diagnostics). */
  instanceOf(p: Uint8Array): number | undefined {
    return this.#affinity?.slotOf(flowHash(p));
  }

  stats(): TunnelStats {
    return {
      ...sumStats(this.#sups.values(), this.#dropsIn),
      stripesOpen: this.#sups.size,
      stripesMax: this.#max,
      stripesAuto: this.#auto,
      ...(this.#reason ? { stripesReason: this.#reason } : {}),
      flowMoves: this.#moves,
      stripeBytesIn: Object.fromEntries([...this.#sups].map(([i, s]) => [i, s.stats().bytesIn])),
      ...(this.#affinity ? { instances: instanceStats(this.#members.values(), this.#sups) } : {}),
      ...this.#denials.stats(),
    };
  }

  health(now = Date.now()): TunnelHealth {
    return healthOf(this.#ordered(), now, this.#maxMs);
  }

  /** Pump packets between `tun` and the stripes until close(). */
  async run(tun: Tun): Promise<void> {
    const denials = this.#denials;
    denials.onlyFrom(
      [...this.#members.values()].flatMap((m) => [m.welcome.peer, m.welcome.peer6 ?? ""]),
    );
    this.#onPackets = (pkts) => {
      for (const p of pkts) {
        denials.note(p);
        if (!tun.write(p)) this.#dropsIn++;
      }
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
      const slots = this.#affinity ? bySlot(live) : undefined;
      batches.clear();
      for (const p of packets) {
        if (!carried(p, this.#address6)) continue; // the kernel's IPv6 chatter, or no IPv6
        const key = flowHash(p);
        // Even with one stripe: flows must stay where they are when more stripes come.
        const i = this.#affinity
          ? this.#spreadOut(p, key, live, slots!, now)
          : this.#flows.place(key, live, now)!;
        let b = batches.get(i);
        if (!b) batches.set(i, b = []);
        b.push(p);
      }
      for (const [i, b] of batches) this.#sups.get(i)?.stripe.send(b);
    }
  }

  /** Spread: the stripe for a packet, within its flow's instance; the source rewritten to suit. */
  #spreadOut(
    p: Uint8Array,
    key: number,
    live: number[],
    slots: Map<number, number[]>,
    now: number,
  ): number {
    const a = this.#affinity!;
    const i = this.#flows.place(key, a.candidates(key, live, slots), now)!;
    const slot = slotOf(i);
    a.note(key, slot, now);
    const m = this.#members.get(slot)!;
    if (m.address !== this.#tunAddress) toInstance(p, this.#tunAddress, m.address);
    return i;
  }

  /** Packets from instance `m`: addressed back to the tun's address. */
  #inbound(m: Member, packets: Uint8Array[]): void {
    if (m.address !== this.#tunAddress) {
      for (const p of packets) fromInstance(p, m.address, this.#tunAddress);
    }
    this.#onPackets(packets);
  }

  /** "stripe 2", or "stripe 2 of i-0abc" when spread. */
  #name(key: number): string {
    const label = this.#members.get(slotOf(key))?.label;
    return label ? `stripe ${indexOf(key)} of ${label}` : `stripe ${key}`;
  }

  /** The machine slept or the network changed: probe every stripe now rather than later. */
  recover(reason: string): void {
    this.o.log?.(`${reason}; checking every session now`);
    for (const s of this.#sups.values()) s.recover(reason);
  }

  /** Stop pumping and end every session on AWS. */
  close(): Promise<void> {
    // Every caller waits for the same sessions to end (the tunnel may have begun on its own).
    return this.#closing ??= (async () => {
      this.#closed = true;
      clearInterval(this.#pinger);
      clearInterval(this.#ticker);
      await Promise.all([...this.#sups.values()].map((s) => s.close()));
      this.#ended.resolve("closed");
    })();
  }

  /** The agent refuses this identity now: every stripe would be refused too, so stop whole. */
  #refuse(e: IdentityRefused): void {
    if (this.#closed) return;
    this.#failure = e;
    this.#ended.resolve(e.message);
    void this.close();
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
    return [...this.#sups].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
  }

  /** Sorted indexes of stripes that carry traffic now (up, session not resuming). */
  #live(): number[] {
    const live: number[] = [];
    for (const [i, s] of this.#sups) if (s.up && s.stripe.session.state === "up") live.push(i);
    return live.sort((a, b) => a - b);
  }

  #supOptions(key: number): SupervisorOptions {
    const o = this.o;
    const m = this.#members.get(slotOf(key))!;
    const log = o.log;
    return {
      index: indexOf(key),
      hello: m.hello,
      address: m.welcome.address,
      agentPort: o.agentPort,
      handshake: handshakeFor(o, m.label),
      openSession: (i) => o.openSession(i, m.slot),
      packets: (p) => this.#inbound(m, p),
      gone: (reason) => this.#gone(m.label ? `${m.label}: ${reason}` : reason),
      refused: (e) => this.#refuse(e),
      learnedMaxDuration: (ms) => this.#learned(ms),
      giveUpMs: o.giveUpMs ?? DEFAULT_GIVE_UP_MS,
      maxSessionMs: this.#maxMs,
      liveness: this.#liveness,
      log: log && m.label ? (l) => log(`${m.label}: ${l}`) : log,
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
        sup.dead(`no answer on ${this.#name(i)} for ${secs} s (its agent side is gone)`);
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
    // Within an instance only: moving a flow to another instance would break it.
    for (const l of (this.#affinity ? bySlot(live) : new Map([[0, live]])).values()) {
      this.#moves += this.#flows.rebalance(l, congested, now, 8).length;
    }
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
    const live = new Set(this.#live());
    for (let n = 0; n < count; n++) {
      const taken = new Set([...this.#sups.keys(), ...this.#opening]);
      const at = growSlot([...this.#members.values()], taken, live);
      if (!at) break;
      const i = stripeKey(at.slot, at.index);
      this.#opening.add(i);
      StripeSupervisor.open(this.#supOptions(i)).then((sup) => {
        this.#opening.delete(i);
        if (this.#closed) return void sup.close();
        this.#sups.set(i, sup);
        sup.stripe.ping();
        this.#planner.reset();
      }, (e) => {
        this.#opening.delete(i);
        if (e instanceof IdentityRefused) return this.#refuse(e);
        this.#noGrowUntil = performance.now() + GROW_RETRY_MS;
        this.o.log?.(`could not add ${this.#name(i)}: ${(e as Error).message}`);
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
