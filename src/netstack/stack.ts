/**
 * The agentless endpoint on the tunnel interface (DESIGN §9, specs/netstack.md): IP packets from
 * the kernel in, packets for the kernel and remote-stream calls out. TCP is terminated here, one
 * remote stream per connection; UDP DNS to the VPC resolver is relayed as DNS over TCP; anything
 * else is answered at once with ICMP "administratively prohibited" so programs fail fast.
 *
 * Sans-IO apart from the injected transport: the driver feeds a batch of packets through
 * `input`, then calls `flush`; it calls `tick` when `nextDeadline` passes, and flushes soon after
 * `wake` (stream events arrive between batches).
 */
import { DnsRelay } from "./dns_relay.ts";
import { FlowTable } from "./flow_table.ts";
import {
  addrText,
  buildUdp,
  buildUnreachable,
  IPPROTO_TCP,
  IPPROTO_UDP,
  newParsed,
  parse,
  type ParsedPacket,
  RST,
  SYN,
} from "./packet.ts";
import { ConnHost, DEFAULT_LIMITS, TcpConn, type TcpLimits, type TcpState } from "./tcp_conn.ts";
import { TokenBucket } from "./limits.ts";
import { TimerHeap } from "./timer_heap.ts";
import { buildTcp } from "./packet.ts";
import type { Destination, RemoteStream, RemoteStreamEvents, StreamTransport } from "./types.ts";

export interface StackLimits {
  /** Connections in every state, tombstones included (§9). */
  maxConnections: number;
  /** Opens under way, in total and per destination (§9). */
  maxPending: number;
  maxPendingPerDestination: number;
  /** ICMP errors: a token bucket (§9). */
  icmpPerSecond: number;
  icmpBurst: number;
}

export const DEFAULT_STACK_LIMITS: StackLimits = {
  maxConnections: 4096,
  maxPending: 256,
  // The spec's 32 dropped SYNs of ordinary bursts (a pool of 100 DB connections) even to a
  // healthy pooled destination, costing each a 1–3 s kernel retry; dead destinations are
  // answered from the session pool's negative caches instead.
  maxPendingPerDestination: 128,
  icmpPerSecond: 1000,
  icmpBurst: 50,
};

export interface NetStackOptions {
  transport: StreamTransport;
  mtu: number;
  /** Write one packet to the kernel; false when it was dropped (queue full). */
  emit(packet: Uint8Array): boolean;
  now?: () => number;
  /** Output became due outside an input batch: flush soon (e.g. in a microtask). */
  wake?: () => void;
  /** Which sources to serve: this host's addresses (§9). Absent: any unicast source. */
  allowSource?: (address: Uint8Array) => boolean;
  /**
   * The team's policy for this laptop (issue 15, agentless: src/policy/): false refuses the
   * packet with ICMP administratively prohibited, as the agent would. Absent: everything passes.
   */
  allowPacket?: (packet: Uint8Array) => boolean;
  /** VPC resolver addresses: UDP to their port 53 is relayed as DNS over TCP (§10.3). */
  resolvers?: Uint8Array[];
  /** Carries the DNS relay's streams (default: `transport`), e.g. to try fallback upstreams. */
  dnsTransport?: StreamTransport;
  limits?: Partial<TcpLimits & StackLimits>;
  /** Initial sequence numbers; random by default (§4.1). Tests fix them. */
  iss?: () => number;
}

export interface StackStats {
  /** Open connections by state. */
  connections: Partial<Record<TcpState, number>>;
  /** Counters: drops by reason, resets, refusals, ICMP errors sent, DNS, … */
  counters: Record<string, number>;
  dns: DnsRelay["stats"] & { inFlight: number };
}

export class NetStack {
  #o: NetStackOptions;
  #lim: TcpLimits & StackLimits;
  #now: () => number;
  #table = new FlowTable<TcpConn>();
  #timers = new TimerHeap<TcpConn>();
  #dirty = new Set<TcpConn>();
  #counters = new Map<string, number>();
  #pending = 0;
  #pendingByDst = new Map<string, number>();
  #p: ParsedPacket = newParsed();
  #icmp: TokenBucket;
  #dns?: DnsRelay;
  /** The relay's next deadline, as its last tick said (its tick expires, so call it once). */
  #dnsDeadline?: number;
  #resolvers: Uint8Array[];
  #inBatch = false;
  #host: ConnHost;
  #closed = false;

