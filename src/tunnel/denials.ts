/**
 * Packets the agent's destination policy refused: the agent answers each with an ICMP
 * "administratively prohibited" (src/net/icmp_prohibited.ts), which still goes to the tun so the
 * application fails fast; here they are counted, and the last one kept to say where it went.
 */
import {
  isAdminProhibited,
  type ProhibitedDestination,
  prohibitedDestination,
} from "../net/icmp_prohibited.ts";
import type { TunnelStats } from "./tunnel_stats.ts";
import { parseIPv4, parseIPv6 } from "../../ffi/struct.ts";

export class Denials {
  count = 0;
  #last?: Uint8Array;
  #from?: Uint8Array[];

  /**
   * Count only answers from these addresses (the agents' tun addresses, WELCOME's peer and
   * peer6): a firewall in the VPC answering "prohibited" is not the agent's policy.
   */
  onlyFrom(addresses: string[]): void {
    this.#from = addresses.flatMap((a) => {
      const b = parseIPv4(a) ?? (a.includes(":") ? parseIPv6(a) : undefined);
      return b ? [b] : [];
    });
  }

  /** Every packet from the agent passes here: a couple of byte reads unless it is a denial. */
  note(p: Uint8Array): void {
    if (!isAdminProhibited(p)) return;
    if (this.#from && !this.#from.some((a) => sourceIs(p, a))) return;
    this.count++;
    // A copy: the packet is a view into a whole received chunk, which keeping it would pin.
    this.#last = p.slice();
  }

  /** Where the last denied packet was going ("10.0.9.5:5432/tcp"); parsed only when asked. */
  last(): string | undefined {
    const d = this.#last && prohibitedDestination(this.#last);
    return d && destinationText(d);
  }

  /** The counters for TunnelStats: nothing at all until there is a denial. */
  stats(): Pick<TunnelStats, "denied" | "deniedLast"> {
    if (this.count === 0) return {};
    const last = this.last();
    return { denied: this.count, ...(last ? { deniedLast: last } : {}) };
  }
}

/** Is `p`'s source address `a` (4 or 16 bytes, matching the packet's version)? */
function sourceIs(p: Uint8Array, a: Uint8Array): boolean {
  const at = a.length === 4 ? 12 : 8;
  if ((p[0] >> 4) !== (a.length === 4 ? 4 : 6)) return false;
  for (let i = 0; i < a.length; i++) if (p[at + i] !== a[i]) return false;
  return true;
}

/** "10.0.9.5:5432/tcp", "[fd00::5]:443/tcp", "10.0.9.5/icmp", "10.0.9.5/proto 47". */
export function destinationText(d: ProhibitedDestination): string {
  const proto = typeof d.protocol === "number" ? `proto ${d.protocol}` : d.protocol;
  if (d.port === undefined) return `${d.dst}/${proto}`;
  const host = d.dst.includes(":") ? `[${d.dst}]` : d.dst;
  return `${host}:${d.port}/${proto}`;
}

/** "denied by the agent's policy: 3 (last: 10.0.9.5:5432/tcp)", or "" when none was. */
export function deniedText(st: { denied?: number; deniedLast?: string } | undefined): string {
  if (!st?.denied) return "";
  return `denied by the agent's policy: ${st.denied}${
    st.deniedLast ? ` (last: ${st.deniedLast})` : ""
  }`;
}
