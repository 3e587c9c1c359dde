/**
 * The audit trail's flow table (issue 15): one JSON line per flow, written when the flow ends.
 *
 * A flow is (tunnel, IP version, protocol, client address and port, remote address and port,
 * verdict), keyed as audit_key.ts reads it, so "down" packets land on the flow their "up" packets
 * opened. The verdict is part of the key: packets the policy denied form their own flow (a SYN
 * retransmitted three times is one "deny" line), and a flow whose packets the policy stops
 * allowing halfway (a refreshed policy, a non-first fragment a port rule cannot judge) gives one
 * line for each verdict instead of flapping between them.
 *
 * A flow ends when idle (TCP 5 min, or 10 s once FIN was seen both ways or an RST; UDP 60 s;
 * anything else 30 s), when its tunnel ends, when the audit closes, or early when the table is
 * full: then the least recently active flow is written out to make room and `evicted` counts
 * it, so a port scan costs lines, not memory. Its packets after that start a new flow.
 *
 * Data-path cost: a packet of a known flow reads its key into one reused FlowKey, looks up a
 * small-integer hash in a Map (collisions chained and checked field by field), bumps counters
 * and moves the flow to the recent end of a linked list: no allocation. A list ordered by last
 * activity also lets sweep() stop at the first flow idle for less than the shortest timeout.
 */
import {
  FIN,
  FIRST_FRAGMENT,
  FlowKey,
  fragmentHash,
  keyHash,
  LATER_FRAGMENT,
  readKey,
  RST,
  TCP,
  UDP,
} from "./audit_key.ts";
import { FIN_DOWN, FIN_UP, Flow, formatLine, RESET, TunnelEntry } from "./audit_flow.ts";

export type { AuditRecord } from "./audit_flow.ts";

/** What the audit needs of a tunnel. */
export interface AuditTunnel {
  readonly id: string;
  /** The verified principal; undefined for an unverified tunnel. */
  readonly principal?: { readonly arn: string };
}

/**
 * Called by the data path for every packet while the audit is on: "up" is client → VPC (after
 * the spoofing check, with the policy's verdict), "down" is VPC → client (always "allow").
 */
export interface PacketAudit {
  packet(t: AuditTunnel, p: Uint8Array, dir: "up" | "down", verdict: "allow" | "deny"): void;
}

export interface AuditLimits {
  /** Open flows kept; one more ends the least recently active early. */
  maxFlows: number;
  tcpIdleMs: number;
  /** TCP after FIN both ways or an RST. */
  tcpClosedMs: number;
  udpIdleMs: number;
  /** ICMP, other protocols, and bytes that are not IP. */
  otherIdleMs: number;
}

export const DEFAULT_AUDIT_LIMITS: Readonly<AuditLimits> = {
  maxFlows: 65536,
  tcpIdleMs: 300_000,
  tcpClosedMs: 10_000,
  udpIdleMs: 60_000,
  otherIdleMs: 30_000,
};

export interface FlowAuditOptions {
  /** Takes one JSON line (no newline); must not block or throw (audit_sink.ts buffers). */
  write: (line: string) => void;
  /**
   * Clock in ms since the epoch, read for every packet (tests inject one). Default: Date.now(),
   * read once per batch: the data path handles a frame's or a tun read's packets in one
   * synchronous run, which then shares one time (a queued microtask marks it stale). Date.now()
   * costs about as much as the rest of packet() and allocates a heap number on every call.
   */
  now?: () => number;
  limits?: Partial<AuditLimits>;
}

/** Where a first fragment went, so later fragments (which show no ports) can follow it. */
interface FragmentNote {
  flow: Flow;
  id: number;
}

/** Fragment notes kept per generation; sweep() starts a new one, so a note lives 1–2 sweeps. */
const MAX_FRAGMENT_NOTES = 4096;

const sameAddresses = (f: Flow, k: FlowKey): boolean =>
  f.c0 === k.c0 && f.r0 === k.r0 &&
  (f.v !== 6 || (f.c1 === k.c1 && f.c2 === k.c2 && f.c3 === k.c3 && f.r1 === k.r1 &&
    f.r2 === k.r2 && f.r3 === k.r3));

