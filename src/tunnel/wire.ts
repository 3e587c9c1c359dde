/**
 * ssm-proxy's tunnel protocol inside each stripe's byte stream (DESIGN §3). Pure.
 *
 * Every frame: type (u8) | flags (u8, 0) | length (u16 big-endian) | body[length].
 *   HELLO (1), client → agent, first frame of a stripe. Body: JSON Hello.
 *   WELCOME (2), agent → client, answer to HELLO. Body: JSON Welcome.
 *   PACKETS (3), both ways. Body: repeated { length (u16 BE) | IP packet }.
 *   PING (4) / PONG (5), both ways. Body: 8 opaque bytes, echoed in the PONG.
 *   ERROR (6), both ways, then the sender closes the stripe. Body: JSON WireErrorBody.
 *   LOAD (7), agent → client, only when the HELLO lists the feature "load": how backed up the
 *     agent's side of this stripe was lately. Body: busy (u16 BE, per mille of the interval a
 *     write to the stripe was waiting) | drops (u32 BE, packets dropped in the interval).
 *     The client cannot see the agent's queues, yet downloads back up there (striping.ts).
 *   CHALLENGE (8), agent → client, only when the HELLO lists the feature "identity": the answer
 *     to that HELLO instead of WELCOME. Body: JSON { nonce }. The client answers with a PROOF
 *     bound to the nonce; the agent then sends WELCOME (or ERROR identity-refused).
 *   PROOF (9), client → agent, answer to CHALLENGE. Body: the identity proof's JSON text
 *     (src/aws/identity_proof_shape.ts encodeProof/decodeProof): a presigned GetCallerIdentity.
 *
 * JSON for the rare control frames keeps them extensible; PACKETS is binary because it is the
 * data path. A peer that does not know a frame type skips it (length is always present).
 */
import { ByteQueue } from "../bytequeue.ts";

export const FrameType = {
  Hello: 1,
  Welcome: 2,
  Packets: 3,
  Ping: 4,
  Pong: 5,
  Error: 6,
  Load: 7,
  Challenge: 8,
  Proof: 9,
} as const;

/** HELLO feature: the client wants LOAD frames. */
export const FEATURE_LOAD = "load";
/**
 * HELLO feature: the client wants IPv6 too. The WELCOME then carries address6 and peer6, or
 * ipv6Off saying why not; an agent without IPv6 support sends neither.
 */
export const FEATURE_IPV6 = "ipv6";
/**
 * HELLO feature: the client can prove its IAM identity. An agent that checks identities answers
 * the HELLO with CHALLENGE; one that does not (or an older agent) answers with WELCOME as before.
 */
export const FEATURE_IDENTITY = "identity";

/** The identity an agent verified through STS, as the WELCOME reports it. */
export interface VerifiedIdentity {
  /** The caller ARN exactly as STS returned it. */
  arn: string;
  account: string;
}

/** How backed up the agent's side of a stripe was over its last interval. */
export interface LoadReport {
  /** Per mille of the interval a write to the stripe was in flight (1000: saturated). */
  busy: number;
  /** Packets the stripe's queue dropped in the interval. */
  drops: number;
}

export const PROTOCOL_VERSION = 1;
export const MAGIC = "ssm-proxy";
export const FRAME_HEADER = 4;
export const MAX_BODY = 0xffff;

export interface Hello {
  magic: typeof MAGIC;
  /** Versions the client speaks; the agent picks the highest it also speaks. */
  versions: number[];
  /** 128-bit random id (32 hex chars): stripes with the same id form one tunnel. */
  tunnelId: string;
  stripe: number;
  stripes: number;
  mtu: number;
  features: string[];
  client: string;
}

export interface Policy {
  allow: string[];
  deny: string[];
}

export interface Welcome {
  version: number;
  /** The client's tunnel address, unique per tunnel id. */
  address: string;
  /** The agent's address on its tun (the client's point-to-point peer). */
  peer: string;
  mtu: number;
  /** The VPC resolver, reachable through the tunnel, for split DNS. */
  resolver?: string;
  policy: Policy;
  agent: string;
  /** With FEATURE_IPV6, when the agent carries IPv6: the client's IPv6 address… */
  address6?: string;
  /** …and the agent's IPv6 address on its tun. */
  peer6?: string;
  /** With FEATURE_IPV6, when the agent does not carry IPv6: why, in one line. */
  ipv6Off?: string;
  /** After a PROOF: who STS says the client is; the policy above is this principal's. */
  identity?: VerifiedIdentity;
  /** After a PROOF the agent could not check (STS unreachable) and let pass: why, in one line. */
  identityUnverified?: string;
}

export type WireErrorCode =
  | "unsupported-version"
  | "bad-hello"
  | "pool-exhausted"
  | "tunnel-mismatch"
  | "protocol"
  | "shutdown"
  /** The agent requires a verified identity and the HELLO offered none. */
  | "identity-required"
  /** The PROOF was malformed, stale, for another nonce, or STS rejected it. */
  | "identity-refused";

