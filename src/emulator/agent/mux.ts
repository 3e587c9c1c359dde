/**
 * The agent's smux v1 SERVER for multiplexed port forwarding (specs/ssm-protocol.md §8): every
 * SYN from the client opens a stream and a TCP connection to the destination; PSH bytes go to
 * TCP in order; a FIN or TCP close on either side ends both (no half-close); a failed dial
 * sends the ConnectToPortError flag and FINs the stream. Keepalive as xtaci/smux does it: a NOP
 * on stream 0 every interval, and the whole mux closes after a timeout with no frame received.
 */
import { Cmd, encodeFrame, encodePsh, SmuxParser } from "../../ssm/smux_frame.ts";
import { formatHostPort } from "../destinations.ts";
import { TcpLink } from "./tcp.ts";

export interface PortHost {
  destination: { hostname: string; port: number };
  /** Bytes for the client, through the paced pump. */
  out(bytes: Uint8Array): void;
  /** Waits while the pump is full. */
  room(): Promise<void>;
  /** A Flag message (PayloadType 10), sent directly as the agent does. */
  flag(value: number): void;
  /** The port side cannot go on; the session ends with this reason. */
  fail(reason: string): void;
  log(line: string): void;
}

export interface KeepAlive {
  intervalMs: number;
  timeoutMs: number;
}

/** Refuse new input (the client resends) while this much is waiting to be written to TCP. */
export const MAX_PENDING_TCP_WRITE = 4 * 1024 * 1024;
const CONNECT_TO_PORT_ERROR = 3;

interface Stream {
  tcp: TcpLink;
  finSent: boolean;
}

export class MuxServer {
  #parser = new SmuxParser();
  #streams = new Map<number, Stream>();
  #links = new Set<TcpLink>();
  #closed = false;
  #dataReady = false;
  #timers: ReturnType<typeof setInterval>[] = [];

  constructor(private host: PortHost, keepAlive?: KeepAlive) {
    if (keepAlive) {
      this.#timers.push(
        setInterval(() => this.host.out(encodeFrame(Cmd.NOP, 0)), keepAlive.intervalMs),
      );
      this.#timers.push(setInterval(() => this.#checkAlive(), keepAlive.timeoutMs));
    }
  }

  get streamCount(): number {
    return this.#streams.size;
  }

  /** One Output payload: a slice of the client's smux byte stream. False = not ready. */
  input(payload: Uint8Array): boolean {
    if (this.#closed) return true;
    let pending = 0;
    for (const s of this.#streams.values()) pending += s.tcp.pendingWrite;
    if (pending > MAX_PENDING_TCP_WRITE) return false;
    let frames;
    try {
      frames = this.#parser.push(payload);
    } catch (e) {
      // xtaci/smux tears the session down on a protocol error; so does the agent's port plugin.
      this.host.fail(`smux: ${(e as Error).message}`);
      return true;
    }
    for (const f of frames) {
      this.#dataReady = true;
      switch (f.cmd) {
        case Cmd.SYN:
          if (!this.#streams.has(f.streamId)) this.#open(f.streamId);
          break;
        case Cmd.PSH:
          this.#streams.get(f.streamId)?.tcp.write(f.data);
          break;
        case Cmd.FIN:
          this.#streams.get(f.streamId)?.tcp.closeAfterWrites();
          break;
        case Cmd.NOP:
          break;
      }
    }
    return true;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    for (const l of this.#links) l.close();
    await Promise.all([...this.#links].map((l) => l.done));
  }

  #open(sid: number): void {
    const { hostname, port } = this.host.destination;
    const s: Stream = { tcp: undefined as unknown as TcpLink, finSent: false };
    s.tcp = new TcpLink(hostname, port, {
      data: async (bytes) => {
        if (s.finSent || this.#closed) return;
        this.host.out(encodePsh(sid, bytes));
        await this.host.room();
      },
      dialError: (err) => {
        this.host.log(
          `agent: stream ${sid}: dial ${formatHostPort({ hostname, port })} failed: ${err.message}`,
        );
        if (this.#closed) return;
        this.host.flag(CONNECT_TO_PORT_ERROR);
        this.#fin(sid, s);
      },
      closed: () => this.#fin(sid, s),
    });
    this.#links.add(s.tcp);
    s.tcp.done.then(() => this.#links.delete(s.tcp));
    this.#streams.set(sid, s);
  }

  /** The agent closes its stream once, whichever side ended first (xtaci Stream.Close). */
  #fin(sid: number, s: Stream): void {
    if (this.#streams.get(sid) === s) this.#streams.delete(sid);
    if (s.finSent || this.#closed) return;
    s.finSent = true;
    this.host.out(encodeFrame(Cmd.FIN, sid));
  }

  #checkAlive(): void {
    if (this.#dataReady) {
      this.#dataReady = false;
      return;
    }
    this.host.log("agent: smux keepalive timeout, closing the mux");
    this.host.fail("smux keepalive timeout: no frames from the client");
  }
}