  constructor(o: NetStackOptions) {
    this.#o = o;
    this.#lim = { ...DEFAULT_LIMITS, ...DEFAULT_STACK_LIMITS, ...o.limits, mtu: o.mtu };
    this.#now = o.now ?? (() => performance.now());
    this.#icmp = new TokenBucket(this.#lim.icmpPerSecond, this.#lim.icmpBurst, this.#now());
    this.#resolvers = o.resolvers ?? [];
    if (this.#resolvers.length > 0) {
      this.#dns = new DnsRelay({
        transport: o.dnsTransport ?? o.transport,
        mtu: o.mtu,
        now: this.#now,
        reply: (r) => {
          this.#count("dns-answer");
          o.emit(buildUdp(r.family, r.src, r.dst, r.sport, r.dport, r.payload));
        },
      });
    }
    const randomIss = () => crypto.getRandomValues(new Uint32Array(1))[0];
    this.#host = {
      now: this.#now,
      emit: (pkt) => o.emit(pkt),
      arm: (c, at) => (at === undefined ? this.#timers.cancel(c) : this.#timers.schedule(c, at)),
      dirty: (c) => {
        this.#dirty.add(c);
        if (!this.#inBatch) o.wake?.();
      },
      remove: (c) => this.#forget(c),
      open: (dst, events) => this.#open(dst, events),
      count: (what) => this.#count(what),
      iss: o.iss ?? randomIss,
    };
  }

  /** One packet from the kernel. The bytes are only read during the call. */
  input(pkt: Uint8Array): void {
    if (this.#closed) return;
    this.#inBatch = true;
    try {
      const p = this.#p;
      const drop = parse(pkt, p);
      if (drop !== null) {
        this.#count(`drop-${drop}`);
        return;
      }
      if (this.#o.allowSource && !this.#o.allowSource(p.src)) {
        this.#count("drop-source-not-ours");
        return;
      }
      if (this.#o.allowPacket && !this.#o.allowPacket(pkt)) {
        this.#unreachable(pkt, p, "policy");
        return;
      }
      if (p.proto === IPPROTO_TCP) this.#tcp(p, pkt);
      else if (p.proto === IPPROTO_UDP && p.dport === 53 && this.#isResolver(p.dst)) {
        const taken = this.#dns!.query({
          family: p.family,
          client: p.src.slice(),
          clientPort: p.sport,
          resolver: p.dst.slice(),
          payload: pkt.subarray(p.data, p.data + p.dataLen),
        });
        if (taken) {
          this.#count("dns-query");
          this.#dnsDeadline = this.#dns!.tick(); // a new query may bring the deadline forward
        } else this.#unreachable(pkt, p, "dns-rejected");
      } else this.#unreachable(pkt, p, p.proto === IPPROTO_UDP ? "udp" : "other");
    } finally {
      this.#inBatch = false;
    }
  }

  /** Send what the batch made due: one ACK per connection, data, FINs (§6). */
  flush(): void {
    if (this.#dirty.size === 0) return;
    const conns = [...this.#dirty];
    this.#dirty.clear();
    for (const c of conns) c.output();
  }

  /** Run the timers that are due. */
  tick(): void {
    const now = this.#now();
    this.#inBatch = true;
    try {
      for (const c of this.#timers.due(now)) c.onTimer(now);
      if (this.#dns) this.#dnsDeadline = this.#dns.tick();
    } finally {
      this.#inBatch = false;
    }
    this.flush();
  }

  /** When `tick` should next run (same clock as `now`), or undefined. */
  nextDeadline(): number | undefined {
    const t = this.#timers.peek();
    const d = this.#dnsDeadline;
    if (t === undefined) return d;
    return d === undefined ? t : Math.min(t, d);
  }

  stats(): StackStats {
    const connections: Partial<Record<TcpState, number>> = {};
    for (const c of this.#table.values()) connections[c.state] = (connections[c.state] ?? 0) + 1;
    return {
      connections,
      counters: Object.fromEntries(this.#counters),
      dns: {
        ...(this.#dns?.stats ??
          { queries: 0, answers: 0, truncated: 0, servfail: 0, timeouts: 0, rejected: 0 }),
        inFlight: this.#dns?.inFlight ?? 0,
      },
    };
  }

  /** The most remote bytes one connection holds for the kernel (bounded by sndCap + a read). */
  maxSendQueued(): number {
    let m = 0;
    for (const c of this.#table.values()) m = Math.max(m, c.sendQueued);
    return m;
  }

  get connectionCount(): number {
    return this.#table.size;
  }

  /** Reset every connection (the app sees ECONNRESET at once) and stop. */
  close(): void {
    if (this.#closed) return;
    this.#inBatch = true;
    for (const c of [...this.#table.values()]) c.shutdown();
    this.#inBatch = false;
    this.flush();
    this.#dns?.close();
    this.#closed = true;
  }

  // ---- TCP dispatch ------------------------------------------------------------------------

  #tcp(p: ParsedPacket, pkt: Uint8Array): void {
    let c = this.#table.get(p.family, p.src, p.sport, p.dst, p.dport);
    const ctl = p.flags & 0x17;
    if (c && c.state === "time-wait" && ctl === SYN) {
      // A new incarnation replaces the tombstone (§3.2).
      this.#forget(c);
      c = undefined;
    }
    if (c) {
      c.segment(p, pkt);
      return;
    }
    if (ctl !== SYN) {
      if (!(p.flags & RST)) this.#resetUnknown(p);
      return;
    }
    this.#newConnection(p);
  }

  #newConnection(p: ParsedPacket): void {
    const dstKey = `${addrText(p.dst)}|${p.dport}`;
    const perDst = this.#pendingByDst.get(dstKey) ?? 0;
    if (
      this.#table.size >= this.#lim.maxConnections || this.#pending >= this.#lim.maxPending ||
      perDst >= this.#lim.maxPendingPerDestination
    ) {
      // Transient overload: drop silently, the kernel retries the SYN in 1 s (§9).
      this.#count("syn-over-limit");
      return;
    }
    const dst: Destination = { family: p.family, host: addrText(p.dst), port: p.dport };
    const c = new TcpConn(
      this.#host,
      this.#lim,
      p.family,
      p.src.slice(),
      p.sport,
      p.dst.slice(),
      p.dport,
      dst,
    );
    this.#table.set(c);
    this.#pending++;
    this.#pendingByDst.set(dstKey, perDst + 1);
    this.#count("syn");
    c.start(p);
  }

  #open(dst: Destination, events: RemoteStreamEvents): RemoteStream {
    // Pending accounting ends with the open's result, whatever it is.
    const key = `${dst.host}|${dst.port}`;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      this.#pending--;
      const n = (this.#pendingByDst.get(key) ?? 1) - 1;
      if (n <= 0) this.#pendingByDst.delete(key);
      else this.#pendingByDst.set(key, n);
    };
    const wrap = (fn: () => void) => {
      const was = this.#inBatch;
      this.#inBatch = true;
      try {
        fn();
      } finally {
        this.#inBatch = was;
      }
      if (!was && this.#dirty.size > 0) this.#o.wake?.();
    };
    const stream = this.#o.transport.open(dst, {
      opened: (r) => {
        settle();
        wrap(() => events.opened(r));
      },
      data: (chunk) => wrap(() => events.data(chunk)),
      end: () => wrap(() => events.end()),
      aborted: (reason) => {
        settle();
        wrap(() => events.aborted(reason));
      },
      writable: () => wrap(() => events.writable()),
    });
    return {
      write: (d) => stream.write(d),
      writable: () => stream.writable(),
      close: () => stream.close(),
      abort: () => {
        settle();
        stream.abort();
      },
      pause: (paused) => stream.pause(paused),
    };
  }

  #forget(c: TcpConn): void {
    this.#table.delete(c);
    this.#timers.cancel(c);
    this.#dirty.delete(c);
  }

  /** RFC 9293 §3.5.2: segments for tuples we do not know get a reset (§3.5). */
  #resetUnknown(p: ParsedPacket): void {
    this.#count("rst-unknown");
    const ack = p.flags & 0x10;
    const segLen = p.dataLen + (p.flags & SYN ? 1 : 0) + (p.flags & 0x01 ? 1 : 0);
    this.#o.emit(buildTcp({
      family: p.family,
      src: p.dst,
      dst: p.src,
      sport: p.dport,
      dport: p.sport,
      seq: ack ? p.ack : 0,
      ack: ack ? 0 : (p.seq + segLen) >>> 0,
      flags: ack ? RST : RST | 0x10,
      window: 0,
    }));
  }

  #isResolver(a: Uint8Array): boolean {
    if (!this.#dns) return false;
    outer: for (const r of this.#resolvers) {
      if (r.length !== a.length) continue;
      for (let i = 0; i < r.length; i++) if (r[i] !== a[i]) continue outer;
      return true;
    }
    return false;
  }

  /** ICMP administratively prohibited, rate-limited (§10). */
  #unreachable(pkt: Uint8Array, p: ParsedPacket, what: string): void {
    this.#count(`refused-${what}`);
    const out = buildUnreachable(pkt, p);
    if (!out) return;
    if (!this.#icmp.take(this.#now())) {
      this.#count("icmp-rate-limited");
      return;
    }
    this.#count("icmp-unreachable");
    this.#o.emit(out);
  }

  #count(what: string): void {
    this.#counters.set(what, (this.#counters.get(what) ?? 0) + 1);
  }
}