export interface WireErrorBody {
  code: WireErrorCode;
  message: string;
  /** With unsupported-version: what the sender speaks. */
  versions?: number[];
}

export type Frame =
  | { type: typeof FrameType.Hello; hello: Hello }
  | { type: typeof FrameType.Welcome; welcome: Welcome }
  | { type: typeof FrameType.Packets; packets: Uint8Array[] }
  | { type: typeof FrameType.Ping | typeof FrameType.Pong; nonce: Uint8Array }
  | { type: typeof FrameType.Error; error: WireErrorBody }
  | { type: typeof FrameType.Load; load: LoadReport }
  | { type: typeof FrameType.Challenge; nonce: string }
  /** The proof's JSON text, not yet validated (decodeProof does that, with the agent's hosts). */
  | { type: typeof FrameType.Proof; proof: string }
  | { type: "unknown"; code: number };

export class WireError extends Error {
  override name = "WireError";
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function frame(type: number, body: Uint8Array): Uint8Array {
  if (body.length > MAX_BODY) throw new WireError(`frame body of ${body.length} bytes`);
  const out = new Uint8Array(FRAME_HEADER + body.length);
  out[0] = type;
  out[2] = body.length >> 8;
  out[3] = body.length & 0xff;
  out.set(body, FRAME_HEADER);
  return out;
}

export const encodeHello = (h: Hello) => frame(FrameType.Hello, enc.encode(JSON.stringify(h)));
export const encodeWelcome = (w: Welcome) =>
  frame(FrameType.Welcome, enc.encode(JSON.stringify(w)));
export const encodeError = (e: WireErrorBody) =>
  frame(FrameType.Error, enc.encode(JSON.stringify(e)));
export const encodeChallenge = (nonce: string) =>
  frame(FrameType.Challenge, enc.encode(JSON.stringify({ nonce })));
export const encodeProofFrame = (proofText: string) =>
  frame(FrameType.Proof, enc.encode(proofText));
export const encodePing = (nonce: Uint8Array) => frame(FrameType.Ping, nonce);
export const encodePong = (nonce: Uint8Array) => frame(FrameType.Pong, nonce);

export function encodeLoad(l: LoadReport): Uint8Array {
  const body = new Uint8Array(6);
  const v = new DataView(body.buffer);
  v.setUint16(0, Math.max(0, Math.min(1000, Math.round(l.busy))));
  v.setUint32(2, Math.max(0, Math.min(0xffffffff, Math.round(l.drops))));
  return frame(FrameType.Load, body);
}

/**
 * Pack packets into as few PACKETS frames as fit in MAX_BODY each. Packets larger than
 * MAX_BODY - 2 cannot be carried and are skipped (the MTU keeps them from existing).
 */
export function encodePackets(packets: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of packets) if (p.length + 2 <= MAX_BODY) total += p.length + 2;
  // Upper bound on frames: every frame holds at least one packet.
  const out = new Uint8Array(total + FRAME_HEADER * Math.max(1, packets.length));
  let o = 0;
  let frameStart = -1;
  let bodyLen = 0;
  const close = () => {
    if (frameStart < 0) return;
    out[frameStart] = FrameType.Packets;
    out[frameStart + 1] = 0;
    out[frameStart + 2] = bodyLen >> 8;
    out[frameStart + 3] = bodyLen & 0xff;
    frameStart = -1;
  };
  for (const p of packets) {
    const need = p.length + 2;
    if (need > MAX_BODY) continue;
    if (frameStart < 0 || bodyLen + need > MAX_BODY) {
      close();
      frameStart = o;
      o += FRAME_HEADER;
      bodyLen = 0;
    }
    out[o] = p.length >> 8;
    out[o + 1] = p.length & 0xff;
    out.set(p, o + 2);
    o += need;
    bodyLen += need;
  }
  close();
  return out.subarray(0, o);
}

/** Split a PACKETS body; a length running past the end is a protocol error. */
export function decodePackets(body: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let o = 0;
  while (o < body.length) {
    if (o + 2 > body.length) throw new WireError("truncated packet length");
    const n = (body[o] << 8) | body[o + 1];
    o += 2;
    if (n === 0 || o + n > body.length) {
      throw new WireError(`packet length ${n} overruns its frame`);
    }
    out.push(body.subarray(o, o + n));
    o += n;
  }
  return out;
}

function json<T>(body: Uint8Array, what: string): T {
  try {
    const v = JSON.parse(dec.decode(body));
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
    return v as T;
  } catch (e) {
    throw new WireError(`malformed ${what}: ${(e as Error).message}`);
  }
}

const isStr = (v: unknown): v is string => typeof v === "string";
/** Shape only: the client parses the address where it uses it. */
const isIpv6 = (v: unknown): v is string =>
  isStr(v) && v.includes(":") && /^[0-9a-fA-F:.]+$/.test(v);
const isInt = (v: unknown, lo: number, hi: number): v is number =>
  Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;

