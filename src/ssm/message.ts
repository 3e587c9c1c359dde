/**
 * ClientMessage / AgentMessage codec (specs/ssm-protocol.md §4). Pure functions, no I/O.
 *
 * Layout, all big-endian: HeaderLength(4) MessageType(32) SchemaVersion(4) CreatedDate(8)
 * SequenceNumber(8) Flags(8) MessageId(16, half-swapped UUID) PayloadDigest(32) PayloadType(4)
 * PayloadLength(4) Payload. Senders write HeaderLength 116; readers honour the value on the wire
 * (MGS's channel_closed is reported with 112, i.e. without a PayloadType field).
 */
import { createHash } from "node:crypto";

export const HEADER_LENGTH = 116;
export const FRAME_OVERHEAD = 120;
const MIN_HEADER_LENGTH = 112;

export const MessageType = {
  InputStreamData: "input_stream_data",
  OutputStreamData: "output_stream_data",
  Acknowledge: "acknowledge",
  ChannelClosed: "channel_closed",
  StartPublication: "start_publication",
  PausePublication: "pause_publication",
  AgentSessionState: "agent_session_state",
} as const;

export const PayloadType = {
  None: 0,
  Output: 1,
  Error: 2,
  Size: 3,
  Parameter: 4,
  HandshakeRequest: 5,
  HandshakeResponse: 6,
  HandshakeComplete: 7,
  EncChallengeRequest: 8,
  EncChallengeResponse: 9,
  Flag: 10,
  StdErr: 11,
  ExitCode: 12,
} as const;

/** Values of a PayloadType 10 (Flag) payload, a 4-byte big-endian uint32. */
export const PayloadFlag = {
  DisconnectToPort: 1,
  TerminateSession: 2,
  ConnectToPortError: 3,
} as const;

export const Flags = { None: 0n, Syn: 1n, Fin: 2n, Ack: 3n } as const;

export interface ClientMessage {
  messageType: string;
  schemaVersion: number;
  /** Unix epoch milliseconds; never 0 on the wire. */
  createdDate: number;
  sequenceNumber: bigint;
  flags: bigint;
  /** Canonical lowercase hyphenated UUID. */
  messageId: string;
  payloadType: number;
  payload: Uint8Array;
}

export class FrameError extends Error {
  override name = "FrameError";
}

const enc = new TextEncoder();
const dec = new TextDecoder();

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

function hexNibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  return (c | 0x20) - 87; // a-f, validated by UUID_RE
}

/** UUID text → 16 wire bytes: least significant long first (spec §4 "MessageId byte order"). */
export function uuidToWire(uuid: string, out = new Uint8Array(16), at = 0): Uint8Array {
  if (uuid.length !== 36 || !UUID_RE.test(uuid)) {
    throw new FrameError(`invalid UUID ${JSON.stringify(uuid)}`);
  }
  // Canonical byte i goes to wire position (i + 8) % 16.
  let i = 0;
  for (let c = 0; c < 36; c += 2) {
    if (c === 8 || c === 13 || c === 18 || c === 23) c++;
    out[at + ((i + 8) & 15)] = (hexNibble(uuid.charCodeAt(c)) << 4) |
      hexNibble(uuid.charCodeAt(c + 1));
    i++;
  }
  return out;
}

export function uuidFromWire(wire: Uint8Array): string {
  const h = (i: number) => HEX[wire[(i + 8) & 15]];
  return h(0) + h(1) + h(2) + h(3) + "-" + h(4) + h(5) + "-" + h(6) + h(7) + "-" + h(8) + h(9) +
    "-" + h(10) + h(11) + h(12) + h(13) + h(14) + h(15);
}

const typeFields = new Map<string, Uint8Array>();

/** MessageType as its 32-byte field, space padded; cached since a session uses a handful. */
function typeField(t: string): Uint8Array {
  let f = typeFields.get(t);
  if (f) return f;
  if (t.length === 0 || t.length > 32 || !/^[\x21-\x7e]+$/.test(t)) {
    throw new FrameError(`invalid MessageType ${JSON.stringify(t)}`);
  }
  f = new Uint8Array(32).fill(0x20);
  f.set(enc.encode(t));
  if (typeFields.size < 64) typeFields.set(t, f);
  return f;
}

/** The plugin strips NULs from both ends, then whitespace. */
function readType(buf: Uint8Array): string {
  let a = 4;
  let b = 36;
  while (a < b && buf[a] === 0) a++;
  while (b > a && buf[b - 1] === 0) b--;
  while (a < b && isSpace(buf[a])) a++;
  while (b > a && isSpace(buf[b - 1])) b--;
  let s = "";
  for (let i = a; i < b; i++) s += String.fromCharCode(buf[i]);
  return s;
}

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * SHA-256 of the payload. Synchronous because the codec sits on the hot path of a sans-IO
 * engine; crypto.subtle is async only.
 */
export function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}

