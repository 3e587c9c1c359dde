/**
 * RFC 6298 retransmission timeout (specs/netstack.md §7): α = 1/8, β = 1/4,
 * RTO = SRTT + max(1 ms, 4·RTTVAR), 1 s before the first sample, clamped to [200 ms, 60 s],
 * doubled per timeout. Karn's rule is the caller's: never sample a retransmitted segment.
 */
export const RTO_INITIAL = 1000;
export const RTO_MIN = 200;
export const RTO_MAX = 60_000;

export class RtoEstimator {
  srtt = 0;
  rttvar = 0;
  #rto = RTO_INITIAL;
  #backoff = 0;

  /** The timeout to arm now, backoff included. */
  get rto(): number {
    return Math.min(RTO_MAX, this.#rto * 2 ** this.#backoff);
  }

  /** Consecutive timeouts since the last new data was acknowledged. */
  get backoff(): number {
    return this.#backoff;
  }

  sample(rttMs: number): void {
    const r = Math.max(0, rttMs);
    if (this.srtt === 0) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.#rto = Math.min(RTO_MAX, Math.max(RTO_MIN, this.srtt + Math.max(1, 4 * this.rttvar)));
  }

  timedOut(): void {
    this.#backoff++;
  }

  /** New data was acknowledged. */
  reset(): void {
    this.#backoff = 0;
  }
}
