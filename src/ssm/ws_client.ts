/**
 * A small RFC 6455 WebSocket client over Deno.connect, because Deno's built-in client leaves
 * Nagle's algorithm on: our write-write-read pattern (ack, then data, then wait) stalls each
 * round trip on the peer's delayed ACK (~40 ms on Linux). Here the TCP socket gets
 * setNoDelay(true) before anything else, including TLS (Deno.startTls over that socket).
 *
 * Trust: Deno.startTls uses the same roots as Deno's own clients and honours DENO_CERT / --cert
 * by itself (checked on Deno 2.9), so nothing is read here; `caCerts` adds roots for tests.
 * Proxy: HTTPS_PROXY (wss) / HTTP_PROXY (ws), minus NO_PROXY, via a plain-http CONNECT tunnel.
 */
import { pinnedAddress } from "../net/pinned_names.ts";
import { concat } from "../bytequeue.ts";
import {
  CloseCode,
  closePayload,
  encodeFrame,
  type Frame,
  FrameParser,
  Opcode,
  parseClose,
  WsProtocolError,
} from "./ws_frame.ts";
import {
  parseProxy,
  parseWsUrl,
  proxyFor,
  tunnel,
  unbracket,
  upgrade,
  WsConnectError,
} from "./ws_dial.ts";

export { proxyFor, WsConnectError };

export interface WsConnectOptions {
  /** Whole dial: TCP, proxy tunnel, TLS and upgrade. */
  timeoutMs?: number;
  /** Extra trusted roots (PEM), on top of the defaults. */
  caCerts?: string[];
  /** Proxy URL, `null` for none; by default taken from the environment (proxyFor). */
  proxy?: string | null;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

const READ_SIZE = 64 * 1024;
/** How long a close handshake may take before the TCP connection is dropped anyway. */
const CLOSE_WAIT_MS = 1000;
const enc = new TextEncoder();

export class WsClient {
  onmessage: (data: Uint8Array | string) => void = () => {};
  onclose: (code: number, reason: string) => void = () => {};
  onpong: (payload: Uint8Array) => void = () => {};
  /** Resolves once, when the connection is gone (after onclose). */
  readonly closed: Promise<CloseInfo>;

  #conn: Deno.Conn;
  #parser = new FrameParser();
  #state: "open" | "closing" | "closed" = "open";
  #resolveClosed!: (c: CloseInfo) => void;
  #out: Uint8Array[] = [];
  #buffered = 0;
  #writing = false;
  #flushed: (() => void)[] = [];
  #closeTimer?: ReturnType<typeof setTimeout>;
  #fragOpcode = -1;
  #fragments: Uint8Array[] = [];
  #fragLength = 0;
  #decoder = new TextDecoder("utf-8", { fatal: true });

