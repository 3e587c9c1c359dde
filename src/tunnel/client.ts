/**
 * The client side of a tunnel: N stripes (Port sessions to the agent daemon) joined by one
 * tunnel id, and the pump between them and the Tun. Each packet goes on the stripe its flow
 * hashes to among the live ones, so a flow stays in order; when a stripe dies its flows move.
 */
import { ExitCode, UserError } from "../errors.ts";
import type { Tun } from "../net/types.ts";
import type { PortSession } from "../ssm/session.ts";
import { VERSION } from "../version.ts";
import { ipVersion, pickStripe } from "./packet.ts";
import { Stripe } from "./stripe.ts";
import { type Hello, MAGIC, PROTOCOL_VERSION, type Welcome } from "./wire.ts";

export interface TunnelOptions {
  /** Open the Port session for stripe i (StartSession to the agent port). */
  openSession(stripe: number): Promise<PortSession>;
  stripes: number;
  agentPort: number;
  mtu: number;
  pingMs?: number;
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

export class Tunnel {
  readonly tunnelId: string;
  #stripes: Stripe[] = [];
  #tun?: Tun;
  #closed = false;
  #pinger?: ReturnType<typeof setInterval>;
  #dropsIn = 0;
  #ended = Promise.withResolvers<string>();

  private constructor(
    private o: TunnelOptions,
    readonly welcome: Welcome,
    stripes: Stripe[],
    id: string,
  ) {
    this.tunnelId = id;
    this.#stripes = stripes;
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
    return new Tunnel(o, welcome, stripes, id);
  }

  /** Resolves with the reason once every stripe is down. */
  get ended(): Promise<string> {
    return this.#ended.promise;
  }

  get stripes(): readonly Stripe[] {
    return this.#stripes;
  }

  /** Pump packets between `tun` and the stripes until close(). */
  async run(tun: Tun): Promise<void> {
    this.#tun = tun;
    for (const s of this.#stripes) {
      s.attach({
        packets: (pkts) => {
          for (const p of pkts) if (!tun.write(p)) this.#dropsIn++;
        },
        down: (reason) => {
          this.o.log?.(`stripe ${s.index} down: ${reason}`);
          if (this.#stripes.every((x) => !x.up)) this.#ended.resolve(reason);
        },
      });
    }
    this.#pinger = setInterval(() => {
      for (const s of this.#stripes) s.ping();
    }, this.o.pingMs ?? 10_000);
    for (const s of this.#stripes) s.ping();
    const live: number[] = [];
    const batches = new Map<number, Uint8Array[]>();
    while (!this.#closed) {
      const packets = await tun.read(250);
      if (this.#closed) break;
      if (packets.length === 0) continue;
      live.length = 0;
      for (const s of this.#stripes) if (s.up) live.push(s.index);
      if (live.length === 0) continue;
      if (live.length === 1) {
        this.#stripes[live[0]].send(packets.filter((p) => ipVersion(p) === 4));
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
      for (const [i, b] of batches) this.#stripes[i].send(b);
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
    for (const s of this.#stripes) {
      t.packetsOut += s.stats.packetsOut;
      t.bytesOut += s.stats.bytesOut;
      t.packetsIn += s.stats.packetsIn;
      t.bytesIn += s.stats.bytesIn;
      t.dropsOut += s.stats.dropsOut;
      t.reconnects += s.session.reconnects;
      if (s.up) t.stripesUp++;
      t.rttMs = Math.max(t.rttMs, s.stats.rttMs);
    }
    return t;
  }

  /** Stop pumping and end every session on AWS. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#pinger);
    for (const s of this.#stripes) s.close();
    await Promise.all(this.#stripes.map((s) => s.session.terminate().catch(() => {})));
    this.#ended.resolve("closed");
  }
}

async function openStripe(o: TunnelOptions, index: number): Promise<Stripe> {
  const session = await o.openSession(index);
  return new Stripe(index, session, o.agentPort);
}
