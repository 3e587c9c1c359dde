/**
 * UDP DNS → DNS over TCP (specs/netstack.md §10.3). Queries an app sends to a resolver address
 * are carried over one pooled TCP stream per resolver, each under an ID unique on that stream,
 * and the answers are sent back as UDP from the address the query went to. Answers too big for
 * the client's UDP buffer come back truncated (TC), so the client asks again over TCP, which the
 * netstack carries like any other connection.
 */

import { frame, FrameReader } from "./dns_framing.ts";
import { addrText } from "./packet.ts";
import { getId, isRelayableQuery, maxUdpSize, servfail, setId, truncate } from "./dns_message.ts";
import type {
  Destination,
  Family,
  RemoteStream,
  RemoteStreamEvents,
  StreamTransport,
} from "./types.ts";

export interface DnsQuery {
  family: Family;
  /** 4 or 16 address bytes. */
  client: Uint8Array;
  clientPort: number;
  /** The exact address the query went to; the reply comes from it. */
  resolver: Uint8Array;
  /** A view; the relay copies what it keeps. */
  payload: Uint8Array;
}

export interface DnsReply {
  family: Family;
  /** The resolver address the query went to. */
  src: Uint8Array;
  /** The client address. */
  dst: Uint8Array;
  sport: 53;
  dport: number;
  payload: Uint8Array;
}

export interface DnsRelayOptions {
  transport: StreamTransport;
  /** The TUN MTU; caps the UDP answer size. */
  mtu: number;
  reply(r: DnsReply): void;
  /** Queries in flight over all resolvers before new ones get SERVFAIL at once (§9). */
  maxInFlight?: number;
  /** Per query; the glibc resolver's default. After it the state is dropped silently. */
  timeoutMs?: number;
  /** An upstream stream with nothing in flight is closed after this long. */
  idleMs?: number;
  now?: () => number;
}

export interface DnsRelayStats {
  /** Queries taken (`query()` returned true). */
  queries: number;
  /** Resolver answers passed on, truncated or not. */
  answers: number;
  truncated: number;
  /** SERVFAILs we made up: overload, a stream failing twice, a garbage answer. */
  servfail: number;
  timeouts: number;
  /** Payloads that were not a relayable query (`query()` returned false). */
  rejected: number;
}

/** What a query costs us while it waits: enough to answer, resend or time it out. */
interface Pending {
  family: Family;
  client: Uint8Array;
  clientPort: number;
  resolver: Uint8Array;
  key: string;
  origId: number;
  maxUdp: number;
  deadline: number;
  /** The framed query; its ID field holds the ID of the stream it is on now. */
  framed: Uint8Array;
  /** Streams it has been given to; after 2 a failure means SERVFAIL. */
  attempts: number;
  up: Upstream | undefined;
  id: number;
  /** When it was written, or -1 while queued. */
  sentAt: number;
}

const MAX_ATTEMPTS = 2;
const ID_SPACE = 0x10000;

/** What an upstream stream needs from its relay. */
interface UpstreamHost {
  transport: StreamTransport;
  now(): number;
  answer(up: Upstream, msg: Uint8Array): void;
  failed(up: Upstream): void;
}

/** One pooled TCP stream to `resolver:53`: ID allocation, write queue, frame reassembly. */
class Upstream {
  readonly byId = new Map<number, Pending>();
  lastActive: number;
  /** When bytes last came from the resolver. */
  lastData = -Infinity;
  dead = false;
  #queue: Pending[] = [];
  #stream: RemoteStream | undefined;
  #started = false;
  #open = false;
  #closeOnReturn = false;
  #nextId = Math.floor(Math.random() * ID_SPACE);
  readonly #reader = new FrameReader();

  constructor(readonly key: string, readonly dst: Destination, readonly host: UpstreamHost) {
    this.lastActive = host.now();
  }

  /** Take a query under a fresh ID; false when every ID on this stream is taken. */
  add(p: Pending): boolean {
    if (this.byId.size >= ID_SPACE) return false;
    // Sequential IDs put the longest possible gap before an ID is reused, so a late answer to a
    // timed-out query is unlikely to meet a new query under the same ID.
    let id = this.#nextId;
    while (this.byId.has(id)) id = (id + 1) % ID_SPACE;
    this.#nextId = (id + 1) % ID_SPACE;
    p.up = this;
    p.id = id;
    p.sentAt = -1;
    p.attempts++;
    setId(p.framed.subarray(2), id);
    this.byId.set(id, p);
    if (this.#queue.length > 2 * this.byId.size + 16) {
      this.#queue = this.#queue.filter((q) => this.#owns(q));
    }
    this.#queue.push(p);
    this.#flush();
    return true;
  }

