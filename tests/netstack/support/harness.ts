/**
 * A deterministic bench for the sans-IO TCP core (specs/netstack.md §12.2): a NetStack with a
 * fake clock, fixed ISNs and a FakeTransport; kernel-side segments built with buildTcp (app
 * 10.99.0.1:40000 → remote 10.200.0.5:8080, or fd00::1 → fd00:200::5); everything the stack
 * emits is parsed (and checked to parse and fit the MTU) as it is written.
 */
import assert from "node:assert/strict";
import { FlowTable } from "../../../src/netstack/flow_table.ts";
import { NetStack, type StackLimits } from "../../../src/netstack/stack.ts";
import type { TcpConn, TcpLimits } from "../../../src/netstack/tcp_conn.ts";
import { FakeStream, FakeTransport } from "./fake_transport.ts";
import {
  ACK,
  kernelSegment,
  type KSeg,
  onTuple,
  parseOut,
  RST,
  sameBytes,
  type Seg,
  seqAdd,
  SYN,
  type Tuple,
  TUPLE4,
  TUPLE6,
  tupleOf,
} from "./segments.ts";

export * from "./segments.ts";

// ---- connection records ---------------------------------------------------------------------
// The stack keeps its TcpConns private. Tests that check internal invariants (SND.UNA ≤ SND.NXT,
// RCV.ADV never decreasing) learn them by wrapping FlowTable.set/delete: transparent to every
// other user, it records entries only while a Harness is feeding its stack.
let recording: TcpConn[] | undefined;
const gone = new WeakSet<object>();
const tableSet = FlowTable.prototype.set;
const tableDelete = FlowTable.prototype.delete;
FlowTable.prototype.set = function (this: FlowTable<TcpConn>, f: TcpConn) {
  recording?.push(f);
  gone.delete(f);
  return tableSet.call(this, f);
} as typeof tableSet;
FlowTable.prototype.delete = function (this: FlowTable<TcpConn>, f: TcpConn) {
  gone.add(f);
  return tableDelete.call(this, f);
} as typeof tableDelete;

export interface HarnessOptions {
  family?: 4 | 6;
  mtu?: number;
  /** Our ISN for every connection, or a generator. Default 5000. */
  iss?: number | (() => number);
  limits?: Partial<TcpLimits & StackLimits>;
  /** The stack's emit reports a dropped write (queue full) while this returns true. */
  dropEmit?: (pkt: Uint8Array) => boolean;
  /** NetStackOptions.allowPacket: the team's policy. */
  allowPacket?: (pkt: Uint8Array) => boolean;
}

export class Harness {
  now = 0;
  readonly transport = new FakeTransport();
  readonly stack: NetStack;
  readonly mtu: number;
  readonly tuple: Tuple;
  /** Every packet emitted (and accepted by emit), parsed, in order. */
  readonly log: Seg[] = [];
  /** Every connection record the stack ever created, oldest first. */
  readonly conns: TcpConn[] = [];
  /** Non-RST packets emitted for a tuple that had no entry in the table at the time (§12.3). */
  readonly orphans: Seg[] = [];
  #unread: Seg[] = [];

  constructor(o: HarnessOptions = {}) {
    this.mtu = o.mtu ?? 1400;
    this.tuple = o.family === 6 ? TUPLE6 : TUPLE4;
    const iss = o.iss ?? 5000;
    this.stack = new NetStack({
      transport: this.transport,
      mtu: this.mtu,
      now: () => this.now,
      iss: typeof iss === "number" ? () => iss : iss,
      limits: o.limits,
      ...(o.allowPacket ? { allowPacket: o.allowPacket } : {}),
      emit: (pkt) => {
        const seg = parseOut(pkt, this.mtu);
        if (seg.proto === 6 && !(seg.flags & RST) && !this.conn(tupleOf(seg))) {
          this.orphans.push(seg);
        }
        if (o.dropEmit?.(pkt)) return false;
        this.log.push(seg);
        this.#unread.push(seg);
        return true;
      },
    });
  }

  /** A kernel segment on this harness's tuple (or `t`). */
  seg(s: KSeg, t: Tuple = this.tuple): Uint8Array {
    return kernelSegment(t, s);
  }

