/** IPv6 packet crafting for agent tests: UDP and ICMPv6 with valid checksums. */
import { parseIPv6 } from "../../ffi/struct.ts";
import { checksum } from "./helpers.ts";

const ip6 = (text: string) => {
  const b = parseIPv6(text);
  if (!b) throw new Error(`bad IPv6 address ${text}`);
  return b;
};

/** IPv6 header + `l4` (next header `proto`), with the upper-layer checksum at `csumAt` filled. */
function packet6(src: string, dst: string, proto: number, l4: Uint8Array, csumAt: number) {
  const p = new Uint8Array(40 + l4.length);
  const v = new DataView(p.buffer);
  p[0] = 0x60;
  v.setUint16(4, l4.length);
  p[6] = proto;
  p[7] = 64;
  p.set(ip6(src), 8);
  p.set(ip6(dst), 24);
  p.set(l4, 40);
  // RFC 8200 §8.1 pseudo-header: addresses, upper-layer length (32 bits), next header.
  const pseudo = new Uint8Array(40 + l4.length);
  pseudo.set(p.subarray(8, 40), 0);
  new DataView(pseudo.buffer).setUint32(32, l4.length);
  pseudo[39] = proto;
  pseudo.set(l4, 40);
  const sum = checksum(pseudo);
  v.setUint16(40 + csumAt, proto === 17 ? sum || 0xffff : sum);
  return p;
}

export function udp6Packet(
  src: string,
  dst: string,
  srcPort: number,
  dstPort: number,
  payload: string | Uint8Array = "x",
): Uint8Array {
  const data = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  const l4 = new Uint8Array(8 + data.length);
  const v = new DataView(l4.buffer);
  v.setUint16(0, srcPort);
  v.setUint16(2, dstPort);
  v.setUint16(4, l4.length);
  l4.set(data, 8);
  return packet6(src, dst, 17, l4, 6);
}

/** ICMPv6 echo request (128) or reply (129). */
export function icmp6Echo(
  src: string,
  dst: string,
  id: number,
  seq: number,
  payload = "ping6",
  type = 128,
): Uint8Array {
  const data = new TextEncoder().encode(payload);
  const l4 = new Uint8Array(8 + data.length);
  l4[0] = type;
  new DataView(l4.buffer).setUint16(4, id);
  new DataView(l4.buffer).setUint16(6, seq);
  l4.set(data, 8);
  return packet6(src, dst, 58, l4, 2);
}

/** ICMPv6 packet too big (type 2) about `inner`, as a router on the path sends it. */
export function icmp6TooBig(src: string, dst: string, mtu: number, inner: Uint8Array): Uint8Array {
  const l4 = new Uint8Array(8 + inner.length);
  l4[0] = 2;
  new DataView(l4.buffer).setUint32(4, mtu);
  l4.set(inner, 8);
  return packet6(src, dst, 58, l4, 2);
}

/** Does the packet's upper-layer checksum verify (RFC 8200 §8.1)? */
export function checksum6Ok(p: Uint8Array): boolean {
  const len = new DataView(p.buffer, p.byteOffset).getUint16(4);
  const pseudo = new Uint8Array(40 + len);
  pseudo.set(p.subarray(8, 40), 0);
  new DataView(pseudo.buffer).setUint32(32, len);
  pseudo[39] = p[6];
  pseudo.set(p.subarray(40, 40 + len), 40);
  return checksum(pseudo) === 0;
}
