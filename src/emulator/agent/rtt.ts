/**
 * The agent's round-trip estimator (specs/ssm-protocol.md §5 "Outgoing buffer and
 * retransmission"): Jacobson/Karels with the agent's constants, clamped at 1 s.
 * Deliberately not shared with src/ssm/rtt.ts: the emulated agent is written from the spec on
 * its own, so a misreading in the client cannot hide in both.
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

  /** `sampleMs` is the time since the acked message was (last) sent, as the agent measures it. */
  sample(sampleMs: number): void {
    // RTTV uses the old RTT, so it is updated first.
    this.rttv = (1 - RTT_DEFAULTS.beta) * this.rttv +
      RTT_DEFAULTS.beta * Math.abs(this.rtt - sampleMs);
    this.rtt = (1 - RTT_DEFAULTS.alpha) * this.rtt + RTT_DEFAULTS.alpha * sampleMs;
    this.rto = Math.min(
      RTT_DEFAULTS.maxRtoMs,
      this.rtt + Math.max(RTT_DEFAULTS.clockGranularityMs, 4 * this.rttv),
    );
  }
}
