/**
 * The agent's old global destination policy (agent/policy.ts before issue 15), kept as a plain
 * reference model: rules_compile_test.ts checks that the compiled engine judges the old
 * `policy: {allow, deny}` form exactly as this did, and bench/policy.ts times it for scale.
 *
 * A destination is allowed when it is inside some `allow` block and inside no `deny` block.
 * Deny always wins. An empty allow list means "everywhere" (0.0.0.0/0 and ::/0); a list naming
 * only one family allows nothing of the other. The always-denied blocks and the pools are added.
 */
import { type Cidr, cidrContains, formatCidr, parseCidr } from "../../agent/cidr.ts";
import {
  type Cidr6,
  contains6At,
  DEFAULT_POOL6,
  formatCidr6,
  parseCidr6,
} from "../../agent/cidr6.ts";
import { ALWAYS_DENIED, ALWAYS_DENIED6 } from "../../agent/policy.ts";

/** NAT64's well-known prefix: the last 32 bits are an IPv4 destination, checked as one. */
const NAT64 = parseCidr6("64:ff9b::/96")!;

export class Policy {
  readonly allow: Cidr[];
  readonly deny: Cidr[];
  readonly allow6: Cidr6[];
  readonly deny6: Cidr6[];

  /** `allow`/`deny` are CIDR texts of either family, already validated by the config loader. */
  constructor(
    allow: string[],
    deny: string[],
    pool: Cidr,
    pool6: Cidr6 = parseCidr6(DEFAULT_POOL6)!,
  ) {
    const [allow4, allow6] = split(allow);
    const [deny4, deny6] = split(deny);
    this.allow = (allow.length ? allow4 : ["0.0.0.0/0"]).map(mustParse);
    this.allow6 = (allow.length ? allow6 : ["::/0"]).map(mustParse6);
    this.deny = unique(
      [...ALWAYS_DENIED.map(mustParse), pool, ...deny4.map(mustParse)],
      formatCidr,
    );
    this.deny6 = unique(
      [...ALWAYS_DENIED6.map(mustParse6), pool6, ...deny6.map(mustParse6)],
      formatCidr6,
    );
  }

  allows(dst: number): boolean {
    for (const c of this.deny) if (cidrContains(c, dst)) return false;
    for (const c of this.allow) if (cidrContains(c, dst)) return true;
    return false;
  }

  /** The IPv6 destination at `p[off..off+16]` (a packet's, read in place). */
  allows6(p: Uint8Array, off: number): boolean {
    for (const c of this.deny6) if (contains6At(c, p, off)) return false;
    // Through a NAT64 gateway 64:ff9b::a9fe:a9fe is 169.254.169.254: the IPv4 rules apply too.
    if (contains6At(NAT64, p, off)) {
      const v4 = ((p[off + 12] << 24) | (p[off + 13] << 16) | (p[off + 14] << 8) | p[off + 15]) >>>
        0;
      if (!this.allows(v4)) return false;
    }
    for (const c of this.allow6) if (contains6At(c, p, off)) return true;
    return false;
  }
}

const isV6 = (text: string) => text.includes(":");

function split(texts: string[]): [string[], string[]] {
  return [texts.filter((t) => !isV6(t)), texts.filter(isV6)];
}

/** Each block once. */
function unique<T>(list: T[], key: (c: T) => string): T[] {
  const byText = new Map<string, T>();
  for (const c of list) byText.set(key(c), c);
  return [...byText.values()];
}

function mustParse(text: string): Cidr {
  const c = parseCidr(text, false);
  if (!c) throw new Error(`invalid CIDR ${text}`);
  return c;
}

function mustParse6(text: string): Cidr6 {
  const c = parseCidr6(text, false);
  if (!c) throw new Error(`invalid IPv6 CIDR ${text}`);
  return c;
}