  /** Forget a query (timed out); a late answer to it is then ignored. */
  drop(p: Pending): void {
    if (this.#owns(p)) this.byId.delete(p.id);
  }

  /**
   * Open the stream, once. Separate from `add` so that a transport failing inside `open()` finds
   * the queries already here.
   */
  start(): void {
    if (this.#started || this.dead) return;
    this.#started = true;
    const events: RemoteStreamEvents = {
      opened: (result) => {
        if (this.dead) return;
        if (result !== "ok") return this.#fail(false);
        this.#open = true;
        this.#flush();
      },
      data: (chunk) => {
        if (this.dead) return;
        this.lastActive = this.lastData = this.host.now();
        for (const msg of this.#reader.push(chunk)) {
          if (this.dead) return;
          this.host.answer(this, msg);
        }
      },
      end: () => {
        if (!this.dead) this.#fail(true);
      },
      aborted: () => {
        if (!this.dead) this.#fail(false);
      },
      writable: () => this.#flush(),
    };
    this.#stream = this.host.transport.open(this.dst, events);
    if (this.#closeOnReturn) this.#stream.close();
    this.#flush();
  }

  /** Close the stream as no longer wanted; anything still in flight is forgotten. */
  close(): void {
    if (this.dead) return;
    this.dead = true;
    this.#release();
  }

  /** Give up on a stream that has gone quiet; its queries are resent as after a failure. */
  abort(): void {
    if (this.dead) return;
    this.#stream?.abort();
    this.#fail(false);
  }

  #owns(p: Pending): boolean {
    return p.up === this && this.byId.get(p.id) === p;
  }

  #flush(): void {
    const s = this.#stream;
    if (!this.#open || !s || this.dead) return;
    while (this.#queue.length > 0 && s.writable()) {
      const p = this.#queue.shift()!;
      if (!this.#owns(p)) continue;
      s.write(p.framed);
      p.sentAt = this.lastActive = this.host.now();
    }
  }

  #release(): void {
    if (this.#stream) this.#stream.close();
    else this.#closeOnReturn = this.#started;
  }

  #fail(ended: boolean): void {
    this.dead = true;
    // A remote EOF still leaves our side of the stream to close; an abort or a failed open has
    // already torn it down.
    if (ended) this.#release();
    this.host.failed(this);
  }
}

export class DnsRelay {
  readonly stats: DnsRelayStats = {
    queries: 0,
    answers: 0,
    truncated: 0,
    servfail: 0,
    timeouts: 0,
    rejected: 0,
  };
  /** The TUN MTU; new queries pick up a change. */
  mtu: number;
  readonly #o: DnsRelayOptions;
  readonly #maxInFlight: number;
  readonly #timeoutMs: number;
  readonly #idleMs: number;
  readonly #now: () => number;
  /** Every query in flight. Insertion order is deadline order (a resend keeps its deadline). */
  readonly #pending = new Set<Pending>();
  readonly #pool = new Map<string, Upstream>();
  readonly #host: UpstreamHost;
  #closed = false;

  constructor(o: DnsRelayOptions) {
    this.#o = o;
    this.mtu = o.mtu;
    this.#maxInFlight = o.maxInFlight ?? 1024;
    this.#timeoutMs = o.timeoutMs ?? 5000;
    this.#idleMs = o.idleMs ?? 30000;
    this.#now = o.now ?? Date.now;
    this.#host = {
      transport: o.transport,
      now: this.#now,
      answer: (up, msg) => this.#answer(up, msg),
      failed: (up) => this.#failed(up),
    };
  }

  get inFlight(): number {
    return this.#pending.size;
  }

  /**
   * false: not a query we relay (the caller answers ICMP admin-prohibited). true: taken (answered
   * later, or dropped on timeout). Call `tick()` afterwards: the query may bring the next
   * deadline forward.
   */
  query(q: DnsQuery): boolean {
    const len = q.family === 4 ? 4 : 16;
    if (
      q.client.length !== len || q.resolver.length !== len ||
      !Number.isInteger(q.clientPort) || q.clientPort < 0 || q.clientPort > 0xffff ||
      !isRelayableQuery(q.payload)
    ) {
      this.stats.rejected++;
      return false;
    }
    if (this.#closed) return true;
    this.stats.queries++;
    const key = `${q.family}/${addrText(q.resolver)}`;
    const p: Pending = {
      family: q.family,
      client: q.client.slice(),
      clientPort: q.clientPort,
      resolver: q.resolver.slice(),
      key,
      origId: getId(q.payload)!,
      maxUdp: maxUdpSize(q.payload, this.mtu, q.family),
      deadline: this.#now() + this.#timeoutMs,
      framed: frame(q.payload),
      attempts: 0,
      up: undefined,
      id: -1,
      sentAt: -1,
    };
    if (this.#pending.size >= this.#maxInFlight) {
      this.#servfail(p);
      return true;
    }
    this.#pending.add(p);
    this.#dispatch([p]);
    return true;
  }

  /**
   * Expire timed-out queries and close idle upstream streams; returns the next deadline (ms, on
   * the `now()` clock) or undefined. Call when that deadline passes and after each `query()`;
   * calling it early is harmless.
   */
  tick(): number | undefined {
    const now = this.#now();
    for (const p of this.#pending) {
      if (p.deadline > now) break;
      this.#pending.delete(p);
      this.stats.timeouts++;
      const up = p.up;
      up?.drop(p);
      // Written and not a byte back since: more likely a stuck stream than one slow name. Retire
      // it so the client's retry does not land on it too.
      if (up && !up.dead && p.sentAt >= 0 && up.lastData < p.sentAt) up.abort();
    }
    let next: number | undefined;
    for (const p of this.#pending) {
      next = p.deadline;
      break;
    }
    for (const up of [...this.#pool.values()]) {
      if (up.byId.size > 0) continue;
      const at = up.lastActive + this.#idleMs;
      if (at <= now) {
        this.#pool.delete(up.key);
        up.close();
      } else if (next === undefined || at < next) next = at;
    }
    return next;
  }

  /** Close every upstream stream and forget every query; later queries are dropped. */
  close(): void {
    this.#closed = true;
    this.#pending.clear();
    for (const up of this.#pool.values()) up.close();
    this.#pool.clear();
  }

  /** Put queries on the resolver's current stream (opening one if needed). */
  #dispatch(ps: Pending[]): void {
    const started = new Set<Upstream>();
    for (const p of ps) {
      let up = this.#pool.get(p.key);
      if (!up) {
        const dst = { family: p.family, host: addrText(p.resolver), port: 53 };
        up = new Upstream(p.key, dst, this.#host);
        this.#pool.set(p.key, up);
      }
      if (up.add(p)) started.add(up);
      else this.#servfail(p);
    }
    // Opened only now, so a transport that fails inside open() already sees every query.
    for (const up of started) up.start();
  }

  #answer(up: Upstream, msg: Uint8Array): void {
    const id = getId(msg);
    const p = id === undefined ? undefined : up.byId.get(id);
    if (!p) return; // late (timed out) or unasked for
    up.byId.delete(p.id);
    up.lastActive = this.#now();
    if (!this.#pending.delete(p)) return;
    if (msg.length < 12) return this.#servfail(p);
    setId(msg, p.origId);
    let out: Uint8Array | undefined = msg;
    if (msg.length > p.maxUdp) {
      out = truncate(msg);
      if (!out || out.length > p.maxUdp) return this.#servfail(p);
      this.stats.truncated++;
    }
    this.stats.answers++;
    this.#send(p, out);
  }

  #failed(up: Upstream): void {
    if (this.#pool.get(up.key) === up) this.#pool.delete(up.key);
    const again: Pending[] = [];
    for (const p of up.byId.values()) {
      if (!this.#pending.has(p)) continue;
      if (p.attempts < MAX_ATTEMPTS) again.push(p);
      else this.#servfail(p);
    }
    up.byId.clear();
    if (again.length > 0) this.#dispatch(again);
  }

  /** Answer SERVFAIL and forget the query. */
  #servfail(p: Pending): void {
    this.#pending.delete(p);
    const out = servfail(p.framed.subarray(2));
    if (!out) return;
    setId(out, p.origId);
    this.stats.servfail++;
    this.#send(p, out);
  }

  #send(p: Pending, payload: Uint8Array): void {
    const { family, resolver: src, client: dst, clientPort: dport } = p;
    this.#o.reply({ family, src, dst, sport: 53, dport, payload });
  }
}
