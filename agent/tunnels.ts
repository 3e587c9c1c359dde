/**
 * Tunnels and their stripes (DESIGN §3). No sockets here: a stripe is anything that can queue
 * packets and be closed, so the joining rules and routing are testable without TCP.
 *
 * A tunnel belongs to the principal its first verified stripe proved (issue 15): every later
 * stripe must prove the same one, so knowing a tunnel id is not enough to join it. Each tunnel
 * carries its principal's policy compiled for the data path; setPolicy recompiles them all.
 */
import { FEATURE_IPV6, type Hello, type Welcome, type WireErrorBody } from "../src/tunnel/wire.ts";
import { FlowTable } from "../src/tunnel/flows.ts";
import { flowHash } from "../src/tunnel/packet.ts";
import { formatIpv4 } from "./cidr.ts";
import { type Cidr6, formatIpv6, type Pool6 } from "./cidr6.ts";
import type { AddressPool } from "./pool.ts";
import { negotiate, welcomeFor } from "./hello.ts";
import { TokenBucket } from "../src/netstack/limits.ts";
import { wirePolicy } from "./policy.ts";
import type { Principal } from "./principal.ts";
import type { RulesPolicy } from "./rules.ts";
import { uncheckedRefusal } from "./identity.ts";
import { admits, compile, type Decide, type PolicyScope, rulesFor } from "./rules_compile.ts";

/** ICMP answers to denied packets, per tunnel: enough to fail programs fast, never a flood. */
const PROHIBIT_PER_SECOND = 50;
const PROHIBIT_BURST = 20;

/** Hex digits of a tunnel id shown in logs and status: too few to join the tunnel with. */
export const SHOWN_ID_CHARS = 8;

/** A tunnel id as shown anywhere others may read it (logs, status.json). */
export const shortId = (id: string): string => id.slice(0, SHOWN_ID_CHARS);

/** Who a stripe proved to be. */
export interface StripeIdentity {
  /** The principal STS vouched for; undefined: not verified. */
  principal?: Principal;
  /** Why a proof was let pass unchecked (STS unreachable), for the WELCOME. */
  unverified?: string;
  /** The access key the proof was signed with (verified, or claimed while STS is unreachable). */
  keyId?: string;
}

/** One stripe's sending side, as the registry sees it. */
export interface StripeLink {
  /** Queue a packet (copied); false when the queue dropped it. */
  enqueue(p: Uint8Array): boolean;
  /** Start writing what is queued. */
  flush(): void;
  /** Send `error` if given, then close. */
  close(error?: WireErrorBody): void;
}

export class Tunnel {
  readonly stripes = new Map<number, StripeLink>();
  /** Sorted indexes of connected stripes: the set flows are hashed over when not heard. */
  live: number[] = [];
  /** When the first stripe of the current connection joined (ms); undefined while in grace. */
  connectedAt?: number;
  /** When the last stripe left (ms); undefined while connected. */
  disconnectedAt?: number;
  /** Client → VPC bytes written to the tun, and VPC → client bytes queued on a stripe. */
  bytesIn = 0;
  bytesOut = 0;
  /** The stripe each flow was last heard on: answers go back the same way. */
  readonly flows = new FlowTable();
  /**
   * The tunnel's IPv6 address when its latest hello asked for IPv6 and the agent carries it
   * (derived from `address`, so it survives restarts with the lease); undefined: IPv4 only.
   */
  address6?: Uint8Array;
  /** Set by the first verified stripe; every later stripe must prove the same ARN. */
  principal?: Principal;
  /** The access key of its latest verified stripe: while STS is unreachable, its key to rejoin. */
  keyId?: string;
  /** Client packets its policy refused. */
  denied = 0;
  /** Paces the ICMP answers to denied packets. */
  readonly prohibitLimit = new TokenBucket(PROHIBIT_PER_SECOND, PROHIBIT_BURST);

  constructor(
    readonly id: string,
    readonly address: number,
    public stripeCount: number,
    /** The policy of `principal`, compiled (rules_compile.ts); replaced when either changes. */
    public decide: Decide,
    readonly now: () => number = () => performance.now(),
  ) {}

  get addressText(): string {
    return formatIpv4(this.address);
  }

  get address6Text(): string | undefined {
    return this.address6 && formatIpv6(this.address6);
  }

  /** Packets of one frame arrived on stripe `index`: their flows are answered there. */
  heard(packets: Uint8Array[], index: number): void {
    const now = this.now();
    for (const p of packets) this.flows.note(flowHash(p), index, now);
  }

  /**
   * The stripe that carries `p`'s flow: the one its client last sent it on (the client balances
   * flows over stripes), else by hash for flows not heard from the client (or heard on a stripe
   * since gone); undefined when none is connected.
   */
  linkFor(p: Uint8Array): StripeLink | undefined {
    const key = flowHash(p);
    const i = this.flows.lookup(key, this.live, this.now()) ??
      (this.live.length ? this.live[key % this.live.length] : undefined);
    return i === undefined ? undefined : this.stripes.get(i);
  }

