/**
 * Is a stripe's far end still there? Pure; time is passed in.
 *
 * A session whose agent side dies without a close (the SSM agent's session worker killed) keeps
 * its WebSocket: MGS still answers, so the session layer only noticed after about a minute, and
 * TCP over the tunnel had backed off for longer still. The stripe knows better: anything it
 * sends (data or PING) should be answered by something (data or PONG) within a round trip. Once
 * something sent has waited `probeAfterMs` with nothing heard, PING every `probeEveryMs`; after
 * `deadAfterMs` the stripe is dead and its session is replaced. An idle stripe sends nothing
 * between keepalive PINGs, so it is never suspected for being quiet.
 */

export interface LivenessOptions {
  probeAfterMs: number;
  probeEveryMs: number;
  deadAfterMs: number;
}

/**
 * Dead after 8 s: Linux TCP retransmits at about 0.3, 0.9, 2.1, 4.5, 9.3 and 19 s into a
 * blackout, so flows moved within 9 s resume at the 9.3 s retransmit; at 15 s they would wait
 * until 19 s. A PONG behind a full session window takes well under a second, so 8 s of silence
 * with several probes unanswered is not a slow stripe.
 */
export function livenessFor(pingMs: number): LivenessOptions | undefined {
  if (pingMs <= 0) return undefined;
  const deadAfterMs = Math.min(8_000, Math.max(2_000, pingMs * 2));
  return {
    deadAfterMs,
    probeAfterMs: Math.min(2_000, deadAfterMs / 4),
    probeEveryMs: Math.min(1_000, deadAfterMs / 8),
  };
}

export type LivenessVerdict = "ok" | "probe" | "dead";

export class Liveness {
  /** When the oldest thing sent since we last heard anything left (ms), if any. */
  #waitingSince?: number;
  #probedAt = -Infinity;

  constructor(readonly o: LivenessOptions) {}

  /** Anything arrived on the stripe. */
  heard(): void {
    this.#waitingSince = undefined;
  }

  /** Something left on the stripe that the far end will answer (data, PING). */
  sent(now: number): void {
    this.#waitingSince ??= now;
  }

  /** How long something sent has gone unanswered (0: nothing is waiting). */
  waitingMs(now: number): number {
    return this.#waitingSince === undefined ? 0 : now - this.#waitingSince;
  }

  tick(now: number): LivenessVerdict {
    const waited = this.waitingMs(now);
    if (waited >= this.o.deadAfterMs) return "dead";
    if (waited >= this.o.probeAfterMs && now - this.#probedAt >= this.o.probeEveryMs) {
      this.#probedAt = now;
      return "probe";
    }
    return "ok";
  }
}
