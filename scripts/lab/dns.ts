/**
 * A tiny DNS message codec (RFC 1035 §4) for the lab: enough to ask for and answer A and AAAA
 * (RFC 3596) records. Written here so neither the lab's resolver nor the demo's query depends on
 * dig or a library.
 */
import { formatIP, parseIPv4, parseIPv6 } from "../../ffi/struct.ts";

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
export const CLASS_IN = 1;
export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;

const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const OPCODE_MASK = 0x7800;

export interface Question {
  name: string;
  type: number;
  class: number;
}

export interface Answer {
  name: string;
  type: number;
  class: number;
  ttl: number;
  /** Dotted quad for A, RFC 5952 text for AAAA; undefined for other types (skipped). */
  address?: string;
}

export interface Message {
  id: number;
  /** The raw 16-bit flags word. */
  flags: number;
  response: boolean;
  opcode: number;
  rcode: number;
  questions: Question[];
  answers: Answer[];
}

export class DnsFormatError extends Error {
  override name = "DnsFormatError";
}

/** A standard query (RD set) for one name. */
export function encodeQuery(id: number, name: string, type = TYPE_A): Uint8Array {
  const qname = encodeName(name);
  const out = new Uint8Array(12 + qname.length + 4);
  const v = new DataView(out.buffer);
  v.setUint16(0, id);
  v.setUint16(2, FLAG_RD);
  v.setUint16(4, 1); // QDCOUNT
  out.set(qname, 12);
  v.setUint16(12 + qname.length, type);
  v.setUint16(14 + qname.length, CLASS_IN);
  return out;
}

/**
 * The answer to `query`: the question echoed, then one record per address, A for IPv4 and AAAA
 * for IPv6. An rcode other than NOERROR carries no answers.
 */
export function encodeResponse(
  query: Message,
  rcode: number,
  addresses: string[] = [],
  ttl = 60,
): Uint8Array {
  const q = query.questions[0];
  const qname = q ? encodeName(q.name) : new Uint8Array(0);
  const answers = rcode === RCODE_NOERROR && q ? addresses.map(addressBytes) : [];
  const qlen = q ? qname.length + 4 : 0;
  const out = new Uint8Array(12 + qlen + answers.reduce((n, a) => n + 12 + a.length, 0));
  const v = new DataView(out.buffer);
  v.setUint16(0, query.id);
  v.setUint16(2, FLAG_QR | FLAG_AA | FLAG_RA | (query.flags & (OPCODE_MASK | FLAG_RD)) | rcode);
  v.setUint16(4, q ? 1 : 0);
  v.setUint16(6, answers.length);
  let o = 12;
  if (q) {
    out.set(qname, o);
    o += qname.length;
    v.setUint16(o, q.type);
    v.setUint16(o + 2, q.class);
    o += 4;
  }
  for (const a of answers) {
    v.setUint16(o, 0xc00c); // name: pointer to the question's name at offset 12
    v.setUint16(o + 2, a.length === 4 ? TYPE_A : TYPE_AAAA);
    v.setUint16(o + 4, CLASS_IN);
    v.setUint32(o + 6, ttl);
    v.setUint16(o + 10, a.length);
    out.set(a, o + 12);
    o += 12 + a.length;
  }
  return out;
}

export function decodeMessage(buf: Uint8Array): Message {
  if (buf.length < 12) {
    throw new DnsFormatError(`message of ${buf.length} bytes is shorter than a header`);
  }
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const flags = v.getUint16(2);
  const qd = v.getUint16(4);
  const an = v.getUint16(6);
  let o = 12;
  const need = (n: number) => {
    if (o + n > buf.length) throw new DnsFormatError("message ends inside a record");
  };
  const questions: Question[] = [];
  for (let i = 0; i < qd; i++) {
    const [name, next] = decodeName(buf, o);
    o = next;
    need(4);
    questions.push({ name, type: v.getUint16(o), class: v.getUint16(o + 2) });
    o += 4;
  }
  const answers: Answer[] = [];
  for (let i = 0; i < an; i++) {
    const [name, next] = decodeName(buf, o);
    o = next;
    need(10);
    const type = v.getUint16(o);
    const cls = v.getUint16(o + 2);
    const ttl = v.getUint32(o + 4);
    const rdlen = v.getUint16(o + 8);
    o += 10;
    need(rdlen);
    const address = (type === TYPE_A && rdlen === 4) || (type === TYPE_AAAA && rdlen === 16)
      ? formatIP(buf.subarray(o, o + rdlen))
      : undefined;
    answers.push({ name, type, class: cls, ttl, address });
    o += rdlen;
  }
  return {
    id: v.getUint16(0),
    flags,
    response: (flags & FLAG_QR) !== 0,
    opcode: (flags & OPCODE_MASK) >> 11,
    rcode: flags & 0x000f,
    questions,
    answers,
  };
}