  private constructor(conn: Deno.Conn, leftover: Uint8Array) {
    this.#conn = conn;
    this.closed = new Promise((r) => (this.#resolveClosed = r));
    this.#readLoop(leftover);
  }

  static async connect(url: string, opts: WsConnectOptions = {}): Promise<WsClient> {
    const target = parseWsUrl(url);
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const proxy = opts.proxy !== undefined ? opts.proxy : proxyFor(url, (k) => Deno.env.get(k));
    let conn: Deno.Conn | undefined;
    let late = false;
    /** The timeout already rejected: release what this late attempt holds. */
    const abandon = (): never => {
      try {
        conn?.close();
      } catch { /* already closed */ }
      throw new WsConnectError("timed out");
    };
    const dial = async () => {
      const via = proxy ? parseProxy(proxy) : undefined;
      // A full tunnel dials its stream's host at an address it pinned (net/pinned_names.ts).
      const host = unbracket(via?.hostname ?? target.hostname);
      const tcp = await Deno.connect({
        hostname: pinnedAddress(host) ?? host,
        port: via ? Number(via.port || 80) : target.port,
      });
      conn = tcp;
      if (late) return abandon();
      tcp.setNoDelay(true);
      if (via) await tunnel(tcp, via, `${target.hostname}:${target.port}`);
      if (target.secure) {
        conn = await Deno.startTls(tcp, {
          hostname: unbracket(target.hostname),
          caCerts: opts.caCerts,
        });
        if (late) return abandon(); // the timer could close only the TCP socket
      }
      return await upgrade(conn, target);
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        late = true;
        try {
          conn?.close();
        } catch { /* already closed */ }
        reject(new WsConnectError(`timed out after ${timeoutMs} ms connecting to ${target.show}`));
      }, timeoutMs);
    });
    const attempt = dial();
    attempt.catch(() => {}); // it may lose the race and fail later
    try {
      const leftover = await Promise.race([attempt, timeout]);
      return new WsClient(conn!, leftover);
    } catch (e) {
      try {
        conn?.close();
      } catch { /* already closed */ }
      if (e instanceof WsConnectError) throw e;
      const via = proxy ? ` via proxy ${redactProxy(proxy)}` : "";
      throw new WsConnectError(`cannot connect to ${target.show}${via}: ${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  get open(): boolean {
    return this.#state === "open";
  }

  /** Frame bytes queued or in flight, not yet accepted by the kernel. */
  get bufferedAmount(): number {
    return this.#buffered;
  }

  /** Queue a message; false (and dropped) if the connection is not open. */
  send(data: Uint8Array | string): boolean {
    if (this.#state !== "open") return false;
    if (typeof data === "string") this.#enqueue(encodeFrame(Opcode.Text, enc.encode(data)));
    else this.#enqueue(encodeFrame(Opcode.Binary, data));
    return true;
  }

  ping(payload: Uint8Array = new Uint8Array(0)): boolean {
    if (payload.length > 125) throw new RangeError("ping payload over 125 bytes");
    if (this.#state !== "open") return false;
    this.#enqueue(encodeFrame(Opcode.Ping, payload));
    return true;
  }

  /** Start the close handshake after queued frames; the TCP connection goes within ~1 s. */
  close(code: number = CloseCode.Normal, reason = ""): void {
    if (this.#state !== "open") return;
    this.#state = "closing";
    this.#enqueue(encodeFrame(Opcode.Close, closePayload(code, reason)));
    this.#closeTimer = setTimeout(() => this.#terminate(code, reason), CLOSE_WAIT_MS);
  }

  // ---- reading ------------------------------------------------------------------------------

  async #readLoop(leftover: Uint8Array): Promise<void> {
    // Let the caller of connect() install its handlers before the first message is delivered.
    await new Promise((r) => setTimeout(r, 0));
    if (leftover.length > 0) {
      this.#parser.push(leftover);
      this.#parse();
    }
    const buf = new Uint8Array(READ_SIZE);
    while (this.#state !== "closed") {
      let n: number | null;
      try {
        n = await this.#conn.read(buf);
      } catch (e) {
        this.#terminate(CloseCode.Abnormal, (e as Error).message);
        return;
      }
      if (n === null) {
        this.#terminate(CloseCode.Abnormal, "connection closed without a close frame");
        return;
      }
      this.#parser.push(buf.slice(0, n)); // the queue keeps chunks; buf is reused
      this.#parse();
    }
  }

  #parse(): void {
    try {
      for (let f: Frame | null; this.#state !== "closed" && (f = this.#parser.next());) {
        this.#onFrame(f);
      }
    } catch (e) {
      if (!(e instanceof WsProtocolError)) throw e;
      this.#fail(e.code, e.message);
    }
  }

  #onFrame(f: Frame): void {
    switch (f.opcode) {
      case Opcode.Text:
      case Opcode.Binary:
        if (this.#fragOpcode >= 0) throw new WsProtocolError("new message inside a fragmented one");
        if (f.fin) return this.#deliver(f.opcode, f.payload);
        this.#fragOpcode = f.opcode;
        this.#addFragment(f.payload);
        return;
      case Opcode.Continuation: {
        if (this.#fragOpcode < 0) throw new WsProtocolError("continuation without a message");
        this.#addFragment(f.payload);
        if (!f.fin) return;
        const op = this.#fragOpcode;
        const whole = concat(this.#fragments);
        this.#fragOpcode = -1;
        this.#fragments = [];
        this.#fragLength = 0;
        return this.#deliver(op, whole);
      }
      case Opcode.Ping:
        if (this.#state === "open") this.#enqueue(encodeFrame(Opcode.Pong, f.payload));
        return;
      case Opcode.Pong:
        return this.onpong(f.payload);
      case Opcode.Close: {
        const { code, reason } = parseCloseChecked(f.payload);
        if (this.#state === "open") {
          // Echo the code, let it reach the socket, then drop TCP (we are the client).
          this.#state = "closing";
          const echo = code === CloseCode.NoStatus ? new Uint8Array(0) : closePayload(code);
          this.#enqueue(encodeFrame(Opcode.Close, echo));
          this.#closeTimer = setTimeout(() => this.#terminate(code, reason), CLOSE_WAIT_MS);
          this.#afterFlush(() => this.#terminate(code, reason));
        } else this.#terminate(code, reason);
        return;
      }
    }
  }

  #addFragment(p: Uint8Array): void {
    this.#fragLength += p.length;
    if (this.#fragLength > 256 << 20) {
      throw new WsProtocolError("fragmented message too big", CloseCode.TooBig);
    }
    this.#fragments.push(p);
  }

  #deliver(opcode: number, payload: Uint8Array): void {
    if (this.#state !== "open") return;
    if (opcode === Opcode.Binary) return this.onmessage(payload);
    let text: string;
    try {
      text = this.#decoder.decode(payload);
    } catch {
      throw new WsProtocolError("text message is not UTF-8", CloseCode.InvalidData);
    }
    this.onmessage(text);
  }

  /** Protocol violation: say why in a close frame, then drop the connection. */
  #fail(code: number, reason: string): void {
    if (this.#state === "open") {
      this.#state = "closing";
      this.#enqueue(encodeFrame(Opcode.Close, closePayload(code, reason)));
      this.#closeTimer = setTimeout(() => this.#terminate(code, reason), CLOSE_WAIT_MS);
      this.#afterFlush(() => this.#terminate(code, reason));
    } else this.#terminate(code, reason);
  }

  /** The end, whatever the cause: drop TCP, report once. */
  #terminate(code: number, reason: string): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#closeTimer);
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    this.#out = [];
    this.#buffered = 0;
    try {
      this.onclose(code, reason);
    } finally {
      this.#resolveClosed({ code, reason });
    }
  }

  // ---- writing ------------------------------------------------------------------------------

  #enqueue(frame: Uint8Array): void {
    this.#out.push(frame);
    this.#buffered += frame.length;
    if (!this.#writing) this.#writeLoop();
  }

  /** One write in flight; whatever is queued meanwhile goes out as one buffer next. */
  async #writeLoop(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#out.length > 0 && this.#state !== "closed") {
        const parts = this.#out;
        this.#out = [];
        const data = parts.length === 1 ? parts[0] : concat(parts);
        for (let o = 0; o < data.length;) o += await this.#conn.write(data.subarray(o));
        if (!this.#isClosed()) this.#buffered -= data.length;
      }
    } catch (e) {
      this.#terminate(CloseCode.Abnormal, `write failed: ${(e as Error).message}`);
    } finally {
      this.#writing = false;
    }
    const waiters = this.#flushed;
    this.#flushed = [];
    for (const w of waiters) w();
  }

  /** A method so TypeScript does not narrow #state across awaits. */
  #isClosed(): boolean {
    return this.#state === "closed";
  }

  #afterFlush(fn: () => void): void {
    if (!this.#writing && this.#out.length === 0) fn();
    else this.#flushed.push(fn);
  }
}

function parseCloseChecked(payload: Uint8Array): CloseInfo {
  try {
    return parseClose(payload);
  } catch (e) {
    if (e instanceof WsProtocolError) throw e;
    throw new WsProtocolError("close reason is not UTF-8", CloseCode.InvalidData);
  }
}

/** A proxy URL for messages: no credentials. */
function redactProxy(proxy: string): string {
  return proxy.replace(/\/\/[^@/]*@/, "//");
}
