/**
 * Packet decisions in both directions. Pure apart from the injected tun and links.
 *
 * Client → VPC: a packet leaves only if its source is the tunnel's address (no spoofing of
 * other tunnels or the VPC) and its destination is allowed by the policy.
 * VPC → client: the tun's packets go to the tunnel owning the destination address, on the stripe
 * its flow hashes to; packets of one tun read are flushed together, so each stripe gets one
 * coalesced write per batch.
 */
import { ipv4Dst, ipv4Src } from "../src/tunnel/packet.ts";
import type { Tun } from "../src/net/types.ts";
import type { Policy } from "./policy.ts";
import type { AgentStats } from "./stats.ts";
import type { Registry, StripeLink, Tunnel } from "./tunnels.ts";

export type Verdict = "ok" | "not-ipv4" | "spoofed" | "denied";

export function inboundVerdict(p: Uint8Array, tunnelAddress: number, policy: Policy): Verdict {
  const src = ipv4Src(p);
  if (src < 0) return "not-ipv4";
  if (src !== tunnelAddress) return "spoofed";
  if (!policy.allows(ipv4Dst(p))) return "denied";
  return "ok";
}

/** Client packets of one PACKETS frame → the tun. */
export function fromClient(
  packets: Uint8Array[],
  tunnel: Tunnel,
  policy: Policy,
  tun: Tun,
  stats: AgentStats,
): void {
  for (const p of packets) {
    switch (inboundVerdict(p, tunnel.address, policy)) {
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
        break;
      case "not-ipv4":
        stats.notIpv4++;
        break;
    }
  }
}

/** One tun read's packets → the stripes' queues, then one flush per touched stripe. */
export function fromTun(packets: Uint8Array[], registry: Registry, stats: AgentStats): void {
  const touched = new Set<StripeLink>();
  let lastAddress = -1;
  let lastTunnel: Tunnel | undefined;
  for (const p of packets) {
    const dst = ipv4Dst(p);
    // Packets of one read are mostly for the same few tunnels: skip the map lookup on repeats.
    if (dst !== lastAddress) {
      lastAddress = dst;
      lastTunnel = dst < 0 ? undefined : registry.byAddress(dst);
    }
    const link = lastTunnel?.linkFor(p);
    if (!link) {
      stats.noTunnel++;
      continue;
    }
    if (link.enqueue(p)) {
      stats.packetsOut++;
      lastTunnel!.bytesOut += p.length;
    } else stats.queueDrops++;
    touched.add(link);
  }
  for (const link of touched) link.flush();
}
