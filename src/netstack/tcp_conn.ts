/**
 * One TCP connection of the agentless endpoint (specs/netstack.md §3–§7): the kernel on one
 * side, a remote stream (an smux stream to the real destination) on the other. Pure: segments
 * and stream events in, packets (through `host.emit`) and stream calls out, time from
 * `host.now()`. The stack (stack.ts) owns the table, the timer heap and dispatch.
 *
 * Longer than our other modules on purpose: one state machine over one private record, kept in
 * one file so every transition and the state it touches are read together (RFC 9293's segment
 * processing is one section too). The parts that stand alone live beside it: sequence
 * arithmetic, RTO estimation, send buffer, reassembly, timer heap.
 */
import { ACK, buildTcp, FIN, type ParsedPacket, PSH, RST, SYN } from "./packet.ts";
import { Reassembly } from "./reassembly.ts";
import { RtoEstimator } from "./rto.ts";
import { ByteQueue } from "../bytequeue.ts";
import { seqAdd, seqDiff, seqGt, seqInWindow, seqLe, seqLt } from "./seq.ts";
import type { TimerOwner } from "./timer_heap.ts";
import type { Destination, OpenResult, RemoteStream, RemoteStreamEvents } from "./types.ts";

export type TcpState =
  | "pending"
  | "syn-received"
  | "established"
  | "close-wait"
  | "last-ack"
  | "fin-wait-1"
  | "fin-wait-2"
  | "closing"
  | "time-wait"
  | "closed";

export interface TcpLimits {
  mtu: number;
  /** Receive ring per connection: the window we advertise is what is free of it (§5.1). */
  rcvCap: number;
  /** Remote bytes held for the kernel before the stream is paused (§5.4). */
  sndCap: number;
  /** PENDING gives up after this long (§9). */
  openTimeoutMs: number;
  /** After the kernel's FIN, hold the stream open this long for the reply (§3.6). */
  lingerMs: number;
  /** CLOSE-WAIT and FIN-WAIT-2 idle limits (§9). */
  halfClosedIdleMs: number;
  timeWaitMs: number;
}

export const DEFAULT_LIMITS: TcpLimits = {
  mtu: 1400,
  rcvCap: 64 * 1024,
  sndCap: 256 * 1024,
  openTimeoutMs: 20_000,
  lingerMs: 2_000,
  halfClosedIdleMs: 60_000,
  timeWaitMs: 5_000,
};

/** What a connection needs from the stack around it. */
export interface ConnHost {
  now(): number;
  emit(packet: Uint8Array): boolean;
  /** (Re)arm this connection's single timer; undefined disarms it. */
  arm(conn: TcpConn, at: number | undefined): void;
  /** Output is due: call `output()` at the next flush. */
  dirty(conn: TcpConn): void;
  /** Forget the connection (it has been closed or became a tombstone that expired). */
  remove(conn: TcpConn): void;
  open(dst: Destination, events: RemoteStreamEvents): RemoteStream;
  count(what: string): void;
  iss(): number;
}

const MAX_RETRIES = 8;
const SYNACK_TRIES = 3;
const CHALLENGE_GAP_MS = 500;

export class TcpConn implements TimerOwner {
  timerGen = 0;
  state: TcpState = "pending";
  readonly openedAt: number;

  // sequence state (§3.1)
  irs = 0;
  iss = 0;
  rcvNxt = 0;
  /** Right edge of the window last advertised. */
  rcvAdv = 0;
  sndUna = 0;
  sndNxt = 0;
  /**
   * The highest sequence number sent: RFC 9293's SND.NXT, which an RTO's go-back-N (SND.NXT back
   * to SND.UNA here) does not move. ACKs are checked against it and pure ACKs and RSTs carry it,
   * so that the kernel's ACK of data sent before the timeout still counts (BSD's snd_max).
   */
  sndMax = 0;
  sndWnd = 0;
  sndWl1 = 0;
  sndWl2 = 0;
  maxSndWnd = 0;
  /** Peer's shift S and ours R; both 0 without window scaling (§5.3). */
  sShift = 0;
  rShift = 0;
  wsOk = false;
  /** The kernel offered SACK: our duplicate ACKs then say which segments we hold (§4.4). */
  sackOk = false;
  smss = 536;
  cwnd = 0;