/** Lower-cased, without the trailing dot; labels of 1–63 bytes, 255 in all. */
export function encodeName(name: string): Uint8Array {
  const trimmed = name.replace(/\.$/, "");
  const labels = trimmed === "" ? [] : trimmed.split(".");
  const parts: number[] = [];
  for (const label of labels) {
    const bytes = new TextEncoder().encode(label.toLowerCase());
    if (bytes.length < 1 || bytes.length > 63) {
      throw new DnsFormatError(`label "${label}" in ${name} must be 1 to 63 bytes`);
    }
    parts.push(bytes.length, ...bytes);
  }
  parts.push(0);
  if (parts.length > 255) throw new DnsFormatError(`${name} is longer than 255 bytes`);
  return new Uint8Array(parts);
}

/** Returns the name and the offset after it (after the pointer, when compressed). */
export function decodeName(buf: Uint8Array, start: number): [string, number] {
  const labels: string[] = [];
  let o = start;
  let end = -1;
  // Each pointer must go backwards, so a loop is impossible and the walk ends.
  let limit = start;
  while (true) {
    if (o >= buf.length) throw new DnsFormatError("name runs past the end of the message");
    const len = buf[o];
    if (len === 0) {
      if (end < 0) end = o + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (o + 1 >= buf.length) throw new DnsFormatError("truncated name pointer");
      const target = ((len & 0x3f) << 8) | buf[o + 1];
      if (target >= limit) throw new DnsFormatError("name pointer does not point backwards");
      if (end < 0) end = o + 2;
      limit = target;
      o = target;
      continue;
    }
    if (len > 63) throw new DnsFormatError(`label length ${len} is invalid`);
    if (o + 1 + len > buf.length) {
      throw new DnsFormatError("label runs past the end of the message");
    }
    labels.push(new TextDecoder().decode(buf.subarray(o + 1, o + 1 + len)));
    o += 1 + len;
  }
  return [labels.join(".").toLowerCase(), end];
}

/** An address's record data: 4 bytes (A) or 16 (AAAA). */
function addressBytes(a: string): Uint8Array {
  const b = a.includes(":") ? parseIPv6(a) : parseIPv4(a);
  if (!b) throw new DnsFormatError(`${a} is not an IPv4 or IPv6 address`);
  return b;
}

/**
 * What the lab resolver answers from a table of exact names, each with one or more addresses of
 * either family: an A question gets the IPv4 ones, AAAA the IPv6 ones. Any other name is
 * NXDOMAIN: the lab has no upstream to ask.
 */
export function answerFor(
  table: Record<string, string | string[]>,
  query: Message,
): { rcode: number; addresses: string[] } {
  if (query.response || query.opcode !== 0 || query.questions.length !== 1) {
    return { rcode: query.opcode !== 0 ? RCODE_NOTIMP : RCODE_FORMERR, addresses: [] };
  }
  const q = query.questions[0];
  const entry = table[q.name];
  if (entry === undefined) return { rcode: RCODE_NXDOMAIN, addresses: [] };
  const all = typeof entry === "string" ? [entry] : entry;
  // The name exists; a question for a type it has no records of gets NOERROR, empty (NODATA).
  const v6 = q.type === TYPE_AAAA;
  return {
    rcode: RCODE_NOERROR,
    addresses: q.class === CLASS_IN && (v6 || q.type === TYPE_A)
      ? all.filter((a) => a.includes(":") === v6)
      : [],
  };
}
