/**
 * Pure helpers the forwarder needs on top of src/netstack/dns_message.ts: which name a query asks
 * about, whether it lies in a tunnel zone, and what an answer says about itself. Inputs are
 * untrusted bytes, so nothing here throws.
 */
import { normalizeDomain } from "../net/domain.ts";
import { isRelayableQuery } from "../netstack/dns_message.ts";

const HEADER = 12;

/**
 * The question's name, lower-case and without the root dot ("" for the root), or undefined when
 * the message is not a standard query with one uncompressed question (those are dropped).
 */
export function questionName(msg: Uint8Array): string | undefined {
  if (!isRelayableQuery(msg)) return undefined;
  const labels: string[] = [];
  let at = HEADER;
  // isRelayableQuery proved the labels end in bounds with a root byte and no pointers.
  while (msg[at] !== 0) {
    const len = msg[at];
    let label = "";
    for (let i = at + 1; i <= at + len; i++) {
      const c = msg[i];
      // Case-folded as RFC 4343 says: ASCII letters only; other bytes kept, escaped if odd.
      if (c >= 0x41 && c <= 0x5a) label += String.fromCharCode(c + 0x20);
      else if (c > 0x20 && c < 0x7f && c !== 0x2e && c !== 0x5c) label += String.fromCharCode(c);
      else label += `\\${c.toString().padStart(3, "0")}`;
    }
    labels.push(label);
    at += len + 1;
  }
  return labels.join(".");
}

/** A domain as configured ("Corp.Example." → "corp.example"). */
export function normalizeZone(zone: string): string {
  return normalizeDomain(zone);
}

/** Is `name` (from questionName) one of the zones or under one? The root zone "" holds all. */
export function inZone(name: string, zones: readonly string[]): boolean {
  return zones.some((z) => z === "" || name === z || name.endsWith(`.${z}`));
}

/** Is `answer` a response to `query` (same id, QR set)? */
export function answers(query: Uint8Array, answer: Uint8Array): boolean {
  return answer.length >= HEADER && answer[0] === query[0] && answer[1] === query[1] &&
    (answer[2] & 0x80) !== 0;
}

export function truncated(answer: Uint8Array): boolean {
  return answer.length >= HEADER && (answer[2] & 0x02) !== 0;
}

/**
 * SERVFAIL, NOTIMP and REFUSED: the server could not or would not answer, so glibc would ask the
 * next nameserver; the forwarder does the same, keeping the answer in case nobody does better.
 */
export function worthRetrying(answer: Uint8Array): boolean {
  const rcode = answer.length >= HEADER ? answer[3] & 0x0f : 2;
  return rcode === 2 || rcode === 4 || rcode === 5;
}