  /** Feed packets as one batch (no flush). */
  input(...pkts: Uint8Array[]): void {
    recording = this.conns;
    try {
      for (const p of pkts) this.stack.input(p);
    } finally {
      recording = undefined;
    }
  }

  /** One batch, then the flush: returns what the stack emitted since the last read. */
  send(...pkts: Uint8Array[]): Seg[] {
    this.input(...pkts);
    return this.flush();
  }

  flush(): Seg[] {
    this.stack.flush();
    return this.take();
  }

  /** Emitted since the last read (optionally only `t`'s). */
  take(t?: Tuple): Seg[] {
    const out = this.#unread;
    this.#unread = [];
    return t ? out.filter((s) => onTuple(s, t)) : out;
  }

  /** Move the clock by `ms` and run the timers (tick flushes). */
  advance(ms: number): Seg[] {
    this.now += ms;
    this.stack.tick();
    return this.take();
  }

  /** Step the clock to each deadline until `until` (inclusive), collecting what went out. */
  runUntil(until: number): Seg[] {
    for (;;) {
      const d = this.stack.nextDeadline();
      if (d === undefined || d > until) break;
      this.now = Math.max(this.now, d);
      this.stack.tick();
    }
    this.now = Math.max(this.now, until);
    return this.take();
  }

  /** The live record for `t` (default tuple), or undefined. */
  conn(t: Tuple = this.tuple): TcpConn | undefined {
    for (let i = this.conns.length - 1; i >= 0; i--) {
      const c = this.conns[i];
      if (gone.has(c)) continue;
      if (
        c.family === t.family && c.appPort === t.appPort && c.remotePort === t.remotePort &&
        sameBytes(c.app, t.app) && sameBytes(c.remote, t.remote)
      ) return c;
    }
    return undefined;
  }

  /** Records still in the stack's table. */
  live(): TcpConn[] {
    return this.conns.filter((c) => !gone.has(c));
  }

  /**
   * SYN (IRS `irs`), open ok, SYN-ACK, ACK: an ESTABLISHED connection. The kernel's next
   * sequence number is then irs+1 and ours iss+1.
   */
  establish(o: EstablishOptions = {}): Established {
    const t = o.tuple ?? this.tuple;
    const irs = o.irs ?? 1000;
    const wscale = o.wscale === undefined ? 7 : o.wscale;
    const quiet = this.send(this.seg({
      flags: SYN,
      seq: irs,
      window: o.synWindow ?? 64240,
      mss: o.mss === undefined ? 1460 : o.mss ?? undefined,
      wscale: wscale ?? undefined,
    }, t));
    assert.deepEqual(quiet, [], "nothing goes out before the open");
    const stream = this.transport.last;
    stream.resolve("ok");
    const synAck = this.flush();
    assert.equal(synAck.length, 1, "one SYN-ACK");
    assert.equal(synAck[0].flags, SYN | ACK);
    const iss = synAck[0].seq;
    const after = this.send(this.seg({
      flags: ACK,
      seq: seqAdd(irs, 1),
      ack: seqAdd(iss, 1),
      window: o.window ?? 502,
    }, t));
    assert.deepEqual(after, [], "the handshake's ACK draws nothing");
    const conn = this.conn(t)!;
    assert.equal(conn.state, "established");
    return { stream, irs, iss, conn, synAck: synAck[0], tuple: t, kseq: seqAdd(irs, 1) };
  }
}

export interface EstablishOptions {
  tuple?: Tuple;
  irs?: number;
  /** The kernel's WS shift (default 7); null: no WS option. */
  wscale?: number | null;
  /** MSS option (default 1460); null: none. */
  mss?: number | null;
  synWindow?: number;
  /** The window field of the handshake's ACK (default 502, i.e. 64256 at shift 7). */
  window?: number;
}

export interface Established {
  stream: FakeStream;
  irs: number;
  iss: number;
  conn: TcpConn;
  synAck: Seg;
  tuple: Tuple;
  /** The kernel's next sequence number right after the handshake (irs+1). */
  kseq: number;
}
