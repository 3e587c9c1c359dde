/**
 * The policy of one tunnel, compiled for the data path: `compile(policy, principal, scope)` picks
 * the rules the principal matches once, flattens them into typed-array tables, and returns a
 * function judging one packet by reading its header in place. Pure; nothing allocates per packet.
 *
 * What a packet is judged on: its destination address, its protocol, and the destination port
 * of TCP and UDP. A rule naming ports or a protocol cannot be judged on a packet that does not
 * show them (a truncated header; the ports of a non-first fragment, which only the first
 * carries): there an allow does not count and a deny does, so doubt always denies. The protocol
 * of a fragment is in its IP header (IPv6: the fragment header), so a rule naming only a
 * protocol still judges fragments; a fragment cannot change the first fragment's ports, since
 * Linux drops overlapping fragments. IPv6 extension headers are walked to the upper layer; a
 * routing header with segments left would forward the packet past the address judged, so it is
 * denied. A NAT64 destination (64:ff9b::/96) must also pass the IPv4 rules for the address it
 * embeds, as in policy.ts.
 */
import { type Cidr, maskOf } from "./cidr.ts";
import type { Cidr6 } from "./cidr6.ts";
import { builtInDenies } from "./policy.ts";
import { type Principal, selects } from "./principal.ts";
import type { Dest, PolicyRule, RulesPolicy } from "./rules.ts";

export type Decision = "allow" | "deny";
export type Decide = (packet: Uint8Array) => Decision;

/** The agent's own blocks, denied like the built-in list: tunnels cannot reach each other. */
export interface PolicyScope {
  pool: Cidr;
  pool6: Cidr6;
}

/** May a tunnel with this principal (undefined: not verified) connect at all? */
export function admits(policy: RulesPolicy, principal: Principal | undefined): boolean {
  return principal !== undefined || !policy.requireIdentity;
}

/** The rules that apply to a principal: those selecting it, and those without principals. */
export function rulesFor(policy: RulesPolicy, principal: Principal | undefined): PolicyRule[] {
  return policy.rules.filter((r) => !r.principals || selects(r.principals, principal));
}

const ANY = 0;
const TCP_UDP = 256;
const TCP = 6;
const UDP = 17;
const ICMP = 1;
const ICMP6 = 58;
/** readL4's answer for a packet denied whatever the rules say. */
const REFUSE = -1;
const MAX_EXTENSION_HEADERS = 8;

/** One family's entries, as parallel typed arrays (v4: one word per entry, v6: four). */
interface Table {
  n: number;
  base: Int32Array;
  mask: Int32Array;
  /** ANY, TCP_UDP, or one IP protocol number. */
  proto: Uint16Array;
  lo: Int32Array;
  hi: Int32Array;
}

export function compile(
  policy: RulesPolicy,
  principal: Principal | undefined,
  scope: PolicyScope,
): Decide {
  if (!admits(policy, principal)) return () => "deny";
  const rules = rulesFor(policy, principal);
  const deny = [...builtInDenies(scope), ...rules.flatMap((r) => r.deny)];
  const allow = rules.flatMap((r) => r.allow);
  const deny4 = table(deny, 4), allow4 = table(allow, 4);
  const deny6 = table(deny, 6), allow6 = table(allow, 6);

  const judge4 = (dst: number, proto: number, port: number): boolean =>
    !hit4(deny4, dst, proto, port, true) && hit4(allow4, dst, proto, port, false);

  return (p) => {
    const version = p.length ? p[0] >> 4 : 0;
    if (version === 4) {
      const l4 = readL4v4(p);
      if (l4 === REFUSE) return "deny";
      const dst = (p[16] << 24) | (p[17] << 16) | (p[18] << 8) | p[19];
      return judge4(dst, (l4 >> 17) - 1, (l4 & 0x1ffff) - 1) ? "allow" : "deny";
    }
    if (version !== 6) return "deny";
    const l4 = readL4v6(p);
    if (l4 === REFUSE) return "deny";
    const proto = (l4 >> 17) - 1, port = (l4 & 0x1ffff) - 1;
    const d0 = word(p, 24), d1 = word(p, 28), d2 = word(p, 32), d3 = word(p, 36);
    if (hit6(deny6, d0, d1, d2, d3, proto, port, true)) return "deny";
    if (!hit6(allow6, d0, d1, d2, d3, proto, port, false)) return "deny";
    // 64:ff9b::/96: the last word is an IPv4 destination through a NAT64 gateway.
    if (d0 === 0x0064ff9b && d1 === 0 && d2 === 0 && !judge4(d3, proto, port)) return "deny";
    return "allow";
  };
}

const word = (p: Uint8Array, at: number): number =>
  (p[at] << 24) | (p[at + 1] << 16) | (p[at + 2] << 8) | p[at + 3];

