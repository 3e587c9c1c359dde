/**
 * Test harness for the MGS / emulated-agent tests. It plays the CLIENT from
 * specs/ssm-protocol.md with raw frames and its own minimal logic (only the pure codecs are
 * shared with the product): OpenDataChannel, ack-and-reorder of output_stream_data, the Port
 * handshake, and a tiny smux client on top. Everything listens and dials on 127.0.0.1.
 */
import { createMgs, type MgsOptions } from "../../src/emulator/mgs.ts";
import { type SessionGrant, SessionRegistry } from "../../src/emulator/sessions.ts";
import {
  ackPayload,
  type ClientMessage,
  decodeMessage,
  encodeMessage,
  Flags,
  jsonBytes,
  MessageType,
  PayloadType,
} from "../../src/ssm/message.ts";
import { Cmd, encodeFrame, SmuxParser } from "../../src/ssm/smux_frame.ts";

export const dec = new TextDecoder();
export const enc = new TextEncoder();
export const json = (b: Uint8Array): Record<string, unknown> => JSON.parse(dec.decode(b));
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Env {
  registry: SessionRegistry;
  mgs: ReturnType<typeof createMgs>;
  port: number;
  logs: string[];
  /** A client on this emulator, closed by `close()`. */
  connect(grant: SessionGrant, opts?: ClientOptions): TestClient;
  /** StartSession for a port-forwarding document. */
  start(port: number, doc?: string, extra?: Record<string, string[]>): SessionGrant;
  close(): Promise<void>;
}

export function startEmulator(opts: Partial<MgsOptions> = {}): Env {
  let port = 0;
  const logs: string[] = [];
  const registry = new SessionRegistry(() => `ws://127.0.0.1:${port}`);
  const mgs = createMgs({ registry, pacing: false, log: (l) => logs.push(l), ...opts });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => mgs.handle(req) ?? new Response("not found", { status: 404 }),
  );
  port = server.addr.port;
  const clients: TestClient[] = [];
  return {
    registry,
    mgs,
    port,
    logs,
    start: (p, doc = "AWS-StartPortForwardingSession", extra = {}) =>
      registry.start("i-0123456789abcdef0", doc, { portNumber: [String(p)], ...extra }),
    connect(grant, o) {
      const c = TestClient.connect(grant, o);
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) await c.close();
      await mgs.close();
      await server.shutdown();
    },
  };
}

export interface ClientOptions {
  /** Ack and reorder output_stream_data like a client does (default true). */
  autoAck?: boolean;
}

/** A raw-frame data-channel client. */
export class TestClient {
  readonly ws: WebSocket;
  /** Every frame received, decoded (the digest is verified, as the plugin does). */
  readonly all: ClientMessage[] = [];
  /** In-order, de-duplicated output_stream_data (with autoAck). */
  readonly delivered: ClientMessage[] = [];
  readonly closed: Promise<CloseEvent>;
  readonly opened: Promise<void>;
  nextSeq = 0;
  #expected = 0;
  #buffer = new Map<number, ClientMessage>();
  #waiters = new Set<() => void>();
  #autoAck: boolean;
  onDeliver?: (m: ClientMessage) => void;

  constructor(url: string, token: string, opts: ClientOptions = {}, first?: string) {
    this.#autoAck = opts.autoAck ?? true;
    this.ws = new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
    const opened = Promise.withResolvers<void>();
    const closed = Promise.withResolvers<CloseEvent>();
    this.opened = opened.promise;
    this.closed = closed.promise;
    this.ws.onopen = () => {
      this.ws.send(
        first ?? JSON.stringify({
          MessageSchemaVersion: "1.0",
          RequestId: crypto.randomUUID(),
          TokenValue: token,
          ClientId: crypto.randomUUID(),
          ClientVersion: "1.2.764.0",
        }),
      );
      opened.resolve();
    };
    this.ws.onerror = () => {};
    this.ws.onclose = (e) => {
      opened.resolve();
      closed.resolve(e);
      this.#notify();
    };
    this.ws.onmessage = (e) => this.#onFrame(new Uint8Array(e.data as ArrayBuffer));
  }

  static connect(grant: SessionGrant, opts: ClientOptions = {}): TestClient {
    return new TestClient(grant.StreamUrl, grant.TokenValue, opts);
  }

  /** Carry the sequence state of a previous socket over, as a resuming client does. */
  adopt(prev: TestClient): void {
    this.nextSeq = prev.nextSeq;
    this.#expected = prev.#expected;
  }

  sendRaw(bytes: Uint8Array): void {
    this.ws.send(bytes);
  }

  /** A sequenced input_stream_data message; `seq` overrides the counter (it still advances). */
  sendInput(payloadType: number, payload: Uint8Array, seq?: number): ClientMessage {
    const m = inputMessage(seq ?? this.nextSeq, payloadType, payload);
    if (seq === undefined) this.nextSeq++;
    this.ws.send(encodeMessage(m));
    return m;
  }

  ack(m: ClientMessage): void {
    this.ws.send(encodeMessage({
      messageType: MessageType.Acknowledge,
      schemaVersion: 1,
      createdDate: Date.now(),
      sequenceNumber: 0n,
      flags: Flags.Ack,
      messageId: crypto.randomUUID(),
      payloadType: 0,
      payload: ackPayload(m),
    }));
  }

