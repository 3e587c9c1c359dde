/**
 * RFC 6455 framing for a client, without I/O: encode masked frames, parse server frames from a
 * ByteQueue. The connection (ws_client.ts) owns sockets, timers and the close handshake.
 */
import { ByteQueue } from "../bytequeue.ts";

export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

export const CloseCode = {
  Normal: 1000,
  ProtocolError: 1002,
  NoStatus: 1005,
  Abnormal: 1006,
  InvalidData: 1007,
  TooBig: 1009,
} as const;

/** The peer broke the protocol; the connection closes with `code`. */
export class WsProtocolError extends Error {
  override name = "WsProtocolError";
  constructor(message: string, readonly code: number = CloseCode.ProtocolError) {
    super(message);
  }
}

export interface Frame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

/**
 * One masked client frame. The payload is placed at a 4-byte-aligned offset of a fresh buffer so
 * the mask can be applied a word at a time (the usual bottleneck for large frames).
 */
export function encodeFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const n = payload.length;
  const lenBytes = n < 126 ? 0 : n < 0x10000 ? 2 : 8;
  const head = 2 + lenBytes + 4;
  const pad = (4 - (head % 4)) % 4;
  const buf = new Uint8Array(pad + head + n);
  const out = buf.subarray(pad);
  out[0] = (fin ? 0x80 : 0) | opcode;
  if (lenBytes === 0) out[1] = 0x80 | n;
  else if (lenBytes === 2) {
    out[1] = 0x80 | 126;
    out[2] = n >>> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer, out.byteOffset + 2, 8).setBigUint64(0, BigInt(n));
  }
  const key = out.subarray(head - 4, head);
  crypto.getRandomValues(key);
  out.set(payload, head);
  mask(buf, pad + head, n, key);
  return out;
}

/** XOR `buf[at, at+n)` with the repeating 4-byte `key`; `at` must be 4-byte aligned in buf. */
function mask(buf: Uint8Array, at: number, n: number, key: Uint8Array): void {
  const words = n >>> 2;
  if (words > 0 && (buf.byteOffset + at) % 4 === 0) {
    // Reading the key through a Uint32Array gives it in native byte order, matching the data view.
    const k = new Uint32Array(key.slice().buffer)[0];
    const w = new Uint32Array(buf.buffer, buf.byteOffset + at, words);
    for (let i = 0; i < words; i++) w[i] ^= k;
    for (let i = words * 4; i < n; i++) buf[at + i] ^= key[i & 3];
    return;
  }
  for (let i = 0; i < n; i++) buf[at + i] ^= key[i & 3];
}

/** Close frame payload: 2-byte code then UTF-8 reason (truncated to fit 125 bytes). */
export function closePayload(code: number, reason = ""): Uint8Array {
  const r = new TextEncoder().encode(reason).subarray(0, 123);
  const out = new Uint8Array(2 + r.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(r, 2);
  return out;
}

export function parseClose(payload: Uint8Array): { code: number; reason: string } {
  if (payload.length === 0) return { code: CloseCode.NoStatus, reason: "" };
  if (payload.length === 1) throw new WsProtocolError("close frame with a 1-byte payload");
  const code = (payload[0] << 8) | payload[1];
  const reason = new TextDecoder("utf-8", { fatal: true }).decode(payload.subarray(2));
  return { code, reason };
}

/** Parses server frames; linear in input however it is chunked (ByteQueue copies only spans). */
export class FrameParser {
  readonly queue = new ByteQueue();

  constructor(private maxPayload = 256 << 20) {}

  push(chunk: Uint8Array): void {
    this.queue.push(chunk);
  }

  /** The next complete frame, or null if more bytes are needed. Throws WsProtocolError. */
  next(): Frame | null {
    const q = this.queue;
    if (q.length < 2) return null;
    const h = q.peek(2);
    const b0 = h[0], b1 = h[1];
    if (b0 & 0x70) throw new WsProtocolError("reserved bits set (no extension was negotiated)");
    if (b1 & 0x80) throw new WsProtocolError("server frame is masked");
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const control = opcode >= 0x8;
    if (!(opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xa))) {
      throw new WsProtocolError(`unknown opcode ${opcode}`);
    }
    let len = b1 & 0x7f;
    if (control && (len > 125 || !fin)) {
      throw new WsProtocolError("control frame fragmented or over 125 bytes");
    }
    let head = 2;
    if (len === 126) {
      if (q.length < 4) return null;
      const p = q.peek(4);
      len = (p[2] << 8) | p[3];
      head = 4;
    } else if (len === 127) {
      if (q.length < 10) return null;
      const p = q.peek(10);
      const big = new DataView(p.buffer, p.byteOffset + 2, 8).getBigUint64(0);
      if (big > BigInt(this.maxPayload)) {
        throw new WsProtocolError(`frame of ${big} bytes is too big`, CloseCode.TooBig);
      }
      len = Number(big);
      head = 10;
    }
    if (len > this.maxPayload) {
      throw new WsProtocolError(`frame of ${len} bytes is too big`, CloseCode.TooBig);
    }
    if (q.length < head + len) return null;
    q.skip(head);
    return { fin, opcode, payload: q.take(len) };
  }
}