export function encodeMessage(m: ClientMessage): Uint8Array {
  const n = m.payload.length;
  const out = new Uint8Array(FRAME_OVERHEAD + n);
  const v = new DataView(out.buffer);
  v.setUint32(0, HEADER_LENGTH);
  out.set(typeField(m.messageType), 4);
  v.setUint32(36, m.schemaVersion);
  v.setBigUint64(40, BigInt(m.createdDate));
  v.setBigInt64(48, m.sequenceNumber);
  v.setBigUint64(56, m.flags);
  uuidToWire(m.messageId, out, 64);
  out.set(sha256(m.payload), 80);
  v.setUint32(112, m.payloadType);
  v.setUint32(116, n);
  out.set(m.payload, 120);
  return out;
}

export interface DecodeOptions {
  /** Check SHA-256(payload) against the digest (the plugin does; the agent does not). */
  verifyDigest?: boolean;
}

/**
 * Decode one WebSocket binary message. Throws FrameError on anything malformed; never reads
 * out of bounds. As the plugin does, the payload is everything after HeaderLength + 4, and
 * publication messages skip validation (§4 "Validation rules on receive").
 */
export function decodeMessage(buf: Uint8Array, opts: DecodeOptions = {}): ClientMessage {
  if (buf.length < MIN_HEADER_LENGTH + 4) {
    throw new FrameError(`frame too short (${buf.length} bytes)`);
  }
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hl = v.getUint32(0);
  if (hl < MIN_HEADER_LENGTH || hl + 4 > buf.length) {
    throw new FrameError(`bad HeaderLength ${hl} for a ${buf.length}-byte frame`);
  }
  const messageType = readType(buf);
  const schemaVersion = v.getUint32(36);
  const createdDate = Number(v.getBigUint64(40));
  const sequenceNumber = v.getBigInt64(48);
  const flags = v.getBigUint64(56);
  const messageId = uuidFromWire(buf.subarray(64, 80));
  const digest = buf.subarray(80, 112);
  const payloadType = hl >= 116 ? v.getUint32(112) : 0;
  const payloadLength = v.getUint32(hl);
  // A view, not a copy: the caller hands us a buffer it no longer uses (a WebSocket message).
  const payload = buf.subarray(hl + 4);
  const skipChecks = messageType === MessageType.StartPublication ||
    messageType === MessageType.PausePublication;
  if (!skipChecks) {
    if (messageType.length === 0) throw new FrameError("empty MessageType");
    if (createdDate === 0) throw new FrameError("CreatedDate is 0");
    if (payloadLength !== payload.length) {
      throw new FrameError(`PayloadLength ${payloadLength} but ${payload.length} payload bytes`);
    }
    if (opts.verifyDigest !== false && payload.length > 0 && hl >= 116) {
      const want = sha256(payload);
      for (let i = 0; i < 32; i++) {
        if (want[i] !== digest[i]) throw new FrameError(`payload digest mismatch (${messageType})`);
      }
    }
  }
  return {
    messageType,
    schemaVersion,
    createdDate,
    sequenceNumber,
    flags,
    messageId,
    payloadType,
    payload,
  };
}

// ---- JSON payloads (§5, §6, §10) -------------------------------------------------------------

export interface AcknowledgeContent {
  AcknowledgedMessageType: string;
  AcknowledgedMessageId: string;
  AcknowledgedMessageSequenceNumber: number;
  IsSequentialMessage: boolean;
}

export function ackPayload(of: ClientMessage): Uint8Array {
  const a: AcknowledgeContent = {
    AcknowledgedMessageType: of.messageType,
    AcknowledgedMessageId: of.messageId,
    AcknowledgedMessageSequenceNumber: Number(of.sequenceNumber),
    IsSequentialMessage: true,
  };
  return enc.encode(JSON.stringify(a));
}

export function parseJson<T>(payload: Uint8Array, what: string): T {
  try {
    const v = JSON.parse(dec.decode(payload));
    if (v === null || typeof v !== "object") throw new Error("not an object");
    return v as T;
  } catch (e) {
    throw new FrameError(`malformed ${what} payload: ${(e as Error).message}`);
  }
}

export function parseAck(payload: Uint8Array): AcknowledgeContent {
  const a = parseJson<AcknowledgeContent>(payload, "acknowledge");
  if (typeof a.AcknowledgedMessageSequenceNumber !== "number") {
    throw new FrameError("acknowledge without AcknowledgedMessageSequenceNumber");
  }
  return a;
}

export interface ChannelClosedContent {
  MessageId?: string;
  CreatedDate?: string;
  DestinationId?: string;
  SessionId?: string;
  MessageType?: string;
  SchemaVersion?: number;
  Output?: string;
}

export function flagPayload(flag: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, flag);
  return b;
}

export function parseFlag(payload: Uint8Array): number {
  if (payload.length !== 4) throw new FrameError(`Flag payload of ${payload.length} bytes`);
  return new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
}

export function jsonBytes(v: unknown): Uint8Array {
  return enc.encode(JSON.stringify(v));
}

/**
 * Compare dotted versions numerically, as the agent's versionutil.Compare does: with fewer
 * components a version counts as lower when the common prefix is equal.
 */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map((x) => parseInt(x, 10) || 0);
  const pb = b.split(".").map((x) => parseInt(x, 10) || 0);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i] < pb[i] ? -1 : 1;
  }
  return pa.length === pb.length ? 0 : pa.length < pb.length ? -1 : 1;
}
