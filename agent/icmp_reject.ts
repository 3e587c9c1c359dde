/**
 * ICMP "administratively prohibited" answers for packets the policy denies (issue 15), so that a
 * denied connect() on the laptop fails at once instead of timing out. Pure: bytes in, bytes out.
 * Unlike the agentless netstack's answer (src/netstack/packet.ts), which speaks for the
 * destination, this one comes from the agent's own tun address: it is the agent that refuses.
 */
import { checksum, pseudoSum } from "../src/netstack/checksum.ts";

const ICMP = 1;
const ICMPV6 = 58;
/** RFC 1812 §4.3.2.3: an ICMPv4 error is at most 576 bytes; RFC 4443 §2.4(c): 1280 for v6. */
const MAX4 = 576;
const MAX6 = 1280;

const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];

/**
 * The ICMP (type 3 code 13) or ICMPv6 (type 1 code 1) error answering `packet`, from the agent's
 * own address of that family (`from4` as a 32-bit number; `from6` 16 bytes), to the packet's
 * source; undefined when no error may be sent (RFC 1122 / RFC 4443: the packet is itself an ICMP
 * error, a non-first fragment, from a multicast/broadcast/unspecified source, or malformed).
 */
export function adminProhibited(
  packet: Uint8Array,
  from4: number,
  from6: Uint8Array | undefined,
): Uint8Array | undefined {
  if (packet.length < 1) return undefined;
  const version = packet[0] >> 4;
  if (version === 4) return answer4(packet, from4);
  if (version === 6 && from6 && from6.length === 16) return answer6(packet, from6);
  return undefined;
}

function answer4(p: Uint8Array, from: number): Uint8Array | undefined {
  if (p.length < 20) return undefined;
  const hl = (p[0] & 15) * 4;
  const total = u16(p, 2);
  if (hl < 20 || total < hl || total > p.length) return undefined;
  // A corrupted header may name someone who never sent anything (RFC 1812 §5.2.2).
  if (checksum(p, 0, hl) !== 0) return undefined;
  if ((u16(p, 6) & 0x1fff) !== 0) return undefined; // not the first fragment
  const s = p[12];
  // Not a single host: 0/8, loopback, multicast, class E and broadcast (RFC 1122 §3.2.2).
  if (s === 0 || s === 127 || s >= 224) return undefined;
  const d = p[16];
  if (d >= 224 && (d < 240 || (d === 255 && p[17] === 255 && p[18] === 255 && p[19] === 255))) {
    return undefined;
  }
  if (p[9] === ICMP) {
    if (total < hl + 1) return undefined;
    const t = p[hl];
    if (t === 3 || t === 4 || t === 5 || t === 11 || t === 12) return undefined;
  }
  const quote = Math.min(total, MAX4 - 28);
  const out = new Uint8Array(28 + quote);
  out[0] = 0x45;
  // Precedence 6, internetwork control, as RFC 1812 §4.3.2.5 asks and Linux does.
  out[1] = 0xc0;
  put16(out, 2, out.length);
  out[6] = 0x40; // DF: atomic, so an ID of 0 is fine (RFC 6864 §4.1); 576 bytes always fit
  out[8] = 64;
  out[9] = ICMP;
  put16(out, 12, from >>> 16);
  put16(out, 14, from & 0xffff);
  out.set(p.subarray(12, 16), 16);
  put16(out, 10, checksum(out, 0, 20));
  out[20] = 3;
  out[21] = 13;
  out.set(p.subarray(0, quote), 28);
  put16(out, 22, checksum(out, 20, out.length));
  return out;
}

function answer6(p: Uint8Array, from: Uint8Array): Uint8Array | undefined {
  if (p.length < 40) return undefined;
  const plen = u16(p, 4);
  const total = 40 + plen;
  if (plen === 0 || total > p.length) return undefined; // a jumbogram or truncated
  if (badSource6(p) || p[24] === 0xff) return undefined;
  if (!answerable6(p, total)) return undefined;
  const quote = Math.min(total, MAX6 - 48);
  const out = new Uint8Array(48 + quote);
  out[0] = 0x60;
  put16(out, 4, 8 + quote);
  out[6] = ICMPV6;
  out[7] = 64;
  out.set(from, 8);
  out.set(p.subarray(8, 24), 24);
  out[40] = 1;
  out[41] = 1;
  out.set(p.subarray(0, quote), 48);
  const acc = pseudoSum(6, out.subarray(8, 24), out.subarray(24, 40), ICMPV6, 8 + quote);
  put16(out, 42, checksum(out, 40, out.length, acc));
  return out;
}

/** ::, ::1 and multicast do not name one node (RFC 4443 §2.4(e.6)). */
function badSource6(p: Uint8Array): boolean {
  if (p[8] === 0xff) return true;
  for (let i = 8; i < 23; i++) if (p[i] !== 0) return false;
  return p[23] <= 1;
}

/**
 * Walk the extension headers: no error for a non-first fragment (it cannot be matched to a
 * socket), an ICMPv6 error or redirect (RFC 4443 §2.4(e)), or headers that run off the packet.
 */
function answerable6(p: Uint8Array, end: number): boolean {
  let nh = p[6];
  let at = 40;
  for (;;) {
    switch (nh) {
      case 0: // hop-by-hop
      case 43: // routing
      case 60: // destination options
      case 135: // mobility
      case 139: // HIP
      case 140: // shim6
        if (at + 8 > end) return false;
        nh = p[at];
        at += (p[at + 1] + 1) * 8;
        break;
      case 51: // AH counts 4-byte words, less two
        if (at + 8 > end) return false;
        nh = p[at];
        at += (p[at + 1] + 2) * 4;
        break;
      case 44: // fragment
        if (at + 8 > end) return false;
        if ((u16(p, at + 2) & 0xfff8) !== 0) return false;
        nh = p[at];
        at += 8;
        break;
      case ICMPV6: {
        if (at + 1 > end) return false;
        const t = p[at];
        return t >= 128 && t !== 137;
      }
      default: // an upper layer (or ESP, or No Next Header): nothing more to check
        return at <= end;
    }
  }
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >> 8;
  b[o + 1] = v;
}
