/**
 * Packet decisions in both directions. Pure apart from the injected tun, links and audit.
 *
 * Client → VPC: a packet leaves only if its source is the tunnel's address (no spoofing of
 * other tunnels or the VPC) and the tunnel's compiled policy (its principal's rules,
 * rules_compile.ts) allows it. IPv6 likewise, from a tunnel that has an IPv6 address; from any
 * other tunnel it is refused like any non-IP bytes. A denied packet is counted and answered with
 * ICMP "administratively prohibited", so the program sending it fails at once instead of timing
 * out; at most a few a second per tunnel, as a flood of denied packets must not become a flood
 * of answers.
 * VPC → client: the tun's packets go to the tunnel owning the destination address, on the stripe
 * its flow hashes to; packets of one tun read are flushed together, so each stripe gets one
 * coalesced write per batch.
 */
import { ipv4Dst, ipv4Src } from "../src/tunnel/packet.ts";
import type { Tun } from "../src/net/types.ts";
import type { PacketAudit } from "./audit.ts";
import { equal6At } from "./cidr6.ts";
import { adminProhibited } from "./icmp_reject.ts";
import type { AgentStats } from "./stats.ts";
import type { Registry, StripeLink, Tunnel } from "./tunnels.ts";

/** "unsupported": neither IPv4 nor IPv6 this tunnel may send (counted as notIpv4). */
export type Verdict = "ok" | "unsupported" | "spoofed" | "denied";

const IPV6_HEADER = 40;

export function inboundVerdict(
  p: Uint8Array,
  tunnel: Pick<Tunnel, "address" | "address6" | "decide">,
): Verdict {
  const src = ipv4Src(p);
  if (src >= 0) {
    if (src !== tunnel.address) return "spoofed";
    return tunnel.decide(p) === "allow" ? "ok" : "denied";
  }
  const a6 = tunnel.address6;
  if (!a6 || p.length < IPV6_HEADER || p[0] >> 4 !== 6) return "unsupported";
  if (!equal6At(a6, p, 8)) return "spoofed";
  return tunnel.decide(p) === "allow" ? "ok" : "denied";
}

/** What the client → VPC path works with; the audit only while it is on. */
export interface DataPath {
  tun: Tun;
  stats: AgentStats;
  registry: Registry;
  audit?: PacketAudit;
}

/** Client packets of one PACKETS frame → the tun. */
export function fromClient(packets: Uint8Array[], tunnel: Tunnel, d: DataPath): void {
  const { tun, stats, audit } = d;
  for (const p of packets) {
    const verdict = inboundVerdict(p, tunnel);
    if (audit && (verdict === "ok" || verdict === "denied")) {
      audit.packet(tunnel, p, "up", verdict === "ok" ? "allow" : "deny");
    }
    switch (verdict) {
      case "ok":
        if (tun.write(p)) {
          stats.packetsIn++;
          tunnel.bytesIn += p.length;
        } else stats.tunWriteDrops++;
        break;
      case "spoofed":
        stats.spoofed++;
        break;
      case "denied":
        stats.denied++;
        tunnel.denied++;
        prohibit(p, tunnel, d);
        break;
      case "unsupported":
        stats.notIpv4++;
        break;
    }
  }
}

/** Answer a denied packet with ICMP administratively prohibited, within the tunnel's rate. */
function prohibit(p: Uint8Array, tunnel: Tunnel, d: DataPath): void {
  const ipv6 = d.registry.ipv6;
  const from6 = p[0] >> 4 === 6 && "pool6" in ipv6 ? ipv6.pool6.agentAddress : undefined;
  const reply = adminProhibited(p, d.registry.p.pool.agentAddress, from6);
  // Packets that get no answer (ICMP errors, later fragments) must not use up the allowance.
  if (!reply || !tunnel.prohibitLimit.take(performance.now())) return;
  const link = tunnel.linkFor(reply);
  if (!link) return;
  if (link.enqueue(reply)) {
    d.stats.prohibitedSent++;
    link.flush();
  } else d.stats.queueDrops++;
}

/** Keys above this are IPv6 destinations: V6 + the IPv4 address with the same host index. */
const V6 = 2 ** 32;
const NONE = -1;
/** The kernel's own IPv6 multicast (ND, MLD) on the tun: nobody's packet, not worth a count. */
const CHATTER = -2;

/** Which tunnel address a tun packet is for, as a number (see V6), or NONE/CHATTER. */
function destinationKey(p: Uint8Array, registry: Registry): number {
  const dst = ipv4Dst(p);
  if (dst >= 0) return dst;
  if (p.length < IPV6_HEADER || p[0] >> 4 !== 6) return NONE;
  if (p[24] === 0xff) return CHATTER;
  const ipv6 = registry.ipv6;
  const a = "pool6" in ipv6 ? ipv6.pool6.ipv4Of(p, 24) : -1;
  return a < 0 ? NONE : V6 + a;
}

/** One tun read's packets → the stripes' queues, then one flush per touched stripe. */
export function fromTun(
  packets: Uint8Array[],
  registry: Registry,
  stats: AgentStats,
  audit?: PacketAudit,
): void {
  const touched = new Set<StripeLink>();
  let lastKey = NONE;
  let lastTunnel: Tunnel | undefined;
  for (const p of packets) {
    const key = destinationKey(p, registry);
    if (key === CHATTER) continue;
    // Packets of one read are mostly for the same few tunnels: skip the map lookup on repeats.
    if (key !== lastKey) {
      lastKey = key;
      lastTunnel = key < 0
        ? undefined
        : key >= V6
        ? registry.byAddress6(key - V6)
        : registry.byAddress(key);
    }
    const link = lastTunnel?.linkFor(p);
    if (!link) {
      stats.noTunnel++;
      continue;
    }
    audit?.packet(lastTunnel!, p, "down", "allow");
    if (link.enqueue(p)) {
      stats.packetsOut++;
      lastTunnel!.bytesOut += p.length;
    } else stats.queueDrops++;
    touched.add(link);
  }
  for (const link of touched) link.flush();
}
