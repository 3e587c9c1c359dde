/**
 * The client side of a tunnel: N stripes (Port sessions to the agent daemon) joined by one
 * tunnel id, and the pump between them and the Tun. Each packet goes on the stripe its flow
 * hashes to among the live ones, so a flow stays in order; when a stripe dies its flows move
 * while its supervisor brings it back on a new session (supervisor.ts).
 */
import { ExitCode, UserError } from "../errors.ts";
import type { Tun } from "../net/types.ts";
import type { PortSession } from "../ssm/session.ts";
import { VERSION } from "../version.ts";
import { ipVersion, pickStripe } from "./packet.ts";
import type { HealState } from "./heal.ts";
import { Stripe } from "./stripe.ts";
import { StripeSupervisor } from "./supervisor.ts";
import { type Hello, MAGIC, PROTOCOL_VERSION, type Welcome } from "./wire.ts";

export interface TunnelOptions {
  /** Open the Port session for stripe i (StartSession to the agent port). */
  openSession(stripe: number): Promise<PortSession>;
  stripes: number;
  agentPort: number;
  mtu: number;
  /** Stripe PING interval (0: off): RTT, liveness, and traffic that keeps the idle timeout away. */
  pingMs?: number;
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

export class Tunnel {
  readonly tunnelId: string;
  #sups: StripeSupervisor[] = [];
  #closed = false;
  #pinger?: ReturnType<typeof setInterval>;
  #dropsIn = 0;
  #ended = Promise.withResolvers<string>();
  #onPackets: (pkts: Uint8Array[]) => void = () => {};
  #maxMs?: number;

  private constructor(
    private o: TunnelOptions,
    readonly welcome: Welcome,
    stripes: Stripe[],
    hello: Omit<Hello, "stripe">,
  ) {
    this.tunnelId = hello.tunnelId;
    this.#maxMs = o.maxSessionMs;
    this.#sups = stripes.map((s) =>
      new StripeSupervisor({
        index: s.index,
        hello,
        address: welcome.address,
        agentPort: o.agentPort,
        openSession: o.openSession,
        packets: (p) => this.#onPackets(p),
        gone: (reason) => this.#gone(reason),
        learnedMaxDuration: (ms) => this.#learned(ms),
        giveUpMs: o.giveUpMs ?? DEFAULT_GIVE_UP_MS,
        maxSessionMs: o.maxSessionMs,
        log: o.log,
      }, s)
    );
  }

  /** Open every stripe and complete the hello; all stripes must get the same address. */
  static async connect(o: TunnelOptions): Promise<Tunnel> {
    const id = Array.from(
      crypto.getRandomValues(new Uint8Array(16)),
      (b) => b.toString(16).padStart(2, "0"),
    )
      .join("");
    const hello: Omit<Hello, "stripe"> = {
      magic: MAGIC,
      versions: [PROTOCOL_VERSION],
      tunnelId: id,
      stripes: o.stripes,
      mtu: o.mtu,
      features: [],
      client: `ssm-proxy/${VERSION}`,
    };
    // Stripe 0 first: the agent allocates the address on the first hello of a tunnel id.
    const first = await openStripe(o, 0);
    let welcome: Welcome;
    try {
      welcome = await first.handshake(hello);
    } catch (e) {
      await first.session.terminate().catch(() => {});
      throw e;
    }
    const stripes = [first];
    const rest = await Promise.allSettled(
      Array.from({ length: o.stripes - 1 }, async (_, i) => {
        const s = await openStripe(o, i + 1);
        stripes.push(s);
        const w = await s.handshake(hello);
        if (w.address !== welcome.address) {
          throw new UserError(
            `stripe ${i + 1} got address ${w.address}, not ${welcome.address}`,
            ExitCode.Remote,
          );
        }
      }),
    );
    const failed = rest.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
    if (failed) {
      await Promise.all(stripes.map((s) => s.session.terminate().catch(() => {})));
      throw failed.reason;
    }
    stripes.sort((a, b) => a.index - b.index);
    return new Tunnel(o, welcome, stripes, hello);
  }

  /**
   * Resolves with the reason once the tunnel is over: close(), or every stripe gave up healing.
   * A stripe that is healing does not end it.
   */
  get ended(): Promise<string> {
    return this.#ended.promise;
  }

  /** The current stripe of each index (they are replaced as sessions come and go). */
  get stripes(): readonly Stripe[] {
    return this.#sups.map((s) => s.stripe);
  }

  /** Pump packets between `tun` and the stripes until close(). */
  async run(tun: Tun): Promise<void> {
    this.#onPackets = (pkts) => {
      for (const p of pkts) if (!tun.write(p)) this.#dropsIn++;
    };
    const pingMs = this.o.pingMs ?? 10_000;
    if (pingMs > 0) {
      this.#pinger = setInterval(() => {
        for (const s of this.#sups) s.stripe.ping();
      }, pingMs);
    }
    for (const s of this.#sups) s.stripe.ping();
    const live: number[] = [];
    const batches = new Map<number, Uint8Array[]>();
    while (!this.#closed) {
      const packets = await tun.read(250);
      if (this.#closed) break;
      if (packets.length === 0) continue;
      live.length = 0;
      for (const s of this.#sups) if (s.up) live.push(s.index);
      // Nothing up: drop, like a link that is down; the senders retransmit once healed.
      if (live.length === 0) continue;
      if (live.length === 1) {
        this.#sups[live[0]].stripe.send(packets.filter((p) => ipVersion(p) === 4));
        continue;
      }
      batches.clear();
      for (const p of packets) {
        if (ipVersion(p) !== 4) continue; // the agent routes IPv4; skip the kernel's IPv6 chatter
        const i = pickStripe(p, live)!;
        let b = batches.get(i);
        if (!b) batches.set(i, b = []);
        b.push(p);
      }
      for (const [i, b] of batches) this.#sups[i].stripe.send(b);
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
    for (const s of this.#sups) {
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
    return t;
  }

  health(now = Date.now()): TunnelHealth {
    let healing = false;
    let up = false;
    let healingMs = 0;
    let reconnects = 0;
    let lastError: string | undefined;
    for (const s of this.#sups) {
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
      sessions: this.#sups.map((s) => s.stripe.session.sessionId),
      ...(this.#maxMs !== undefined ? { maxSessionMs: this.#maxMs } : {}),
    };
  }

  /** The machine slept or the network changed: probe every stripe now rather than later. */
  recover(reason: string): void {
    this.o.log?.(`${reason}; checking every session now`);
    for (const s of this.#sups) s.recover(reason);
  }

  /** Stop pumping and end every session on AWS. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#pinger);
    await Promise.all(this.#sups.map((s) => s.close()));
    this.#ended.resolve("closed");
  }

  #gone(reason: string): void {
    this.o.log?.(reason);
    if (this.#sups.every((s) => s.tracker.state === "down")) this.#ended.resolve(reason);
  }

  #learned(ms: number): void {
    if (this.#maxMs !== undefined && this.#maxMs <= ms) return;
    this.#maxMs = ms;
    this.o.log?.(
      `learned the maximum session duration: ${
        Math.round(ms / 1000)
      } s; sessions will be replaced ahead of it`,
    );
    for (const s of this.#sups) s.setMaxSessionMs(ms);
  }
}

async function openStripe(o: TunnelOptions, index: number): Promise<Stripe> {
  const session = await o.openSession(index);
  return new Stripe(index, session, o.agentPort);
}