  set(index: number, link: StripeLink | undefined): void {
    if (link) this.stripes.set(index, link);
    else this.stripes.delete(index);
    // Its flows' next packets arrive on other stripes; until then they are hashed.
    this.flows.forgetStripe(index);
    this.live = [...this.stripes.keys()].sort((a, b) => a - b);
  }
}

/** IPv6 as this agent runs it: the pool6 mapping, or why it is off (told to clients asking). */
export type Ipv6State = { pool6: Pool6 } | { off: string };

export interface RegistryParams {
  pool: AddressPool;
  /** Default: off until the server has set IPv6 up (it then assigns `Registry.ipv6`). */
  ipv6?: Ipv6State;
  /** The rules in force; setPolicy replaces them. */
  policy: RulesPolicy;
  /** Denied to every tunnel with the pool, whether or not IPv6 is on. */
  pool6: Cidr6;
  mtu: number;
  resolver?: string;
  agentVersion: string;
  log?: (line: string) => void;
  /** Clock for connectedAt/disconnectedAt (ms). */
  now?: () => number;
}

/** What changed, for the status file and idle stop. */
export type RegistryEvent = "connected" | "disconnected" | "released";

export type JoinResult =
  | { tunnel: Tunnel; welcome: Welcome }
  | { error: WireErrorBody };

export class Registry {
  #byId = new Map<string, Tunnel>();
  #byAddress = new Map<number, Tunnel>();
  #log: (line: string) => void;
  #now: () => number;
  #policy: RulesPolicy;
  readonly #scope: PolicyScope;
  /** A tunnel got its first stripe, lost its last one, or was forgotten after its grace. */
  onChange?: (e: RegistryEvent) => void;
  ipv6: Ipv6State;

  constructor(readonly p: RegistryParams) {
    this.#log = p.log ?? (() => {});
    this.#now = p.now ?? Date.now;
    this.ipv6 = p.ipv6 ?? { off: "IPv6 is not set up on the agent" };
    this.#policy = p.policy;
    this.#scope = { pool: p.pool.cidr, pool6: p.pool6 };
  }

  get policy(): RulesPolicy {
    return this.#policy;
  }