/** Protocol and port packed as ((proto + 1) << 17) | (port + 1); -1 in either: unknown. */
const pack = (proto: number, port: number): number => ((proto + 1) << 17) | (port + 1);

const hasPorts = (proto: number) => proto === TCP || proto === UDP;

function readL4v4(p: Uint8Array): number {
  const ihl = (p[0] & 0x0f) * 4;
  if (p.length < 20 || ihl < 20) return REFUSE;
  const proto = p[9];
  const nonFirst = (((p[6] & 0x1f) << 8) | p[7]) !== 0;
  if (nonFirst || !hasPorts(proto) || p.length < ihl + 4) return pack(proto, -1);
  return pack(proto, (p[ihl + 2] << 8) | p[ihl + 3]);
}

function readL4v6(p: Uint8Array): number {
  if (p.length < 40) return REFUSE;
  let next = p[6];
  let at = 40;
  for (let i = 0; i < MAX_EXTENSION_HEADERS; i++) {
    if (next === 0 || next === 60 || next === 43 || next === 51) {
      // Hop-by-hop, destination options, routing: 8-byte units after the first 8; AH: 4-byte.
      if (p.length < at + 8) return pack(-1, -1);
      if (next === 43 && p[at + 3] !== 0) return REFUSE;
      const length = next === 51 ? (p[at + 1] + 2) * 4 : (p[at + 1] + 1) * 8;
      next = p[at];
      at += length;
    } else if (next === 44) {
      if (p.length < at + 8) return pack(-1, -1);
      const offset = ((p[at + 2] << 8) | p[at + 3]) >> 3;
      next = p[at];
      at += 8;
      if (offset !== 0) return pack(next, -1);
    } else {
      if (!hasPorts(next) || p.length < at + 4) return pack(next, -1);
      return pack(next, (p[at + 2] << 8) | p[at + 3]);
    }
  }
  return pack(-1, -1);
}

/**
 * Does an entry's protocol and port range cover the packet's? `doubt` is the answer when the
 * packet does not show what the entry asks about: true for denies, false for allows.
 */
function covers(
  t: Table,
  i: number,
  proto: number,
  port: number,
  doubt: boolean,
): boolean {
  const want = t.proto[i];
  if (want !== ANY) {
    if (proto < 0) {
      if (!doubt) return false;
    } else if (want === TCP_UDP ? !hasPorts(proto) : want !== proto) return false;
  }
  const lo = t.lo[i], hi = t.hi[i];
  if (lo === 0 && hi === 65535) return true;
  if (port < 0) return doubt;
  return port >= lo && port <= hi;
}

function hit4(t: Table, dst: number, proto: number, port: number, doubt: boolean): boolean {
  for (let i = 0; i < t.n; i++) {
    if ((dst & t.mask[i]) === t.base[i] && covers(t, i, proto, port, doubt)) return true;
  }
  return false;
}

function hit6(
  t: Table,
  d0: number,
  d1: number,
  d2: number,
  d3: number,
  proto: number,
  port: number,
  doubt: boolean,
): boolean {
  const b = t.base, m = t.mask;
  for (let i = 0, j = 0; i < t.n; i++, j += 4) {
    if (
      (d0 & m[j]) === b[j] && (d1 & m[j + 1]) === b[j + 1] && (d2 & m[j + 2]) === b[j + 2] &&
      (d3 & m[j + 3]) === b[j + 3] && covers(t, i, proto, port, doubt)
    ) return true;
  }
  return false;
}

/** One family's entries of `dests`, in order. */
function table(dests: Dest[], family: 4 | 6): Table {
  const mine = dests.filter((d) => (family === 4 ? d.v4 : d.v6));
  const words = family === 4 ? 1 : 4;
  const t: Table = {
    n: mine.length,
    base: new Int32Array(mine.length * words),
    mask: new Int32Array(mine.length * words),
    proto: new Uint16Array(mine.length),
    lo: new Int32Array(mine.length),
    hi: new Int32Array(mine.length),
  };
  mine.forEach((d, i) => {
    if (family === 4) {
      t.base[i] = d.v4!.base;
      t.mask[i] = maskOf(d.v4!.prefix);
    } else {
      const c = d.v6!;
      for (let k = 0; k < 4; k++) {
        const bits = Math.max(0, Math.min(32, c.prefix - 32 * k));
        t.mask[i * 4 + k] = bits === 0 ? 0 : maskOf(bits);
        t.base[i * 4 + k] = word(c.bytes, 4 * k) & t.mask[i * 4 + k];
      }
    }
    t.proto[i] = d.protocol === "tcp"
      ? TCP
      : d.protocol === "udp"
      ? UDP
      : d.protocol === "icmp"
      ? (family === 4 ? ICMP : ICMP6)
      : d.ports
      ? TCP_UDP
      : ANY;
    t.lo[i] = d.ports?.lo ?? 0;
    t.hi[i] = d.ports?.hi ?? 65535;
  });
  return t;
}
