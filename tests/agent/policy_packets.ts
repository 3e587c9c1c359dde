/**
 * Headers for judging packets by destination, protocol and port (agent/rules_compile.ts): only
 * what the policy reads is filled in, checksums are not. Also used by bench/policy.ts.
 */
import { parseIPv6 } from "../../ffi/struct.ts";

export const TCP = 6, UDP = 17, ICMP = 1, ICMP6 = 58;

export interface V4Options {
  /** Fragment offset in 8-byte units (non-zero: a non-first fragment). */
  fragOffset?: number;
  /** Header length in bytes (options are zeros). */
  ihl?: number;
  /** Cut the packet to this many bytes. */
  length?: number;
}

export function v4Packet(dst: string, proto: number, dport = 0, o: V4Options = {}): Uint8Array {
  const ihl = o.ihl ?? 20;
  const p = new Uint8Array(ihl + 8 + 12);
  p[0] = 0x40 | (ihl / 4);
  new DataView(p.buffer).setUint16(2, p.length);
  const frag = o.fragOffset ?? 0;
  p[6] = (frag >> 8) & 0x1f;
  p[7] = frag & 0xff;
  p[8] = 64;
  p[9] = proto;
  p.set([100, 64, 0, 2], 12);
  p.set(dst.split(".").map(Number), 16);
  p[ihl] = 0xc0;
  p[ihl + 1] = 0x01; // source port 49153
  p[ihl + 2] = dport >> 8;
  p[ihl + 3] = dport & 0xff;
  return o.length === undefined ? p : p.slice(0, o.length);
}

export type Ext =
  | { type: "hop" | "dst"; units?: number }
  | { type: "routing"; segmentsLeft: number }
  | { type: "frag"; offset: number }
  | { type: "ah" };

const EXT_CODE = { hop: 0, dst: 60, routing: 43, frag: 44, ah: 51 };

/** IPv6 with extension headers `ext` (in order) before `proto` and its port. */
export function v6Packet(
  dst: string,
  proto: number,
  dport = 0,
  ext: Ext[] = [],
  length?: number,
): Uint8Array {
  const headers = ext.map((e) => {
    const size = e.type === "hop" || e.type === "dst"
      ? 8 * ((e.units ?? 0) + 1)
      : e.type === "ah"
      ? 24 // 12-byte ICV: payload length field 4 ((24 / 4) - 2)
      : 8;
    const h = new Uint8Array(size);
    if (e.type === "hop" || e.type === "dst") h[1] = e.units ?? 0;
    if (e.type === "ah") h[1] = size / 4 - 2;
    if (e.type === "routing") h[3] = e.segmentsLeft;
    if (e.type === "frag") {
      h[2] = (e.offset << 3) >> 8;
      h[3] = (e.offset << 3) & 0xf8;
    }
    return h;
  });
  const l4 = new Uint8Array(20);
  l4[0] = 0xc0;
  l4[1] = 0x01;
  l4[2] = dport >> 8;
  l4[3] = dport & 0xff;
  const total = 40 + headers.reduce((n, h) => n + h.length, 0) + l4.length;
  const p = new Uint8Array(total);
  p[0] = 0x60;
  new DataView(p.buffer).setUint16(4, total - 40);
  p[7] = 64;
  p.set(parseIPv6("fd7a:5353:5d8b::2")!, 8);
  const d = parseIPv6(dst);
  if (!d) throw new Error(`bad IPv6 address ${dst}`);
  p.set(d, 24);
  // Each header's next-header byte names the one after it: the IPv6 header's is byte 6.
  let nextAt = 6;
  let at = 40;
  ext.forEach((e, i) => {
    p[nextAt] = EXT_CODE[e.type];
    p.set(headers[i], at);
    nextAt = at;
    at += headers[i].length;
  });
  p[nextAt] = proto;
  p.set(l4, at);
  return length === undefined ? p : p.slice(0, length);
}
