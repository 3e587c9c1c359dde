/**
 * A scripted "kernel" for the TCP tests: the app side of one connection, reduced to what the
 * stack under test relies on. It opens with a SYN, sends its bytes in segments within the
 * window we advertise, ACKs every segment it gets (a duplicate ACK for a gap), retransmits from
 * SND.UNA after a quiet RTO, probes our zero window at SND.UNA−1 like Linux, and ends with a FIN
 * when asked. It also checks us: data beyond the window it advertised, or retransmitted bytes
 * that differ from the first copy, are recorded as violations.
 */
import {
  ACK,
  FIN,
  type Harness,
  kernelSegment,
  onTuple,
  PSH,
  RST,
  type Seg,
  seqAdd,
  SYN,
  type Tuple,
} from "./harness.ts";

const diff = (a: number, b: number) => (a - b) | 0;

export interface PeerOptions {
  tuple: Tuple;
  /** The kernel's ISN (our IRS). */
  isn: number;
  /** What the app writes. */
  data: Uint8Array;
  /** Its MSS option (default 1460). */
  mss?: number;
  /** Its WS shift (default 7); null: no WS option. */
  wscale?: number | null;
  /** Its receive buffer: the app reads at once, so the window stays this size (256 KiB). */
  rcvBuf?: number;
  rtoMs?: number;
  /** At most this many new bytes per `output` call (default: all the window allows). */
  burst?: number;
  /** Send a FIN once every byte is out. */
  close?: boolean;
}

export class KernelPeer {
  readonly t: Tuple;
  state: "init" | "syn-sent" | "open" | "reset" = "init";
  readonly violations: string[] = [];
  sndUna = 0;
  sndNxt = 0;
  sndMax = 0;
  rcvNxt = 0;
  irs = 0;
  /** Our bytes, in order, as they arrived. */
  #got = new Uint8Array(1024);
  gotLen = 0;
  finIn = false;
  /** While false the app reads nothing: the window closes as our bytes pile up. */
  #reading = true;
  #unread = 0;
  #o: PeerOptions;
  #smss = 536;
  #ourShift = 0;
  #myShift = 0;
  /** The right edge of the window we (the stack) last advertised, in the kernel's sequence. */
  #sendEdge = 0;
  /** The right edge the kernel last advertised, in our sequence. */
  #advEdge = 0;
  #ackDue = false;
  #lastProgress = 0;
  #lastProbe = -Infinity;

  constructor(o: PeerOptions) {
    this.#o = o;
    this.t = o.tuple;
  }

  get received(): Uint8Array {
    return this.#got.subarray(0, this.gotLen);
  }