export class FlowAudit implements PacketAudit {
  /** Flows ended early because the table was full. */
  evicted = 0;
  /** Lines written. */
  lines = 0;
  readonly #write: (line: string) => void;
  readonly #now: () => number;
  readonly #limits: AuditLimits;
  readonly #minIdle: number;
  readonly #key = new FlowKey();
  readonly #flows = new Map<number, Flow>();
  readonly #tunnels = new Map<string, TunnelEntry>();
  #size = 0;
  #nextTunnel = 1;
  #lastTunnel: AuditTunnel | undefined;
  #lastEntry: TunnelEntry | undefined;
  /** Least and most recently active flows. */
  #oldest: Flow | undefined;
  #newest: Flow | undefined;
  #fragments = new Map<number, FragmentNote>();
  #oldFragments = new Map<number, FragmentNote>();
  #closed = false;
  readonly #perBatch: boolean;
  /** The current batch's time (a number field: read and stored without boxing). */
  readonly #clock = new Float64Array(1);
  #fresh = false;
  readonly #stale = () => {
    this.#fresh = false;
  };

  constructor(o: FlowAuditOptions) {
    this.#write = o.write;
    this.#now = o.now ?? Date.now;
    this.#perBatch = o.now === undefined;
    this.#limits = { ...DEFAULT_AUDIT_LIMITS, ...o.limits };
    this.#limits.maxFlows = Math.max(1, this.#limits.maxFlows);
    const l = this.#limits;
    this.#minIdle = Math.min(l.tcpIdleMs, l.tcpClosedMs, l.udpIdleMs, l.otherIdleMs);
  }

  /** Open flows. */
  get flows(): number {
    return this.#size;
  }

  packet(t: AuditTunnel, p: Uint8Array, dir: "up" | "down", verdict: "allow" | "deny"): void {
    if (this.#closed) return;
    const te = t === this.#lastTunnel ? this.#lastEntry! : this.#entryOf(t);
    const k = this.#key;
    const up = dir === "up";
    const deny = verdict === "deny";
    readKey(p, up, k);
    if (!this.#fresh) {
      this.#clock[0] = this.#now();
      if (this.#perBatch) {
        this.#fresh = true;
        queueMicrotask(this.#stale);
      }
    }
    const now = this.#clock[0];
    let f: Flow | undefined;
    if (k.frag === LATER_FRAGMENT) f = this.#fragmentFlow(te, deny);
    if (f === undefined) {
      const h = keyHash(te.n, k) ^ (deny ? 1 : 0);
      f = this.#flows.get(h);
      while (
        f !== undefined &&
        !(f.tunnel === te && f.deny === deny && f.v === k.v && f.proto === k.proto &&
          f.cport === k.cport && f.rport === k.rport && sameAddresses(f, k))
      ) f = f.chain;
      if (f === undefined) f = this.#open(h, te, t, deny, now);
    }
    if (k.frag === FIRST_FRAGMENT) this.#noteFragment(te, f);
    if (up) {
      f.bytesUp += p.length;
      f.packetsUp++;
      if (k.flags & FIN) f.ends |= FIN_UP;
    } else {
      f.bytesDown += p.length;
      f.packetsDown++;
      if (k.flags & FIN) f.ends |= FIN_DOWN;
    }
    if (k.flags & RST) f.ends |= RESET;
    f.last = now;
    if (f !== this.#newest) {
      this.#unlink(f);
      this.#append(f);
    }
  }

  /** End the flows idle past their timeout and write their lines. */
  sweep(): void {
    if (this.#fragments.size || this.#oldFragments.size) {
      this.#oldFragments = this.#fragments;
      this.#fragments = new Map();
    }
    const now = this.#now();
    for (let f = this.#oldest; f !== undefined;) {
      const idle = now - f.last;
      if (idle < this.#minIdle) break;
      const newer = f.newer;
      if (idle >= this.#timeout(f)) this.#end(f);
      f = newer;
    }
  }

  /** The tunnel is gone: write and drop its flows. */
  end(tunnelId: string): void {
    const te = this.#tunnels.get(tunnelId);
    if (!te) return;
    for (let f = this.#oldest; f !== undefined;) {
      const newer = f.newer;
      if (f.tunnel === te) this.#end(f);
      f = newer;
    }
    this.#tunnels.delete(tunnelId);
    if (this.#lastEntry === te) this.#lastTunnel = this.#lastEntry = undefined;
  }

  /** Write every open flow; later packets are ignored. */
  close(): void {
    while (this.#oldest !== undefined) this.#end(this.#oldest);
    this.#closed = true;
    this.#tunnels.clear();
    this.#lastTunnel = this.#lastEntry = undefined;
  }

  #entryOf(t: AuditTunnel): TunnelEntry {
    let te = this.#tunnels.get(t.id);
    if (!te) {
      te = new TunnelEntry(this.#nextTunnel++ & 0x3fffffff, t.id, t.id.slice(0, 8));
      this.#tunnels.set(t.id, te);
    }
    this.#lastTunnel = t;
    this.#lastEntry = te;
    return te;
  }

  #open(h: number, te: TunnelEntry, t: AuditTunnel, deny: boolean, now: number): Flow {
    if (this.#size >= this.#limits.maxFlows) {
      this.evicted++;
      this.#end(this.#oldest!);
    }
    const f = new Flow(h, te, t.principal?.arn ?? null, deny, now, this.#key);
    f.chain = this.#flows.get(h);
    this.#flows.set(h, f);
    this.#size++;
    this.#append(f);
    return f;
  }

  #end(f: Flow): void {
    const head = this.#flows.get(f.hash);
    if (head === f) {
      if (f.chain) this.#flows.set(f.hash, f.chain);
      else this.#flows.delete(f.hash);
    } else {
      let g = head;
      while (g !== undefined && g.chain !== f) g = g.chain;
      if (g) g.chain = f.chain;
    }
    this.#unlink(f);
    f.live = false;
    f.chain = undefined;
    this.#size--;
    this.lines++;
    try {
      this.#write(formatLine(f));
    } catch {
      // The sink buffers and never throws by contract; whatever happens there must not break
      // the data path that called us.
    }
  }

  #timeout(f: Flow): number {
    const l = this.#limits;
    if (f.proto === TCP && f.v !== 0) {
      return (f.ends & RESET) || (f.ends & (FIN_UP | FIN_DOWN)) === (FIN_UP | FIN_DOWN)
        ? l.tcpClosedMs
        : l.tcpIdleMs;
    }
    return f.proto === UDP && f.v !== 0 ? l.udpIdleMs : l.otherIdleMs;
  }

  #noteFragment(te: TunnelEntry, f: Flow): void {
    if (this.#fragments.size >= MAX_FRAGMENT_NOTES) {
      this.#oldFragments = this.#fragments;
      this.#fragments = new Map();
    }
    this.#fragments.set(fragmentHash(te.n, this.#key), { flow: f, id: this.#key.fragId });
  }

  /** The flow of a later fragment's first fragment, if still open and judged the same. */
  #fragmentFlow(te: TunnelEntry, deny: boolean): Flow | undefined {
    const h = fragmentHash(te.n, this.#key);
    return this.#follow(this.#fragments.get(h), te, deny) ??
      this.#follow(this.#oldFragments.get(h), te, deny);
  }

  #follow(n: FragmentNote | undefined, te: TunnelEntry, deny: boolean): Flow | undefined {
    if (n === undefined) return undefined;
    const f = n.flow, k = this.#key;
    return n.id === k.fragId && f.live && f.tunnel === te && f.deny === deny && f.v === k.v &&
        f.proto === k.proto && sameAddresses(f, k)
      ? f
      : undefined;
  }

  #unlink(f: Flow): void {
    if (f.older) f.older.newer = f.newer;
    else if (this.#oldest === f) this.#oldest = f.newer;
    if (f.newer) f.newer.older = f.older;
    else if (this.#newest === f) this.#newest = f.older;
    f.older = f.newer = undefined;
  }

  #append(f: Flow): void {
    f.older = this.#newest;
    if (this.#newest) this.#newest.newer = f;
    else this.#oldest = f;
    this.#newest = f;
  }
}
