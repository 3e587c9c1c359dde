/**
 * One data-channel WebSocket (specs/ssm-protocol.md §3): dial the StreamUrl, send the
 * OpenDataChannel text frame with the token, then binary ClientMessages both ways. No headers,
 * no auth other than the token. Reconnecting is the session's job; this is a single connection.
 *
 * Deno's client cannot send pings, so liveness is checked by the session with acked traffic.
 */
import { ExitCode, UserError } from "../errors.ts";

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

export class DataChannelSocket {
  #ws: WebSocket;
  #done = false;
  lastReceived = Date.now();

  private constructor(ws: WebSocket, private handlers: SocketHandlers) {
    this.#ws = ws;
    ws.onmessage = (ev) => {
      this.lastReceived = Date.now();
      if (ev.data instanceof ArrayBuffer) handlers.message(new Uint8Array(ev.data));
      // Text frames after the first are not part of the protocol; ignore them as the plugin does.
    };
    ws.onclose = (ev) =>
      this.#finish(`WebSocket closed (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ""})`);
    ws.onerror = (ev) =>
      this.#finish(`WebSocket error: ${(ev as ErrorEvent).message ?? "unknown"}`);
  }

  static open(
    url: string,
    token: string,
    clientId: string,
    clientVersion: string,
    handlers: SocketHandlers,
    timeoutMs = 15_000,
  ): Promise<DataChannelSocket> {
    return new Promise((resolve, reject) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(url);
      } catch (e) {
        reject(new TransportError(`cannot open ${redact(url)}: ${(e as Error).message}`));
        return;
      }
      ws.binaryType = "arraybuffer";
      const timer = setTimeout(() => {
        ws.onopen = ws.onerror = ws.onclose = null;
        try {
          ws.close();
        } catch { /* already failing */ }
        reject(new TransportError(`timed out connecting to ${redact(url)}`));
      }, timeoutMs);
      ws.onopen = () => {
        clearTimeout(timer);
        ws.send(openDataChannelFrame(token, clientId, clientVersion));
        resolve(new DataChannelSocket(ws, handlers));
      };
      ws.onerror = (ev) => {
        clearTimeout(timer);
        ws.onclose = null;
        reject(
          new TransportError(
            `cannot connect to ${redact(url)}: ${(ev as ErrorEvent).message ?? "error"}`,
          ),
        );
      };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        reject(new TransportError(`${redact(url)} closed the connection (code ${ev.code})`));
      };
    });
  }

  get open(): boolean {
    return !this.#done && this.#ws.readyState === WebSocket.OPEN;
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  send(frame: Uint8Array): boolean {
    if (!this.open) return false;
    this.#ws.send(frame);
    return true;
  }

  /** Close without waiting; the handlers' `closed` is not called for a close we asked for. */
  close(): void {
    if (this.#done) return;
    this.#done = true;
    this.#ws.onmessage = null;
    try {
      this.#ws.close();
    } catch { /* closing a failed socket */ }
  }

  #finish(reason: string): void {
    if (this.#done) return;
    this.#done = true;
    this.handlers.closed(reason);
  }
}

/** StreamUrls carry no secrets today, but their query string is opaque: keep logs short. */
function redact(url: string): string {
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}