  /** New rules (a config or Parameter Store reload): every tunnel is judged by them at once. */
  setPolicy(policy: RulesPolicy): void {
    this.#policy = policy;
    for (const t of this.#byId.values()) t.decide = compile(policy, t.principal, this.#scope);
  }

  /** Tunnels with at least one stripe connected (the rest are in their lease grace). */
  get connectedCount(): number {
    let n = 0;
    for (const t of this.#byId.values()) if (t.stripes.size > 0) n++;
    return n;
  }

  get tunnels(): Tunnel[] {
    return [...this.#byId.values()];
  }

  byAddress(address: number): Tunnel | undefined {
    return this.#byAddress.get(address);
  }

  /** The tunnel owning the IPv6 address with the host index of IPv4 `address`, if it has IPv6. */
  byAddress6(address: number): Tunnel | undefined {
    const t = this.#byAddress.get(address);
    return t?.address6 ? t : undefined;
  }

  byId(id: string): Tunnel | undefined {
    return this.#byId.get(id);
  }

  /**
   * A validated HELLO on `link`, from a stripe that proved `who` (nothing: an unverified one):
   * join (or create) its tunnel. A repeated stripe index replaces the old connection, which a
   * healing client has already given up on.
   */
  join(h: Hello, link: StripeLink, who: StripeIdentity = {}): JoinResult {
    const v = negotiate(h);
    if ("error" in v) return v;
    let tunnel = this.#byId.get(h.tunnelId);
    let principal = who.principal;
    if (!principal && this.#rejoins(tunnel, who)) {
      // STS cannot be asked, but this stripe signed a fresh proof for its nonce with the key
      // that verified this tunnel's owner, and knows the tunnel's id: the owner, healing.
      principal = tunnel!.principal;
      this.#log(
        `tunnel ${shortId(h.tunnelId)}: a stripe rejoins on its verified key (STS unreachable)`,
      );
    }
    if (!admits(this.#policy, principal)) {
      if (who.unverified !== undefined) return { error: uncheckedRefusal(who.unverified) };
      return {
        error: {
          code: "identity-required",
          message:
            "this agent requires a verified IAM identity: upgrade ssm-proxy on this computer",
        },
      };
    }
    const mismatch = tunnel && this.#mismatch(tunnel, h, principal);
    if (mismatch) return { error: { code: "tunnel-mismatch", message: mismatch } };
    // The latest hello decides, so a client that reconnects without IPv6 loses its IPv6 routing.
    const wants6 = h.features.includes(FEATURE_IPV6);
    const ipv6 = this.ipv6;
    const pool6 = wants6 && "pool6" in ipv6 ? ipv6.pool6 : undefined;
    if (!tunnel) {
      const address = this.p.pool.acquire(h.tunnelId);
      if (address === undefined) {
        return {
          error: {
            code: "pool-exhausted",
            message: `all ${this.p.pool.capacity} tunnel addresses are in use; try again later`,
          },
        };
      }
      tunnel = new Tunnel(
        h.tunnelId,
        address,
        h.stripes,
        compile(this.#policy, principal, this.#scope),
      );
      tunnel.principal = principal;
      if (who.principal) tunnel.keyId = who.keyId;
      this.#byId.set(h.tunnelId, tunnel);
      this.#byAddress.set(address, tunnel);
      const also = pool6 ? ` and ${formatIpv6(pool6.addressOf(address))}` : "";
      this.#log(
        `tunnel ${shortId(h.tunnelId)} (${h.client}, ${principal?.arn ?? "unverified"}) ` +
          `gets ${tunnel.addressText}${also}`,
      );
    } else {
      this.p.pool.acquire(h.tunnelId); // cancels a pending release
      tunnel.stripeCount = h.stripes;
      if (principal && !tunnel.principal) {
        // Its earlier stripes could not be checked (STS was unreachable): this one binds it.
        tunnel.principal = principal;
        tunnel.decide = compile(this.#policy, principal, this.#scope);
        this.#log(`tunnel ${shortId(h.tunnelId)} now belongs to ${principal.arn}`);
      }
      // Temporary credentials rotate: the newest verified key is the one to rejoin with.
      if (who.principal && who.keyId) tunnel.keyId = who.keyId;
    }
    tunnel.address6 = pool6?.addressOf(tunnel.address);
    const old = tunnel.stripes.get(h.stripe);
    const wasIdle = tunnel.stripes.size === 0;
    tunnel.set(h.stripe, link);
    if (wasIdle) {
      tunnel.connectedAt = this.#now();
      tunnel.disconnectedAt = undefined;
      this.onChange?.("connected");
    }
    if (old) {
      old.close({ code: "protocol", message: `stripe ${h.stripe} replaced by a newer connection` });
    }
    const welcome = welcomeFor(h, {
      version: v.version,
      address: tunnel.addressText,
      agentAddress: formatIpv4(this.p.pool.agentAddress),
      agentMtu: this.p.mtu,
      resolver: this.p.resolver,
      policy: wirePolicy(
        rulesFor(this.#policy, tunnel.principal),
        this.#scope,
        pool6 !== undefined,
      ),
      agentVersion: this.p.agentVersion,
      identity: principal && { arn: principal.arn, account: principal.account },
      identityUnverified: who.unverified,
      ipv6: !wants6
        ? undefined
        : pool6
        ? { address6: tunnel.address6Text!, peer6: formatIpv6(pool6.agentAddress) }
        : { off: "off" in ipv6 ? ipv6.off : "" },
    });
    return { tunnel, welcome };
  }

  /** May an unchecked stripe rejoin `t` as its owner (the key that last verified it)? */
  #rejoins(t: Tunnel | undefined, who: StripeIdentity): boolean {
    return !!(t?.principal && t.keyId && who.unverified !== undefined && who.keyId === t.keyId);
  }

  /** Why a stripe may not join `t`, or undefined. */
  #mismatch(t: Tunnel, h: Hello, principal: Principal | undefined): string | undefined {
    const id = shortId(t.id);
    if (t.stripes.size > 0 && t.stripeCount !== h.stripes) {
      return `tunnel ${id} has ${t.stripeCount} stripes, not ${h.stripes}`;
    }
    // Never name the owner: the asker may be someone else.
    if (t.principal && !principal) {
      return `tunnel ${id} belongs to a verified identity; this stripe's could not be verified`;
    }
    if (t.principal && principal && t.principal.arn !== principal.arn) {
      return `tunnel ${id} belongs to another identity than ${principal.arn}`;
    }
    return undefined;
  }

  /** `link` is gone. Only the current holder of the index counts: a replaced link is a no-op. */
  leave(tunnel: Tunnel, index: number, link: StripeLink): void {
    if (tunnel.stripes.get(index) !== link) return;
    tunnel.set(index, undefined);
    if (tunnel.stripes.size === 0) {
      this.p.pool.idle(tunnel.id);
      tunnel.connectedAt = undefined;
      tunnel.disconnectedAt = this.#now();
      this.onChange?.("disconnected");
      this.#log(
        `tunnel ${shortId(tunnel.id)} has no stripes; ${tunnel.addressText} kept for the grace ` +
          "period",
      );
      if (this.p.pool.graceMs <= 0) this.sweep();
    }
  }

  /** Forget tunnels whose grace period ended. */
  sweep(): void {
    let released = false;
    for (const id of this.p.pool.sweep()) {
      const t = this.#byId.get(id);
      if (!t) continue;
      this.#byId.delete(id);
      this.#byAddress.delete(t.address);
      this.#log(`tunnel ${shortId(id)} released ${t.addressText}`);
      released = true;
    }
    if (released) this.onChange?.("released");
  }

  /** Every connected stripe (for shutdown). */
  links(): StripeLink[] {
    return this.tunnels.flatMap((t) => [...t.stripes.values()]);
  }
}
