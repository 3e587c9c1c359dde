/**
 * Round-trip estimator and retransmission timeout, with the constants both the plugin and the
 * agent use (specs/ssm-protocol.md §5 "Outgoing buffer and retransmission").
 */

export const RTT_DEFAULTS = {
  rttMs: 100,
  rttvMs: 0,
  rtoMs: 200,
  alpha: 1 / 8,
  beta: 1 / 4,
  clockGranularityMs: 10,
  maxRtoMs: 1000,
} as const;

export class RttEstimator {
  rtt: number = RTT_DEFAULTS.rttMs;
  rttv: number = RTT_DEFAULTS.rttvMs;
  rto: number = RTT_DEFAULTS.rtoMs;
  /**
   * The smallest sample: the path's own round trip. The smoothed RTT starts at the protocol's
   * 100 ms and takes dozens of samples to forget it, too slow for decisions a session makes early.
   */
  minMs = Infinity;

  /** `sampleMs`: time from the (last) send of a message to its ack. */
  sample(sampleMs: number): void {
    if (sampleMs < this.minMs) this.minMs = sampleMs;
    const { alpha, beta, clockGranularityMs, maxRtoMs } = RTT_DEFAULTS;
    // RTTV uses the old RTT, as both endpoints do.
    this.rttv = (1 - beta) * this.rttv + beta * Math.abs(this.rtt - sampleMs);
    this.rtt = (1 - alpha) * this.rtt + alpha * sampleMs;
    this.rto = Math.min(maxRtoMs, this.rtt + Math.max(clockGranularityMs, 4 * this.rttv));
  }
}