  /** Waits for a received frame (searching from index `from` of `all`) matching `pred`. */
  async waitFor(
    pred: (m: ClientMessage) => boolean,
    opts: { from?: number; timeoutMs?: number; what?: string } = {},
  ): Promise<ClientMessage> {
    const deadline = Date.now() + (opts.timeoutMs ?? 5000);
    while (true) {
      const hit = this.all.slice(opts.from ?? 0).find(pred);
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${opts.what ?? "a frame"}`);
      await this.#wait(left);
    }
  }

  /** Waits until `cond()` holds, re-checking on every frame. */
  async until(cond: () => boolean, timeoutMs = 5000, what = "a condition"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await this.#wait(Math.min(left, 50));
    }
  }

  /** The Port handshake as the plugin does it; returns the parsed request and complete. */
  async handshake(clientVersion = "1.2.764.0", actionStatus = 1) {
    const req = await this.waitFor((m) => m.payloadType === PayloadType.HandshakeRequest, {
      what: "HandshakeRequest",
    });
    this.sendInput(PayloadType.HandshakeResponse, handshakeResponse(clientVersion, actionStatus));
    const done = await this.waitFor((m) => m.payloadType === PayloadType.HandshakeComplete, {
      what: "HandshakeComplete",
    });
    return { request: req, complete: done };
  }

  close(): Promise<CloseEvent> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close();
    else if (this.ws.readyState === WebSocket.CONNECTING) this.opened.then(() => this.ws.close());
    return this.closed;
  }

  #onFrame(bytes: Uint8Array): void {
    const m = decodeMessage(bytes);
    this.all.push(m);
    if (this.#autoAck && m.messageType === MessageType.OutputStreamData) {
      const seq = Number(m.sequenceNumber);
      this.ack(m);
      if (seq >= this.#expected) this.#buffer.set(seq, m);
      while (this.#buffer.has(this.#expected)) {
        const next = this.#buffer.get(this.#expected)!;
        this.#buffer.delete(this.#expected++);
        this.delivered.push(next);
        this.onDeliver?.(next);
      }
    }
    this.#notify();
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.#waiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.#waiters.add(done);
    });
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }
}

export function inputMessage(seq: number, payloadType: number, payload: Uint8Array): ClientMessage {
  return {
    messageType: MessageType.InputStreamData,
    schemaVersion: 1,
    createdDate: Date.now(),
    sequenceNumber: BigInt(seq),
    flags: Flags.None,
    messageId: crypto.randomUUID(),
    payloadType,
    payload,
  };
}

export function handshakeResponse(clientVersion: string, actionStatus = 1): Uint8Array {
  return jsonBytes({
    ClientVersion: clientVersion,
    ProcessedClientActions: [{
      ActionType: "SessionType",
      ActionStatus: actionStatus,
      ActionResult: null,
      Error: "",
    }],
    Errors: null,
  });
}

/** A smux v1 client over a TestClient: streams 3, 5, 7…, data collected per stream. */
export class MuxClient {
  #parser = new SmuxParser();
  #nextId = 3;
  readonly data = new Map<number, Uint8Array[]>();
  readonly fins = new Set<number>();
  readonly nops: number[] = [];
  readonly outputSizes: number[] = [];

  constructor(readonly c: TestClient) {
    c.onDeliver = (m) => {
      if (m.payloadType !== PayloadType.Output) return;
      this.outputSizes.push(m.payload.length);
      for (const f of this.#parser.push(m.payload)) {
        if (f.cmd === Cmd.PSH) {
          const l = this.data.get(f.streamId) ?? [];
          l.push(f.data);
          this.data.set(f.streamId, l);
        } else if (f.cmd === Cmd.FIN) this.fins.add(f.streamId);
        else if (f.cmd === Cmd.NOP) this.nops.push(Date.now());
      }
    };
  }

  open(): number {
    const sid = this.#nextId;
    this.#nextId += 2;
    this.c.sendInput(PayloadType.Output, encodeFrame(Cmd.SYN, sid));
    return sid;
  }

  /** PSH in Output messages of at most 1024 bytes, as the plugin reads its pipe. */
  write(sid: number, bytes: Uint8Array): void {
    for (let o = 0; o < bytes.length; o += 1016) {
      this.c.sendInput(PayloadType.Output, encodeFrame(Cmd.PSH, sid, bytes.subarray(o, o + 1016)));
    }
  }

  fin(sid: number): void {
    this.c.sendInput(PayloadType.Output, encodeFrame(Cmd.FIN, sid));
  }

  received(sid: number): Uint8Array {
    const parts = this.data.get(sid) ?? [];
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  receivedLength(sid: number): number {
    return (this.data.get(sid) ?? []).reduce((n, p) => n + p.length, 0);
  }
}

/** A TCP server (on 127.0.0.1 unless told) running `serve` per connection; close() ends all. */
export function tcpServer(serve: (conn: Deno.TcpConn) => Promise<void>, hostname = "127.0.0.1") {
  const listener = Deno.listen({ hostname, port: 0 });
  const conns = new Set<Deno.TcpConn>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        accepted++;
        conns.add(conn);
        const t = serve(conn).catch(() => {}).finally(() => {
          conns.delete(conn);
          try {
            conn.close();
          } catch { /* already closed */ }
        });
        tasks.add(t);
      }
    } catch { /* listener closed */ }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get accepted() {
      return accepted;
    },
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await loop;
      await Promise.all([...tasks]);
    },
  };
}

export function echoServer(hostname = "127.0.0.1") {
  return tcpServer(async (conn) => {
    const buf = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) return;
      let o = 0;
      while (o < n) o += await conn.write(buf.subarray(o, n));
    }
  }, hostname);
}

/** A port that refuses connections: bound, then released. */
export function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export function randomBytes(n: number, seed = 7): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}
