/**
 * Frames the emulated agent and MGS originate (specs/ssm-protocol.md §4, §5, §10). Pure builders
 * on top of the shared codec; the one thing the codec cannot do is the 112-byte header MGS is
 * reported to use for channel_closed, so that variant is assembled here by hand.
 */
import {
  ackPayload,
  type ClientMessage,
  encodeMessage,
  Flags,
  jsonBytes,
  MessageType,
  PayloadType,
  sha256,
  uuidToWire,
} from "../../ssm/message.ts";

const enc = new TextEncoder();

/** Acks carry seq 0 and flags 3 in the header; the acked seq travels in the JSON (§5). */
export function ackFrame(of: ClientMessage, now: number): Uint8Array {
  return encodeMessage({
    messageType: MessageType.Acknowledge,
    schemaVersion: 1,
    createdDate: now,
    sequenceNumber: 0n,
    flags: Flags.Ack,
    messageId: crypto.randomUUID(),
    payloadType: PayloadType.None,
    payload: ackPayload(of),
  });
}

export function streamFrame(
  seq: number,
  payloadType: number,
  payload: Uint8Array,
  now: number,
): Uint8Array {
  return encodeMessage({
    messageType: MessageType.OutputStreamData,
    schemaVersion: 1,
    createdDate: now,
    sequenceNumber: BigInt(seq),
    // The agent marks only its very first stream message with SYN (§5 "Flags actually used").
    flags: seq === 0 ? Flags.Syn : Flags.None,
    messageId: crypto.randomUUID(),
    payloadType,
    payload,
  });
}

export function sessionStateFrame(sessionId: string, state: string, now: number): Uint8Array {
  return encodeMessage({
    messageType: MessageType.AgentSessionState,
    schemaVersion: 1,
    createdDate: now,
    sequenceNumber: 0n,
    flags: Flags.Ack,
    messageId: crypto.randomUUID(),
    payloadType: PayloadType.None,
    payload: jsonBytes({ SchemaVersion: 1, SessionState: state, SessionId: sessionId }),
  });
}

/**
 * start_publication / pause_publication. Their real form is unverified (§5); plain frames with a
 * small JSON body are what the plugin tolerates (it skips validation for them).
 */
export function publicationFrame(kind: "start" | "pause", now: number): Uint8Array {
  return encodeMessage({
    messageType: kind === "start" ? MessageType.StartPublication : MessageType.PausePublication,
    schemaVersion: 1,
    createdDate: now,
    sequenceNumber: 0n,
    flags: Flags.None,
    messageId: crypto.randomUUID(),
    payloadType: PayloadType.None,
    payload: jsonBytes({ SchemaVersion: 1, MessageType: kind + "_publication" }),
  });
}

export interface ChannelClosedInfo {
  sessionId: string;
  destinationId: string;
  output: string;
  /** 116 (what the codec writes) or 112 (no PayloadType field, as real MGS reportedly sends). */
  headerLength: 112 | 116;
  now: number;
}

/** channel_closed with the plugin's struct field order (§10); not sequenced, never acked. */
export function channelClosedFrame(info: ChannelClosedInfo): Uint8Array {
  const messageId = crypto.randomUUID();
  const payload = jsonBytes({
    MessageId: messageId,
    CreatedDate: String(info.now),
    DestinationId: info.destinationId,
    SessionId: info.sessionId,
    MessageType: MessageType.ChannelClosed,
    SchemaVersion: 1,
    Output: info.output,
  });
  const msg: ClientMessage = {
    messageType: MessageType.ChannelClosed,
    schemaVersion: 1,
    createdDate: info.now,
    sequenceNumber: 0n,
    flags: Flags.None,
    messageId,
    payloadType: PayloadType.None,
    payload,
  };
  return info.headerLength === 116 ? encodeMessage(msg) : encode112(msg);
}

/** Same layout as the codec up to byte 112, then PayloadLength at 112 and the payload at 116. */
function encode112(m: ClientMessage): Uint8Array {
  const out = new Uint8Array(116 + m.payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, 112);
  out.fill(0x20, 4, 36);
  out.set(enc.encode(m.messageType), 4);
  v.setUint32(36, m.schemaVersion);
  v.setBigUint64(40, BigInt(m.createdDate));
  v.setBigInt64(48, m.sequenceNumber);
  v.setBigUint64(56, m.flags);
  out.set(uuidToWire(m.messageId), 64);
  out.set(sha256(m.payload), 80);
  v.setUint32(112, m.payload.length);
  out.set(m.payload, 116);
  return out;
}
