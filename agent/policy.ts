/**
 * Destination policy: which addresses a tunnel may reach through the instance (DESIGN §3). Pure.
 *
 * A destination is allowed when it is inside some `allow` block and inside no `deny` block.
 * Deny always wins. An empty allow list means "everywhere" (0.0.0.0/0). Some blocks are denied
 * whatever the config says: they reach the instance itself or things that trust it by address.
 */
import { type Cidr, cidrContains, formatCidr, parseCidr } from "./cidr.ts";
import type { Policy as WirePolicy } from "../src/tunnel/wire.ts";

/** Always denied: metadata/link-local, loopback, "this network", multicast. The pool is added too. */
export const ALWAYS_DENIED = ["169.254.0.0/16", "127.0.0.0/8", "0.0.0.0/8", "224.0.0.0/4"];

export class Policy {
  readonly allow: Cidr[];
  readonly deny: Cidr[];

  /** `allow`/`deny` are CIDR texts already validated by the config loader. */
  constructor(allow: string[], deny: string[], pool: Cidr) {
    this.allow = (allow.length ? allow : ["0.0.0.0/0"]).map(mustParse);
    const denied = [...ALWAYS_DENIED.map(mustParse), pool, ...deny.map(mustParse)];
    // Drop duplicates so the welcome shows each block once.
    const byText = new Map<string, Cidr>();
    for (const c of denied) byText.set(formatCidr(c), c);
    this.deny = [...byText.values()];
  }

  allows(dst: number): boolean {
    for (const c of this.deny) if (cidrContains(c, dst)) return false;
    for (const c of this.allow) if (cidrContains(c, dst)) return true;
    return false;
  }

  /** The policy as sent in WELCOME, so the client can explain refusals before sending. */
  toWire(): WirePolicy {
    return { allow: this.allow.map(formatCidr), deny: this.deny.map(formatCidr) };
  }
}

function mustParse(text: string): Cidr {
  const c = parseCidr(text, false);
  if (!c) throw new Error(`invalid CIDR ${text}`);
  return c;
}
