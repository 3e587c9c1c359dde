/** Counters of the data path, so every drop has a reason someone can read. */
export interface AgentStats {
  /** Client → VPC packets written to the tun. */
  packetsIn: number;
  /** VPC → client packets queued on a stripe. */
  packetsOut: number;
  /** Client packets whose source was not the tunnel's address. */
  spoofed: number;
  /** Client packets to a destination their tunnel's policy refuses. */
  denied: number;
  /** ICMP "administratively prohibited" answers sent for denied packets (rate-limited). */
  prohibitedSent: number;
  /**
   * Client packets that are neither IPv4 nor IPv6 the tunnel may send: IPv6 counts here when the
   * tunnel did not ask for it or the agent has it off.
   */
  notIpv4: number;
  /** Tun packets to a pool address with no tunnel (or no live stripe). */
  noTunnel: number;
  /** Packets dropped because a stripe's send queue was full (a congested link). */
  queueDrops: number;
  /** Tun writes the kernel refused (its queue was full). */
  tunWriteDrops: number;
  /** Stripes closed for a protocol violation (malformed frames, bad hello). */
  protocolErrors: number;
}

export function newStats(): AgentStats {
  return {
    packetsIn: 0,
    packetsOut: 0,
    spoofed: 0,
    denied: 0,
    prohibitedSent: 0,
    notIpv4: 0,
    noTunnel: 0,
    queueDrops: 0,
    tunWriteDrops: 0,
    protocolErrors: 0,
  };
}
