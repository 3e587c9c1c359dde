/** A small RFC 1035 encoder for tests: the queries and answers the DNS relay carries. */

export const u16 = (n: number) => [n >> 8, n & 0xff];

export const qname = (name: string) => [
  ...name.split(".").filter((l) => l).flatMap((l) => [l.length, ...new TextEncoder().encode(l)]),
  0,
];

/** An OPT RR (RFC 6891 §6.1.2): root name, TYPE 41, CLASS = UDP payload size, TTL 0, no RDATA. */
export const opt = (udp: number) => [0, ...u16(41), ...u16(udp), 0, 0, 0, 0, ...u16(0)];

/** A TXT query for `name` (RD set unless `flags` says otherwise), with an OPT RR if `edns`. */
export function query(
  id: number,
  name: string,
  o: { edns?: number; flags?: number } = {},
): Uint8Array {
  const ar = o.edns === undefined ? [] : opt(o.edns);
  return new Uint8Array([
    ...u16(id),
    ...u16(o.flags ?? 0x0100), // RD
    ...u16(1),
    ...u16(0),
    ...u16(0),
    ...u16(ar.length ? 1 : 0),
    ...qname(name),
    ...u16(16), // TXT
    ...u16(1),
    ...ar,
  ]);
}

/** The question name of a message we built. */
export function questionName(msg: Uint8Array): string {
  const labels: string[] = [];
  for (let at = 12; at < msg.length && msg[at] !== 0; at += msg[at] + 1) {
    labels.push(new TextDecoder().decode(msg.subarray(at + 1, at + 1 + msg[at])));
  }
  return labels.join(".");
}

/** A NOERROR answer to `q` (same ID) of exactly `size` bytes: the question, then TXT records. */
export function answer(q: Uint8Array, size = 100): Uint8Array {
  const qEnd = 12 + qname(questionName(q)).length + 4;
  const out = [...q.subarray(0, qEnd)];
  out[2] = 0x81, out[3] = 0x80;
  let an = 0;
  while (out.length < size) {
    // 12 bytes of RR header (name pointer, type, class, TTL, RDLENGTH), then RDATA; leave
    // either nothing or room for a whole record after this one.
    const left = size - out.length - 12;
    const rd = left <= 256 ? Math.max(1, left) : Math.min(256, left - 13);
    out.push(0xc0, 12, ...u16(16), ...u16(1), 0, 0, 1, 0, ...u16(rd), rd - 1);
    out.push(...new Array(rd - 1).fill(0x61));
    an++;
  }
  out.splice(6, 2, ...u16(an));
  return new Uint8Array(out);
}