  #stream?: RemoteStream;
  #opened = false;
  /** Kernel bytes taken but not yet handed to the stream. */
  #recvQ: Uint8Array[] = [];
  #recvQueued = 0;
  /** Remote bytes from SND.UNA on: sent and unacknowledged, then not yet sent (§5.4). */
  #send = new ByteQueue();
  /** Kernel segments that arrived ahead of a hole. */
  #ooo = new Reassembly();
  #paused = false;

  #needAck = false;
  #synAckTries = 0;
  #peerFin = false;
  /** The remote ended (or we gave up on it): a FIN follows the last byte. */
  #finQueued = false;
  #finSent = false;
  #finAcked = false;
  #streamClosed = false;
  /** close() or abort() has been called on the stream. */
  #closeCalled = false;

  #rto = new RtoEstimator();
  #timedSeq = 0;
  #timedAt = -1;
  #dupAcks = 0;
  #recover = 0;
  #inRecovery = false;
  /** Persist probes with no answer yet (give-up count), and probes since the window shut. */
  #probes = 0;
  #persistBackoff = 0;
  #lastChallenge = -Infinity;
  #lastActivity: number;

  // deadlines (ms); the earliest one is armed with the host
  #rtoAt?: number;
  #stateAt?: number;
  #lingerAt?: number;

  constructor(
    private host: ConnHost,
    private lim: TcpLimits,
    readonly family: 4 | 6,
    /** The app's address and port (the kernel side). */
    readonly app: Uint8Array,
    readonly appPort: number,
    /** The destination (what we impersonate). */
    readonly remote: Uint8Array,
    readonly remotePort: number,
    readonly dst: Destination,
  ) {
    this.openedAt = host.now();
    this.#lastActivity = this.openedAt;
  }

  get sendQueued(): number {
    return this.#send.length;
  }
  get recvQueued(): number {
    return this.#recvQueued;
  }

  // ---- setup (§3.2, §8) --------------------------------------------------------------------

