/**
 * Pure helpers on DNS wire messages (RFC 1035 §4.1) for the UDP→TCP relay (specs/netstack.md
 * §10.3). Every function takes untrusted bytes from a local app or a resolver, so none of them
 * throws: garbage comes back as `false` or `undefined`.
 */

import type { Family } from "./types.ts";

const HEADER = 12;
/** RFC 1035 §4.2.1: the size every resolver accepts without EDNS. */
const CLASSIC_UDP = 512;
const TYPE_OPT = 41;
/** A name's labels may take 254 wire bytes; the root byte makes 255 (RFC 1035 §2.3.4). */
const MAX_NAME_LABELS = 254;

const u16 = (b: Uint8Array, at: number) => (b[at] << 8) | b[at + 1];

/**
 * Offset just past the name starting at `at`, or undefined when it runs off the end or breaks a
 * rule. A compression pointer ends a name; it is refused in a question we relay because a query
 * has nothing earlier to point to, and following pointers is how parsers get looped.
 */
function skipName(msg: Uint8Array, at: number, pointers: boolean): number | undefined {
  let total = 0;
  while (at < msg.length) {
    const len = msg[at];
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) return pointers && at + 2 <= msg.length ? at + 2 : undefined;
    // 0x40 and 0x80 prefixes are the retired extended label types (RFC 6891 §5).
    if (len & 0xc0) return undefined;
    total += len + 1;
    if (total > MAX_NAME_LABELS) return undefined;
    at += len + 1;
  }
  return undefined;
}

/** Offset just past the QDCOUNT questions, or undefined. */
function questionsEnd(msg: Uint8Array, pointers: boolean): number | undefined {
  if (msg.length < HEADER) return undefined;
  let at = HEADER;
  for (let n = u16(msg, 4); n > 0; n--) {
    const end = skipName(msg, at, pointers);
    if (end === undefined || end + 4 > msg.length) return undefined;
    at = end + 4;
  }
  return at;
}

/**
 * A standard query we relay (§10.3): a header, QR = 0, opcode QUERY, exactly one question that
 * lies within the message and uses no compression. Anything else aimed at the resolver is refused
 * with ICMP by the caller.
 */
export function isRelayableQuery(msg: Uint8Array): boolean {
  if (msg.length < HEADER || msg.length > 0xffff) return false;
  if (msg[2] & 0x80 || (msg[2] & 0x78) !== 0) return false;
  if (u16(msg, 4) !== 1) return false;
  return questionsEnd(msg, false) !== undefined;
}

/** The OPT RR's CLASS (the requestor's UDP payload size, RFC 6891 §6.1.2), or undefined. */
export function optUdpSize(msg: Uint8Array): number | undefined {
  let at = questionsEnd(msg, true);
  if (at === undefined) return undefined;
  const before = u16(msg, 6) + u16(msg, 8);
  const total = before + u16(msg, 10);
  for (let i = 0; i < total; i++) {
    const end = skipName(msg, at, true);
    if (end === undefined || end + 10 > msg.length) return undefined;
    if (i >= before && u16(msg, end) === TYPE_OPT) return u16(msg, end + 2);
    at = end + 10 + u16(msg, end + 8);
    if (at > msg.length) return undefined;
  }
  return undefined;
}

/**
 * The largest answer we may send back over UDP for this query (§10.3): 512 without EDNS, else
 * max(512, the OPT CLASS). The result is capped so the reply packet (IP + UDP headers) fits the
 * TUN MTU, because we never fragment and never emit a packet longer than the MTU (§11).
 */
export function maxUdpSize(query: Uint8Array, mtu: number, family: Family): number {
  const opt = optUdpSize(query);
  const wanted = opt === undefined ? CLASSIC_UDP : Math.max(CLASSIC_UDP, opt);
  return Math.min(wanted, mtu - (family === 4 ? 28 : 48));
}

/** The message ID, or undefined when there are not even two bytes. */
export function getId(msg: Uint8Array): number | undefined {
  return msg.length >= 2 ? u16(msg, 0) : undefined;
}

/** Overwrite the ID in place; false when the message is too short to have one. */
export function setId(msg: Uint8Array, id: number): boolean {
  if (msg.length < 2) return false;
  msg[0] = (id >>> 8) & 0xff;
  msg[1] = id & 0xff;
  return true;
}

/** A copy of the message carrying `id`, or undefined when it is too short to have an ID. */
export function withId(msg: Uint8Array, id: number): Uint8Array | undefined {
  if (msg.length < 2) return undefined;
  const out = msg.slice();
  setId(out, id);
  return out;
}

/** A copy of header + question section with the three record counts zeroed. */
function headerAndQuestion(msg: Uint8Array): Uint8Array | undefined {
  const end = questionsEnd(msg, true);
  if (end === undefined) return undefined;
  const out = msg.slice(0, end);
  out.fill(0, 6, HEADER);
  return out;
}

/**
 * The answer cut down to header + question with TC set (§10.3), so the client asks again over
 * TCP instead of us fragmenting. Undefined when the answer's question section does not parse.
 */
export function truncate(answer: Uint8Array): Uint8Array | undefined {
  const out = headerAndQuestion(answer);
  if (out === undefined) return undefined;
  out[2] |= 0x02;
  return out;
}

/**
 * A SERVFAIL (RCODE 2) answer to `query`: the question copied, no records. RD and CD are echoed
 * as RFC 1035 §4.1.1 / RFC 6840 §5.9 ask; RA is set because we stand in for a recursive resolver.
 */
export function servfail(query: Uint8Array): Uint8Array | undefined {
  const out = headerAndQuestion(query);
  if (out === undefined) return undefined;
  out[2] = 0x80 | (query[2] & 0x79); // QR, the opcode and RD; AA and TC cleared
  out[3] = 0x80 | (query[3] & 0x10) | 2; // RA, CD, RCODE SERVFAIL
  return out;
}
