/**
 * One data-channel WebSocket (specs/ssm-protocol.md §3): dial the StreamUrl, send the
 * OpenDataChannel text frame with the token, then binary ClientMessages both ways. No headers,
 * no auth other than the token. Reconnecting is the session's job; this is a single connection.
 *
 * The client is ws_client.ts (TCP_NODELAY; Deno's own client stalls small writes on Nagle). The
 * session checks liveness with acked traffic; pings here only keep `lastReceived` fresh.
 */
import { ExitCode, UserError } from "../errors.ts";
import { WsClient } from "./ws_client.ts";

export interface OpenDataChannelInput {
  MessageSchemaVersion: "1.0";
  RequestId: string;
  TokenValue: string;
  ClientId: string;
  ClientVersion: string;
}

export function openDataChannelFrame(
  token: string,
  clientId: string,
  clientVersion: string,
): string {
  const m: OpenDataChannelInput = {
    MessageSchemaVersion: "1.0",
    RequestId: crypto.randomUUID(),
    TokenValue: token,
    ClientId: clientId,
    ClientVersion: clientVersion,
  };
  return JSON.stringify(m);
}

export interface SocketHandlers {
  message(bytes: Uint8Array): void;
  /** The connection ended, for whatever reason; called once. */
  closed(reason: string): void;
}

/** The data channel's WebSocket could not be opened or kept. */
export class TransportError extends UserError {
  override name = "TransportError";
  constructor(message: string) {
    super(message, ExitCode.Remote);
  }
}

/** Bytes queued in the socket above which producers should wait (deno-platform.md §3). */
export const HIGH_WATER = 1 << 20;

/** WebSocket pings keep lastReceived fresh on an idle session; MGS answers them. */
const PING_EVERY_MS = 5_000;

export class DataChannelSocket {
  #ws: WsClient;
  #done = false;
  #pinger: ReturnType<typeof setInterval>;
  lastReceived = Date.now();

  private constructor(ws: WsClient, private handlers: SocketHandlers) {
    this.#ws = ws;
    ws.onmessage = (data) => {
      this.lastReceived = Date.now();
      if (typeof data !== "string") handlers.message(data);
      // Text frames after the first are not part of the protocol; ignore them as the plugin does.
    };
    // A pong proves the path is alive even when the agent has nothing to say or ack.
    ws.onpong = () => (this.lastReceived = Date.now());
    ws.onclose = (code, reason) =>
      this.#finish(`WebSocket closed (code ${code}${reason ? `: ${reason}` : ""})`);
    this.#pinger = setInterval(() => ws.ping(), PING_EVERY_MS);
  }

  static async open(
    url: string,
    token: string,
    clientId: string,
    clientVersion: string,
    handlers: SocketHandlers,
    timeoutMs = 15_000,
  ): Promise<DataChannelSocket> {
    let ws: WsClient;
    try {
      ws = await WsClient.connect(url, { timeoutMs });
    } catch (e) {
      // WsClient's messages name the URL without its query string.
      throw new TransportError((e as Error).message);
    }
    ws.send(openDataChannelFrame(token, clientId, clientVersion));
    return new DataChannelSocket(ws, handlers);
  }

  get open(): boolean {
    return !this.#done && this.#ws.open;
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  send(frame: Uint8Array): boolean {
    if (!this.open) return false;
    return this.#ws.send(frame);
  }

  /** Close without waiting; the handlers' `closed` is not called for a close we asked for. */
  close(): void {
    if (this.#done) return;
    this.#done = true;
    clearInterval(this.#pinger);
    this.#ws.onmessage = () => {};
    this.#ws.close();
  }

  #finish(reason: string): void {
    if (this.#done) return;
    this.#done = true;
    clearInterval(this.#pinger);
    this.handlers.closed(reason);
  }
}