  /** The first SYN: remember it and open the stream. The SYN-ACK waits for `opened("ok")`. */
  start(p: ParsedPacket): void {
    this.#takeSyn(p);
    this.#stateAt = this.host.now() + this.lim.openTimeoutMs;
    this.#rearm();
    this.#stream = this.host.open(this.dst, {
      opened: (r) => this.#onOpened(r),
      data: (c) => this.#onData(c),
      end: () => this.#onEnd(),
      aborted: () => this.#onAborted(),
      writable: () => this.#drainToStream(),
    });
  }

  #takeSyn(p: ParsedPacket): void {
    this.irs = p.seq;
    this.rcvNxt = seqAdd(p.seq, 1);
    this.wsOk = p.wscale >= 0;
    this.sackOk = p.sackOk;
    this.sShift = this.wsOk ? p.wscale : 0;
    this.rShift = this.wsOk ? windowShift(this.lim.rcvCap) : 0;
    const mssCap = this.lim.mtu - (this.family === 4 ? 40 : 60);
    const peer = p.mss > 0 ? p.mss : (this.family === 4 ? 536 : 1220);
    this.smss = Math.max(48, Math.min(peer, mssCap));
    this.cwnd = 10 * this.smss;
    // The SYN's window is never scaled (RFC 7323 §2.2).
    this.sndWnd = p.window;
    this.maxSndWnd = p.window;
    this.sndWl1 = p.seq;
  }

  #onOpened(r: OpenResult): void {
    if (this.state !== "pending") return;
    this.#opened = r === "ok";
    if (r !== "ok") {
      this.host.count(`open-${r}`);
      this.#refuse();
      return;
    }
    this.iss = this.host.iss() >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    this.sndWl2 = this.iss;
    this.state = "syn-received";
    this.#stateAt = undefined;
    this.#sendSynAck();
    this.#rtoAt = this.host.now() + 1000;
    this.#rearm();
  }

  /** RST|ACK seq 0 ack IRS+1: the app sees ECONNREFUSED at once (§8.2). */
  #refuse(): void {
    this.#emit(RST | ACK, 0, seqAdd(this.irs, 1), 0);
    this.#destroy(true);
  }

  #sendSynAck(): void {
    const window = Math.min(this.lim.rcvCap, 65535);
    this.rcvAdv = seqAdd(this.rcvNxt, window);
    this.host.emit(buildTcp({
      family: this.family,
      src: this.remote,
      dst: this.app,
      sport: this.remotePort,
      dport: this.appPort,
      seq: this.iss,
      ack: this.rcvNxt,
      flags: SYN | ACK,
      window,
      mss: this.lim.mtu - (this.family === 4 ? 40 : 60),
      wscale: this.wsOk ? this.rShift : undefined,
      sackPermitted: this.sackOk || undefined,
    }));
  }

  /** A SYN for this tuple while we are still setting up (duplicates, or the app reconnected). */
  synAgain(p: ParsedPacket): void {
    if (p.seq !== this.irs) {
      this.host.count("syn-new-isn");
      this.#takeSyn(p);
    }
    if (this.state === "syn-received") this.#sendSynAck();
  }

  // ---- segments from the kernel (§3.2–§4) -------------------------------------------------

  segment(p: ParsedPacket, pkt: Uint8Array): void {
    const ctl = p.flags & 0x17;
    const now = this.host.now();
    if (this.state === "pending") {
      if (ctl === SYN) this.synAgain(p);
      else if (p.flags & RST) this.#destroy(true);
      return;
    }
    if (this.state === "syn-received" && ctl === SYN) {
      this.synAgain(p);
      return;
    }
    if (this.state === "time-wait") {
      this.#timeWaitSegment(p);
      return;
    }
    const segLen = p.dataLen + (p.flags & SYN ? 1 : 0) + (p.flags & FIN ? 1 : 0);
    const rcvWnd = Math.max(0, seqDiff(this.rcvAdv, this.rcvNxt));
    if (!acceptable(p.seq, segLen, this.rcvNxt, rcvWnd)) {
      if (p.flags & RST) return;
      // Valid ACKs count even when the data cannot (RFC 9293 §3.10.7.4, and §4.3's zero-window
      // exception widened): while our window is shut the kernel's segments lie beyond it, yet
      // they carry its ACKs of our data. Ignoring those deadlocked echo traffic (both sides
      // retransmitting, each dropping the other's ACKs); on a TUN there is no blind injector.
      if (p.flags & ACK && !this.#ackFields(p, now)) return;
      if (this.state === "closed") return;
      // Segments with data, and the kernel's zero-window probes (its SND.UNA−1 = our RCV.NXT−1,
      // whatever their length), are always answered: Linux probes faster than the 500 ms limit.
      const probe = rcvWnd === 0 && (segLen > 0 || p.seq === seqAdd(this.rcvNxt, -1));
      this.#answerUnacceptable(p.dataLen > 0 || probe, now);
      return;
    }
    if (p.flags & RST) {
      if (p.seq === this.rcvNxt) {
        this.host.count("rst-in");
        this.#destroy(true);
      } else this.#answerUnacceptable(false, now);
      return;
    }
    if (p.flags & SYN) {
      this.#answerUnacceptable(false, now); // challenge ACK (RFC 5961 §4)
      return;
    }
    if (!(p.flags & ACK)) return;
    if (this.state === "syn-received") {
      if (p.ack !== seqAdd(this.iss, 1)) {
        this.#emit(RST, p.ack, 0, 0);
        return;
      }
      this.sndUna = p.ack;
      this.state = "established";
      this.#rtoAt = undefined;
      this.#rto.reset();
      this.sndWl1 = seqAdd(p.seq, -1); // take this segment's window
      if (this.#finQueued) this.state = "fin-wait-1";
      this.host.dirty(this); // remote bytes may already be waiting (a server's banner)
    }
    if (!this.#ackFields(p, now)) return;
    if (this.state === "closed") return;
    this.#lastActivity = now;
    this.#dataAndFin(p, pkt);
    this.#rearm();
  }

  /** The ACK checks of §3.4. False when the segment must be dropped. */
  #ackFields(p: ParsedPacket, now: number): boolean {
    const ack = p.ack;
    if (seqGt(ack, this.sndMax)) {
      this.#ackNow();
      return false;
    }
    if (seqLt(ack, seqAdd(this.sndUna, -this.maxSndWnd))) {
      this.#ackNow();
      return false;
    }
    const wnd = p.window * 2 ** this.sShift;
    const wndChanged = wnd !== this.sndWnd;
    // An ACK that moves SND.UNA is the newest word on the window too (Linux
    // tcp_may_update_window): after going back N, the kernel's retransmissions carry new ACKs
    // under sequence numbers below its earlier pure ACKs, and the WL1/WL2 test alone then kept
    // a stale window, sliding it with SND.UNA past the edge the kernel advertised.
    const advanced = seqGt(ack, this.sndUna);
    if (advanced) this.#advance(ack, now);
    else if (
      ack === this.sndUna && p.dataLen === 0 && !(p.flags & (SYN | FIN)) && !wndChanged &&
      this.sndNxt !== this.sndUna
    ) this.#duplicateAck();
    if (
      advanced || seqLt(this.sndWl1, p.seq) || (this.sndWl1 === p.seq && seqLe(this.sndWl2, ack))
    ) {
      const reopened = this.sndWnd === 0 && wnd > 0;
      this.sndWnd = wnd;
      this.sndWl1 = p.seq;
      this.sndWl2 = ack;
      if (wnd > this.maxSndWnd) this.maxSndWnd = wnd;
      if (reopened || wndChanged) this.#persistBackoff = 0;
      if (reopened) {
        if (this.sndNxt === this.sndUna) this.#rtoAt = undefined;
        this.host.dirty(this);
      } else if (wndChanged) this.host.dirty(this);
    }
    this.#probes = 0;
    return true;
  }

  #advance(ack: number, now: number): void {
    let acked = seqDiff(ack, this.sndUna);
    // ACK ≤ SND.MAX, so an ACK one past the last byte means our FIN went out (maybe before an RTO).
    if (this.#finQueued && ack === seqAdd(this.#finSeq(), 1)) {
      this.#finSent = this.#finAcked = true;
      acked--;
    }
    this.#send.skip(Math.min(acked, this.#send.length));
    this.sndUna = ack;
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack; // a late ACK of what an RTO went back over
    if (this.#timedAt >= 0 && seqGt(ack, this.#timedSeq)) {
      this.#rto.sample(now - this.#timedAt);
      this.#timedAt = -1;
    }
    this.#rto.reset();
    this.#dupAcks = 0;
    if (this.#inRecovery) {
      if (seqLe(this.#recover, ack)) this.#inRecovery = false;
      else this.#retransmitOne(); // NewReno partial ACK: refill the next hole
    } else this.cwnd = Math.min(this.cwnd + this.smss, 1 << 30);
    this.#rtoAt = this.sndNxt === this.sndUna ? undefined : now + this.#rto.rto;
    this.#updatePause();
    this.host.dirty(this);
    if (this.#finAcked) this.#ourFinAcked();
  }

  #duplicateAck(): void {
    this.#dupAcks++;
    if (this.#dupAcks !== 3 || this.#inRecovery) return;
    this.host.count("fast-retransmit");
    const flight = seqDiff(this.sndNxt, this.sndUna);
    this.cwnd = Math.max(Math.floor(flight / 2), 2 * this.smss);
    this.#recover = this.sndNxt;
    this.#inRecovery = true;
    this.#timedAt = -1;
    this.#retransmitOne();
  }

  #ourFinAcked(): void {
    switch (this.state) {
      case "fin-wait-1":
        this.state = "fin-wait-2";
        this.#stateAt = this.host.now() + this.lim.halfClosedIdleMs;
        break;
      case "closing":
        this.#enterTimeWait();
        break;
      case "last-ack":
        this.#destroy(false);
        break;
    }
  }

  #dataAndFin(p: ParsedPacket, pkt: Uint8Array): void {
    let seq = p.seq;
    let off = p.data;
    let len = p.dataLen;
    let fin = (p.flags & FIN) !== 0;
    // Head: drop what we already have (§4.4).
    const old = seqDiff(this.rcvNxt, seq);
    if (old > 0) {
      if (old >= len) {
        if (old > len || !fin) {
          if (len > 0 || fin) this.#ackNow(); // a retransmission: our ACK was lost
          return;
        }
        len = 0;
      } else {
        off += old;
        len -= old;
      }
      seq = this.rcvNxt;
    }
    // Tail: cut at the advertised edge; a FIN at or beyond it lies outside the window (§4.4).
    const ahead = seqDiff(seq, this.rcvNxt);
    const room = Math.max(0, seqDiff(this.rcvAdv, this.rcvNxt) - ahead);
    if (len > room || (fin && len === room)) {
      len = Math.min(len, room);
      fin = false;
    }
    if (ahead > 0) {
      // Out of order: hold it, and a duplicate ACK at once asks for the hole (§4.4).
      this.host.count("out-of-order");
      if ((len > 0 || fin) && this.#acceptsData()) {
        if (!this.#ooo.add(seq, pkt.subarray(off, off + len), fin)) {
          this.host.count("out-of-order-dropped");
        }
      }
      this.#ackNow();
      return;
    }
    if (len > 0) {
      if (!this.#acceptsData()) {
        // The remote can no longer take bytes (§3.2 last row): reset like a closed socket.
        this.host.count("data-after-close");
        this.#reset();
        return;
      }
      this.#receive(pkt.subarray(off, off + len));
    }
    if (!fin && this.#ooo.segments > 0) {
      const next = this.#ooo.take(this.rcvNxt);
      for (const c of next.chunks) this.#receive(c);
      fin = next.fin;
    }
    if (fin) this.#peerFinIn();
  }

  #acceptsData(): boolean {
    return !this.#peerFin && !this.#finQueued && !this.#streamClosed;
  }

  #receive(bytes: Uint8Array): void {
    this.rcvNxt = seqAdd(this.rcvNxt, bytes.length);
    this.#needAck = true;
    this.host.dirty(this);
    if (this.#recvQueued === 0 && this.#stream!.writable()) {
      this.#stream!.write(bytes); // the stream copies synchronously
      return;
    }
    this.#recvQ.push(bytes.slice());
    this.#recvQueued += bytes.length;
  }

  #peerFinIn(): void {
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    this.#peerFin = true;
    this.#needAck = true;
    this.host.dirty(this);
    switch (this.state) {
      case "established":
        this.state = "close-wait";
        this.#stateAt = this.host.now() + this.lim.halfClosedIdleMs;
        this.#maybeLinger();
        break;
      case "fin-wait-1":
        if (this.#finAcked) this.#enterTimeWait();
        else this.state = "closing";
        break;
      case "fin-wait-2":
        this.#enterTimeWait();
        break;
    }
  }

  /** After the kernel's FIN, the stream stays open for the reply until the remote goes quiet. */
  #maybeLinger(): void {
    if (this.state !== "close-wait" || this.#recvQueued > 0 || this.#streamClosed) return;
    this.#lingerAt = this.host.now() + this.lim.lingerMs;
    this.#rearm();
  }

  #timeWaitSegment(p: ParsedPacket): void {
    if (p.flags & RST) {
      this.#destroy(false);
      return;
    }
    if (p.flags & FIN) {
      this.#stateAt = this.host.now() + this.lim.timeWaitMs;
      this.#ackNow();
      this.#rearm();
    }
  }

  #enterTimeWait(): void {
    this.state = "time-wait";
    this.#closeStream();
    this.#send.clear();
    this.#ooo.clear();
    this.#recvQ = [];
    this.#recvQueued = 0;
    this.#rtoAt = undefined;
    this.#lingerAt = undefined;
    this.#stateAt = this.host.now() + this.lim.timeWaitMs;
    this.#rearm();
  }

  #answerUnacceptable(hasData: boolean, now: number): void {
    if (!hasData && now - this.#lastChallenge < CHALLENGE_GAP_MS) return;
    if (!hasData) this.#lastChallenge = now;
    this.#ackNow();
  }

  // ---- the remote stream -------------------------------------------------------------------

  #onData(chunk: Uint8Array): void {
    if (this.state === "closed" || this.state === "time-wait" || this.#finQueued) return;
    this.#send.push(chunk);
    this.#lastActivity = this.host.now();
    if (this.#lingerAt !== undefined) {
      this.#lingerAt = this.#lastActivity + this.lim.lingerMs;
    }
    this.#updatePause();
    this.host.dirty(this);
  }

  #onEnd(): void {
    if (this.state === "closed" || this.#finQueued) return;
    if (this.state === "pending") {
      this.#refuse();
      return;
    }
    this.#streamClosed = true;
    if (this.#recvQueued > 0) {
      // Bytes we acknowledged can no longer be delivered: tell the app, as a server would.
      this.#reset();
      return;
    }
    this.#queueFin();
  }

  #onAborted(): void {
    if (this.state === "closed" || this.state === "time-wait") return;
    this.#streamClosed = true;
    if (this.state === "pending") {
      this.#refuse();
      return;
    }
    this.host.count("remote-abort");
    this.#reset();
  }

  #queueFin(): void {
    this.#finQueued = true;
    this.#lingerAt = undefined;
    this.#closeStream();
    if (this.state === "established") this.state = "fin-wait-1";
    else if (this.state === "close-wait") this.state = "last-ack";
    this.host.dirty(this);
  }

  #drainToStream(): void {
    const s = this.#stream;
    if (!s || this.state === "closed" || this.#streamClosed) return;
    const before = this.#usableWindow();
    while (this.#recvQ.length > 0 && s.writable()) {
      const c = this.#recvQ.shift()!;
      this.#recvQueued -= c.length;
      s.write(c);
    }
    const after = Math.max(0, this.lim.rcvCap - this.#recvQueued);
    // Window update at once when it reopens (§5.1): the kernel's persist timer is slow.
    if (
      (before < this.smss && after >= this.smss) ||
      seqDiff(seqAdd(this.rcvNxt, after), this.rcvAdv) >= this.lim.rcvCap / 2
    ) {
      this.#needAck = true;
      this.host.dirty(this);
    }
    if (this.#recvQueued === 0) this.#maybeLinger();
  }

  #updatePause(): void {
    const s = this.#stream;
    if (!s || this.#streamClosed) return;
    const pending = this.#send.length;
    if (!this.#paused && pending > this.lim.sndCap) {
      this.#paused = true;
      s.pause(true);
    } else if (this.#paused && pending < this.lim.sndCap / 2) {
      this.#paused = false;
      s.pause(false);
    }
  }

  /** We will write no more: smux has no half-close, so this ends the stream (§3.6). */
  #closeStream(): void {
    if (this.#paused) {
      this.#paused = false;
      this.#stream?.pause(false);
    }
    if (!this.#closeCalled) {
      this.#closeCalled = true;
      this.#stream?.close();
    }
    this.#streamClosed = true;
  }

  // ---- output (§6) -------------------------------------------------------------------------

  /** Send what is due: data the window allows, our FIN, or a lone ACK. */
  output(): void {
    if (this.state === "pending" || this.state === "closed") return;
    if (this.state === "syn-received") return;
    const now = this.host.now();
    let sentAny = false;
    if (this.state !== "time-wait") {
      let unsent = this.#send.length - this.#dataInFlight();
      let usable = seqDiff(seqAdd(this.sndUna, Math.min(this.sndWnd, this.cwnd)), this.sndNxt);
      while (unsent > 0 && usable > 0) {
        const n = Math.min(this.smss, unsent, usable);
        if (n < this.smss && n < unsent && usable < this.maxSndWnd / 2) break; // sender SWS
        const last = n === unsent;
        const fin = last && this.#finQueued && !this.#finSent;
        if (!this.#segmentAt(this.sndNxt, n, (last ? PSH : 0) | (fin ? FIN : 0), now)) break;
        this.sndNxt = seqAdd(this.sndNxt, n + (fin ? 1 : 0));
        if (fin) this.#finSent = true;
        unsent -= n;
        usable -= n;
        sentAny = true;
      }
      if (unsent === 0 && this.#finQueued && !this.#finSent) {
        if (this.#segmentAt(this.sndNxt, 0, FIN, now)) {
          this.sndNxt = seqAdd(this.sndNxt, 1);
          this.#finSent = true;
          sentAny = true;
        }
      }
      if (sentAny && this.#rtoAt === undefined) this.#rtoAt = now + this.#rto.rto;
      // Data waits with nothing in flight: the kernel's window is shut, or too small for the
      // sender SWS rule. The persist timer probes it (§5.2), so that a lost window update (or
      // one the WL1/WL2 test ignores) cannot stall us: no RTO runs without data in flight
      // (RFC 9293 §3.8.6.2.1's override timeout; Linux arms its probe timer the same way).
      if (unsent > 0 && this.sndNxt === this.sndUna) {
        this.#rtoAt ??= now + this.#rto.rto;
      }
    }
    if (this.#needAck && !sentAny) this.#ackNow();
    this.#needAck = false;
    this.#rearm();
  }

  /** Build and emit one segment carrying `n` buffered bytes from `seq` (go-back-N safe). */
  #segmentAt(seq: number, n: number, flags: number, now: number): boolean {
    const from = seqDiff(seq, this.sndUna);
    const fill = (out: Uint8Array, at: number) => this.#send.copyOut(from, n, out, at);
    if (!this.#emit(ACK | flags, seq, this.rcvNxt, n, fill)) return false;
    // Time only new data (Karn: after a go-back-N, seq = SND.NXT may be a retransmission).
    if (this.#timedAt < 0 && seq === this.sndMax && (n > 0 || flags & FIN)) {
      this.#timedSeq = seq;
      this.#timedAt = now;
    }
    const end = seqAdd(seq, n + (flags & FIN ? 1 : 0));
    if (seqGt(end, this.sndMax)) this.sndMax = end;
    this.#needAck = false;
    return true;
  }

  #retransmitOne(): void {
    const inFlight = this.#dataInFlight();
    const n = Math.min(this.smss, inFlight);
    const fin = this.#finSent && !this.#finAcked && n === inFlight;
    if (n > 0 || fin) this.#segmentAt(this.sndUna, n, fin ? FIN : 0, this.host.now());
    this.#rtoAt = this.host.now() + this.#rto.rto;
  }

  #ackNow(): void {
    const sack = this.sackOk && this.#ooo.segments > 0 ? this.#ooo.sackBlocks() : undefined;
    this.#emit(ACK, this.sndMax, this.rcvNxt, 0, undefined, sack);
    this.#needAck = false;
  }

  /** RST|ACK at SND.NXT and forget everything (§3.2 "stream error or abort"). */
  #reset(): void {
    // The kernel takes an RST only at exactly its RCV.NXT (RFC 5961), which lies somewhere in
    // [SND.UNA, SND.MAX]; one outside its window it drops without a word, and an app waiting
    // to read would then wait forever. With data in flight, also try SND.UNA: all in flight
    // lost (or pruned) puts RCV.NXT there, and SND.MAX may sit on the window's right edge.
    if (this.sndUna !== this.sndMax) this.#emit(RST | ACK, this.sndUna, this.rcvNxt, 0);
    this.#emit(RST | ACK, this.sndMax, this.rcvNxt, 0);
    this.host.count("rst-out");
    this.#destroy(true);
  }

  #emit(
    flags: number,
    seq: number,
    ack: number,
    n: number,
    fill?: (out: Uint8Array, at: number) => void,
    sack?: number[],
  ): boolean {
    const window = this.#windowField(flags);
    return this.host.emit(buildTcp({
      family: this.family,
      src: this.remote,
      dst: this.app,
      sport: this.remotePort,
      dport: this.appPort,
      seq,
      ack: flags & ACK ? ack : 0,
      flags,
      window,
      payloadLength: fill ? n : 0,
      writePayload: fill,
      sack,
    }));
  }

  /** The window field of an outgoing segment; moves RCV.ADV, never left (§5.1, §5.3). */
  #windowField(flags: number): number {
    if (flags & RST || this.state === "pending") return 0;
    const free = Math.max(0, this.lim.rcvCap - this.#recvQueued);
    let edge = seqAdd(this.rcvNxt, free);
    const step = Math.min(this.lim.rcvCap / 2, this.smss);
    // Receiver SWS: move the edge only in worthwhile steps.
    if (seqGt(edge, this.rcvAdv) && seqDiff(edge, this.rcvAdv) < step) edge = this.rcvAdv;
    if (seqLt(edge, this.rcvAdv)) edge = this.rcvAdv;
    const wnd = Math.max(0, seqDiff(edge, this.rcvNxt));
    const unit = 2 ** this.rShift;
    const field = Math.min(65535, Math.ceil(wnd / unit));
    const adv = seqAdd(this.rcvNxt, field * unit);
    if (seqGt(adv, this.rcvAdv)) this.rcvAdv = adv;
    return field;
  }

  #usableWindow(): number {
    return Math.max(0, seqDiff(this.rcvAdv, this.rcvNxt));
  }

  /** Data bytes sent and not yet acknowledged (SND.NXT counts our FIN once it is out). */
  #dataInFlight(): number {
    return seqDiff(this.sndNxt, this.sndUna) - (this.#finSent && !this.#finAcked ? 1 : 0);
  }

  #finSeq(): number {
    return seqAdd(this.sndUna, this.#send.length);
  }

  // ---- timers (§7, §9) ---------------------------------------------------------------------

  onTimer(now: number): void {
    if (this.state === "closed") return;
    if (this.#stateAt !== undefined && this.#stateAt <= now) {
      this.#stateAt = undefined;
      if (this.#stateTimeout(now)) return;
    }
    if (this.#lingerAt !== undefined && this.#lingerAt <= now) {
      this.#lingerAt = undefined;
      this.host.count("linger-close");
      this.#queueFin();
    }
    if (this.#rtoAt !== undefined && this.#rtoAt <= now) {
      this.#rtoAt = undefined;
      this.#retransmitTimeout(now);
    }
    if ((this.state as TcpState) !== "closed") this.#rearm();
  }

  /** True when the connection is gone. */
  #stateTimeout(now: number): boolean {
    switch (this.state) {
      case "pending":
        this.host.count("open-timeout");
        this.#refuse();
        return true;
      case "time-wait":
        this.#destroy(false);
        return true;
      case "close-wait":
      case "fin-wait-2":
        if (now - this.#lastActivity < this.lim.halfClosedIdleMs) {
          this.#stateAt = this.#lastActivity + this.lim.halfClosedIdleMs;
          return false;
        }
        this.host.count("idle-reset");
        this.#reset();
        return true;
    }
    return false;
  }

  #retransmitTimeout(now: number): void {
    if (this.state === "syn-received") {
      if (++this.#synAckTries >= SYNACK_TRIES) {
        this.host.count("synack-giveup");
        this.#destroy(true);
        return;
      }
      this.#sendSynAck();
      this.#rtoAt = now + 1000 * 2 ** this.#synAckTries;
      return;
    }
    const inFlight = seqDiff(this.sndNxt, this.sndUna);
    const unsent = this.#send.length - this.#dataInFlight();
    if (inFlight === 0 && unsent > 0) {
      // Persist probe at SND.UNA−1: Linux answers it; a bare ACK at SND.NXT it ignores (§5.2).
      if (++this.#probes > MAX_RETRIES) {
        this.host.count("persist-giveup");
        this.#reset();
        return;
      }
      this.#emit(ACK, seqAdd(this.sndUna, -1), this.rcvNxt, 0);
      // Answered probes keep backing off (×2 up to 60 s, §5.2) while the window stays shut; only
      // unanswered ones count towards giving up: a slow app is not a dead one.
      this.#rtoAt = now + Math.min(60_000, this.#rto.rto * 2 ** ++this.#persistBackoff);
      return;
    }
    if (inFlight === 0) return;
    this.#rto.timedOut();
    if (this.#rto.backoff > MAX_RETRIES) {
      this.host.count("rto-giveup");
      this.#reset();
      return;
    }
    this.host.count("rto");
    // Go back N: resend from SND.UNA, one segment at first (RFC 5681 §3.1, simplified).
    this.sndNxt = this.sndUna;
    this.#finSent = false;
    this.#inRecovery = false;
    this.#dupAcks = 0;
    this.#timedAt = -1;
    this.cwnd = this.smss;
    this.#rtoAt = now + this.#rto.rto;
    this.host.dirty(this);
  }

  #rearm(): void {
    let at = this.#rtoAt;
    if (this.#stateAt !== undefined && (at === undefined || this.#stateAt < at)) at = this.#stateAt;
    if (this.#lingerAt !== undefined && (at === undefined || this.#lingerAt < at)) {
      at = this.#lingerAt;
    }
    this.host.arm(this, at);
  }

  /** Leave the table; `abortStream`: the remote must learn the connection was reset. */
  #destroy(abortStream: boolean): void {
    if (this.state === "closed") return;
    this.state = "closed";
    if (!this.#closeCalled) {
      this.#closeCalled = true;
      if (abortStream || !this.#opened) this.#stream?.abort();
      else this.#stream?.close();
    }
    this.#streamClosed = true;
    this.#send.clear();
    this.#ooo.clear();
    this.#recvQ = [];
    this.#recvQueued = 0;
    this.host.arm(this, undefined);
    this.host.remove(this);
  }

  /** The stack is shutting down: reset the app's connection. */
  shutdown(): void {
    if (this.state === "closed") return;
    if (this.state === "pending") this.#refuse();
    else if (this.state === "time-wait") this.#destroy(false);
    else this.#reset();
  }
}

/** RFC 9293 §3.10.7.4 acceptability, with RCV.WND as advertised. */
function acceptable(seq: number, len: number, rcvNxt: number, wnd: number): boolean {
  if (len === 0) return wnd === 0 ? seq === rcvNxt : seqInWindow(seq, rcvNxt, wnd);
  if (wnd === 0) return false;
  return seqInWindow(seq, rcvNxt, wnd) || seqInWindow(seqAdd(seq, len - 1), rcvNxt, wnd);
}

/** Our shift R: 0 while the ring fits 16 bits, else just enough (§5.3). */
export function windowShift(rcvCap: number): number {
  let r = 0;
  while (r < 14 && rcvCap / 2 ** r > 65535) r++;
  return r;
}