export function validateHello(h: Hello): Hello {
  if (h.magic !== MAGIC) throw new WireError("not an ssm-proxy client (bad magic)");
  if (!Array.isArray(h.versions) || !h.versions.every((v) => isInt(v, 0, 0xffff))) {
    throw new WireError("hello without versions");
  }
  if (!isStr(h.tunnelId) || !/^[0-9a-f]{32}$/.test(h.tunnelId)) {
    throw new WireError("bad tunnel id");
  }
  if (!isInt(h.stripes, 1, 64) || !isInt(h.stripe, 0, h.stripes - 1)) {
    throw new WireError(`bad stripe ${h.stripe} of ${h.stripes}`);
  }
  if (!isInt(h.mtu, 576, 65535 - 2)) throw new WireError(`bad MTU ${h.mtu}`);
  if (!Array.isArray(h.features)) h.features = [];
  if (!isStr(h.client)) h.client = "unknown";
  return h;
}

export function validateWelcome(w: Welcome): Welcome {
  if (!isInt(w.version, 0, 0xffff)) throw new WireError("welcome without version");
  if (!isStr(w.address) || !isStr(w.peer)) throw new WireError("welcome without addresses");
  if (!isInt(w.mtu, 576, 65535 - 2)) throw new WireError(`bad MTU ${w.mtu}`);
  if (w.resolver !== undefined && !isStr(w.resolver)) throw new WireError("bad resolver");
  const p = w.policy ?? { allow: [], deny: [] };
  if (!Array.isArray(p.allow) || !Array.isArray(p.deny)) throw new WireError("bad policy");
  if (!isStr(w.agent)) w.agent = "unknown";
  if ((w.address6 === undefined) !== (w.peer6 === undefined)) {
    throw new WireError("welcome with only one of address6 and peer6");
  }
  if (w.address6 !== undefined && !(isIpv6(w.address6) && isIpv6(w.peer6))) {
    throw new WireError("bad IPv6 addresses in welcome");
  }
  if (w.ipv6Off !== undefined && !isStr(w.ipv6Off)) throw new WireError("bad ipv6Off");
  if (w.ipv6Off !== undefined && w.address6 !== undefined) {
    throw new WireError("welcome with both address6 and ipv6Off");
  }
  if (
    w.identity !== undefined &&
    !(typeof w.identity === "object" && w.identity !== null && isStr(w.identity.arn) &&
      isStr(w.identity.account))
  ) {
    throw new WireError("bad identity in welcome");
  }
  if (w.identityUnverified !== undefined && !isStr(w.identityUnverified)) {
    throw new WireError("bad identityUnverified");
  }
  return w;
}

function decodeBody(type: number, body: Uint8Array): Frame {
  switch (type) {
    case FrameType.Hello:
      return { type, hello: validateHello(json<Hello>(body, "hello")) };
    case FrameType.Welcome:
      return { type, welcome: validateWelcome(json<Welcome>(body, "welcome")) };
    case FrameType.Packets:
      return { type, packets: decodePackets(body) };
    case FrameType.Ping:
    case FrameType.Pong:
      return { type, nonce: body };
    case FrameType.Load: {
      if (body.length < 6) throw new WireError(`LOAD of ${body.length} bytes`);
      const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
      return { type, load: { busy: Math.min(1000, v.getUint16(0)), drops: v.getUint32(2) } };
    }
    case FrameType.Challenge: {
      const c = json<{ nonce?: unknown }>(body, "challenge");
      // The nonce goes into a signed header: only plain characters (identity_proof_shape.ts).
      if (!isStr(c?.nonce) || !/^[A-Za-z0-9_-]{16,64}$/.test(c.nonce)) {
        throw new WireError("challenge without a usable nonce");
      }
      return { type, nonce: c.nonce };
    }
    case FrameType.Proof:
      return { type, proof: dec.decode(body) };
    case FrameType.Error: {
      const e = json<WireErrorBody>(body, "error frame");
      return {
        type,
        error: { code: e.code, message: isStr(e.message) ? e.message : "", versions: e.versions },
      };
    }
    default:
      return { type: "unknown", code: type };
  }
}

/**
 * Streaming frame reader for one stripe: push bytes as they arrive, take frames out. Throws
 * WireError on a malformed frame; the stripe is then unusable (its byte stream lost sync).
 * Packets may be views of pushed chunks: callers must not reuse pushed buffers.
 */
export class FrameReader {
  #q = new ByteQueue();

  push(chunk: Uint8Array): Frame[] {
    this.#q.push(chunk);
    const frames: Frame[] = [];
    while (this.#q.length >= FRAME_HEADER) {
      const h = this.#q.peek(FRAME_HEADER);
      const type = h[0];
      const len = (h[2] << 8) | h[3];
      if (this.#q.length < FRAME_HEADER + len) break;
      this.#q.skip(FRAME_HEADER);
      frames.push(decodeBody(type, this.#q.take(len)));
    }
    return frames;
  }

  get pending(): number {
    return this.#q.length;
  }
}

/** The versions this build speaks; the agent picks the highest common one. */
export function chooseVersion(
  offered: number[],
  supported: number[] = [PROTOCOL_VERSION],
): number | undefined {
  const common = offered.filter((v) => supported.includes(v));
  return common.length ? Math.max(...common) : undefined;
}