  /** Every byte sent and acknowledged (and the FIN, when asked to close). */
  get allAcked(): boolean {
    const end = seqAdd(this.#o.isn, 1 + this.#o.data.length + (this.#o.close ? 1 : 0));
    return this.state === "open" && this.sndUna === end;
  }

  #window(): number {
    const free = Math.max(0, (this.#o.rcvBuf ?? 256 * 1024) - this.#unread);
    return Math.min(65535, Math.ceil(free / 2 ** this.#myShift)); // rounded up, as Linux does
  }

  /** The app closes: a FIN follows its last byte. */
  close(): void {
    this.#o.close = true;
  }

  /** The app stops reading (false) or reads everything and keeps reading (true). */
  setReading(on: boolean): void {
    this.#reading = on;
    if (on && this.#unread > 0) {
      this.#unread = 0;
      this.#ackDue = true; // the window update
    }
  }

  #seg(flags: number, seq: number, payload?: Uint8Array, syn = false): Uint8Array {
    const window = syn ? Math.min(65535, this.#o.rcvBuf ?? 65535) : this.#window();
    if (!syn && flags & ACK) {
      const edge = seqAdd(this.rcvNxt, window * 2 ** this.#myShift);
      if (diff(edge, this.#advEdge) > 0) this.#advEdge = edge;
    }
    return kernelSegment(this.t, {
      flags,
      seq,
      ack: flags & ACK ? this.rcvNxt : 0,
      window,
      payload,
      mss: syn ? this.#o.mss ?? 1460 : undefined,
      wscale: syn && this.#o.wscale !== null ? this.#o.wscale ?? 7 : undefined,
    });
  }

  /** A segment from the stack; segments of other tuples are ignored. */
  receive(s: Seg, now: number): void {
    if (!onTuple(s, this.t) || this.state === "reset" || this.state === "init") return;
    if (s.flags & RST) {
      this.state = "reset";
      return;
    }
    if (this.state === "syn-sent") {
      if ((s.flags & (SYN | ACK)) !== (SYN | ACK) || s.ack !== seqAdd(this.#o.isn, 1)) return;
      this.irs = s.seq;
      this.rcvNxt = seqAdd(s.seq, 1);
      const ws = this.#o.wscale !== null && s.wscale >= 0;
      this.#ourShift = ws ? s.wscale : 0;
      this.#myShift = ws ? this.#o.wscale ?? 7 : 0;
      this.#smss = Math.min(s.mss > 0 ? s.mss : 536, this.#o.mss ?? 1460);
      this.sndUna = this.sndNxt = this.sndMax = seqAdd(this.#o.isn, 1);
      this.#sendEdge = seqAdd(this.sndUna, s.window); // a SYN's window is never scaled
      this.#advEdge = this.rcvNxt;
      this.state = "open";
      this.#ackDue = true;
      this.#lastProgress = now;
      return;
    }
    if (s.flags & SYN) {
      this.#ackDue = true; // a retransmitted SYN-ACK: our ACK was lost
      return;
    }
    if (s.flags & ACK) {
      if (diff(s.ack, this.sndUna) > 0 && diff(s.ack, this.sndMax) <= 0) {
        this.sndUna = s.ack;
        this.#lastProgress = now;
        if (diff(this.sndNxt, this.sndUna) < 0) this.sndNxt = this.sndUna;
      }
      if (diff(s.ack, this.sndUna) >= 0) {
        this.#sendEdge = seqAdd(s.ack, s.window * 2 ** this.#ourShift);
      }
    }
    this.#data(s);
  }

  #data(s: Seg): void {
    const fin = (s.flags & FIN) !== 0;
    const len = s.payload.length;
    if (len === 0 && !fin) {
      if (s.seq === seqAdd(this.rcvNxt, -1)) this.#ackDue = true; // a zero-window probe
      return;
    }
    const off = diff(this.rcvNxt, s.seq);
    this.#ackDue = true;
    if (off < 0) return; // out of order: the duplicate ACK asks for the gap
    const base = diff(s.seq, seqAdd(this.irs, 1)); // stream offset of s.seq
    const overlap = Math.min(off, len);
    for (let i = 0; i < overlap; i++) {
      if (base + i < this.gotLen && this.#got[base + i] !== s.payload[i]) {
        this.violations.push(`retransmitted byte ${base + i} differs`);
        break;
      }
    }
    if (off > len) return; // old (FIN included)
    const fresh = s.payload.subarray(off);
    if (diff(seqAdd(this.rcvNxt, fresh.length), this.#advEdge) > 0) {
      this.violations.push(`data beyond the advertised window: ${fresh.length} at ${this.rcvNxt}`);
    }
    this.#append(fresh);
    this.rcvNxt = seqAdd(this.rcvNxt, fresh.length);
    if (fin && !this.finIn) {
      this.finIn = true;
      this.rcvNxt = seqAdd(this.rcvNxt, 1);
    }
  }

  #append(b: Uint8Array): void {
    if (this.gotLen + b.length > this.#got.length) {
      const bigger = new Uint8Array(Math.max(this.#got.length * 2, this.gotLen + b.length));
      bigger.set(this.#got.subarray(0, this.gotLen));
      this.#got = bigger;
    }
    this.#got.set(b, this.gotLen);
    this.gotLen += b.length;
    if (!this.#reading) this.#unread += b.length;
  }

  /** What the kernel sends now: its SYN, data within our window, probes, one ACK. */
  output(now: number): Uint8Array[] {
    if (this.state === "init") {
      this.state = "syn-sent";
      this.#lastProgress = now;
      return [this.#seg(SYN, this.#o.isn, undefined, true)];
    }
    if (this.state === "syn-sent") {
      if (now - this.#lastProgress < 1000) return [];
      this.#lastProgress = now;
      return [this.#seg(SYN, this.#o.isn, undefined, true)];
    }
    if (this.state !== "open") return [];
    const rto = this.#o.rtoMs ?? 200;
    if (diff(this.sndMax, this.sndUna) > 0 && now - this.#lastProgress >= rto) {
      this.sndNxt = this.sndUna; // go back N
      this.#lastProgress = now;
    }
    const out: Uint8Array[] = [];
    const data = this.#o.data;
    const dataEnd = seqAdd(this.#o.isn, 1 + data.length);
    let budget = this.#o.burst ?? Infinity;
    for (;;) {
      const left = diff(dataEnd, this.sndNxt);
      const usable = diff(this.#sendEdge, this.sndNxt);
      const n = Math.min(this.#smss, left, usable, budget);
      if (n > 0) {
        const at = diff(this.sndNxt, seqAdd(this.#o.isn, 1));
        const fin = this.#o.close === true && n === left && usable > n;
        out.push(this.#seg(ACK | PSH | (fin ? FIN : 0), this.sndNxt, data.subarray(at, at + n)));
        this.#advance(n + (fin ? 1 : 0));
        budget -= n;
        continue;
      }
      if (left === 0 && this.#o.close && usable > 0 && this.sndNxt === dataEnd) {
        out.push(this.#seg(ACK | FIN, this.sndNxt));
        this.#advance(1);
      }
      if (left > 0 && usable <= 0 && now - this.#lastProbe >= rto) {
        this.#lastProbe = now;
        out.push(this.#seg(ACK, seqAdd(this.sndUna, -1))); // Linux's zero-window probe
      }
      break;
    }
    if (this.#ackDue && out.length === 0) out.push(this.#seg(ACK, this.sndNxt));
    this.#ackDue = false;
    return out;
  }

  #advance(n: number): void {
    this.sndNxt = seqAdd(this.sndNxt, n);
    if (diff(this.sndNxt, this.sndMax) > 0) this.sndMax = this.sndNxt;
  }
}

/** What the link between the kernel and the stack does to packets (both directions). */
export interface Faults {
  rand: () => number;
  loss?: number;
  dup?: number;
  /** Hold a packet back one step. */
  delay?: number;
}

class Link<T> {
  #held: T[] = [];
  constructor(private f?: Faults) {}
  pass(items: T[]): T[] {
    const out = this.#held;
    this.#held = [];
    for (const x of items) {
      const f = this.f;
      if (!f) {
        out.push(x);
        continue;
      }
      if (f.rand() < (f.loss ?? 0)) continue;
      if (f.rand() < (f.delay ?? 0)) this.#held.push(x);
      else out.push(x);
      if (f.rand() < (f.dup ?? 0)) out.push(x);
    }
    return out;
  }
}

export interface ExchangeOptions {
  /** Steps to run at most; each moves the clock by `stepMs` (default 1). */
  steps: number;
  stepMs?: number;
  faults?: Faults;
  /** Called at each step before the peer speaks (the remote side pushes data, and so on). */
  feed?: (step: number) => void;
  /** Extra packets for the stack at each step (other flows, noise). */
  noise?: (step: number) => Uint8Array[];
  /** Called after every step (invariants). */
  check?: () => void;
  /** Stop early once this holds. */
  until?: () => boolean;
}

/** Run `peers` against the stack of `h`, step by step. Returns the steps taken. */
export function exchange(h: Harness, peers: KernelPeer[], o: ExchangeOptions): number {
  const up = new Link<Uint8Array>(o.faults);
  const down = new Link<Seg>(o.faults);
  const deliver = (segs: Seg[]) => {
    for (const s of down.pass(segs)) for (const p of peers) p.receive(s, h.now);
  };
  for (let step = 0; step < o.steps; step++) {
    o.feed?.(step);
    const pkts = peers.flatMap((p) => p.output(h.now));
    const noise = o.noise?.(step) ?? [];
    h.input(...up.pass(pkts), ...noise);
    deliver(h.flush());
    h.now += o.stepMs ?? 1;
    h.stack.tick();
    deliver(h.take());
    o.check?.();
    if (o.until?.()) return step + 1;
  }
  return o.steps;
}
