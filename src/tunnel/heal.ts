/**
 * Healing bookkeeping for the tunnel (DESIGN §4 "Healing"), as plain state with time passed in,
 * so the rules are testable without sockets: per-stripe up/healing/down with when and why, when
 * to give up, when to roll a session over before a known maximum duration, and how to notice the
 * machine slept (the wall clock jumped while monotonic time did not).
 */

export type HealState = "up" | "healing" | "down";

/** One stripe's healing history. */
export class HealTracker {
  state: HealState = "up";
  /** New sessions opened after the first (re-joins). */
  rejoins = 0;
  lastError = "";
  /** When the current healing started (ms, the injected clock), or undefined when not healing. */
  healingSince?: number;
  #healedMs = 0;

  constructor(readonly giveUpMs: number) {}

  /** The stripe lost its session; returns false when it was already healing. */
  lost(now: number, reason: string): boolean {
    this.lastError = reason;
    if (this.state === "healing") return false;
    this.state = "healing";
    this.healingSince = now;
    return true;
  }

  /** A re-join failed; keep trying until giveUp(). */
  failed(reason: string): void {
    this.lastError = reason;
  }

  /** Time to stop trying (the tunnel goes down once every stripe has). */
  shouldGiveUp(now: number): boolean {
    return this.state === "healing" && now - (this.healingSince ?? now) >= this.giveUpMs;
  }

  giveUp(now: number): void {
    this.#close(now);
    this.state = "down";
  }

  /** A new session carries the stripe again. */
  rejoined(now: number): void {
    this.#close(now);
    this.state = "up";
    this.rejoins++;
  }

  /** The session was replaced ahead of its end (make before break): no healing spell. */
  rolledOver(): void {
    this.rejoins++;
  }

  /** Total time spent healing, including the current spell. */
  healingMs(now: number): number {
    return this.#healedMs + (this.healingSince === undefined ? 0 : now - this.healingSince);
  }

  #close(now: number): void {
    if (this.healingSince !== undefined) this.#healedMs += now - this.healingSince;
    this.healingSince = undefined;
  }
}

/**
 * What a channel_closed says about the service's maximum session duration: the session's age
 * when it ended that way, or undefined when it ended for another reason.
 */
export function learnMaxDuration(message: string, ageMs: number): number | undefined {
  return /maximum session duration/i.test(message) && ageMs > 0 ? ageMs : undefined;
}

/**
 * How long before a known maximum duration to open the replacement session: a tenth of it,
 * between 2 s and 60 s, but never more than half (so a tiny test maximum still rolls over).
 */
export function rolloverLeadMs(maxMs: number): number {
  return Math.min(maxMs / 2, Math.max(2_000, Math.min(60_000, maxMs / 10)));
}

/** When to start replacing a session opened at `openedAt`, or undefined with no known maximum. */
export function rolloverAt(openedAt: number, maxMs: number | undefined): number | undefined {
  return maxMs === undefined ? undefined : openedAt + maxMs - rolloverLeadMs(maxMs);
}

/**
 * Notices suspend/resume and clock changes: between two ticks the wall clock moved much more
 * (or less) than monotonic time. On Linux and macOS the monotonic clock stops during sleep, so
 * a laptop that slept shows up as a forward jump of the wall clock.
 */
export class ClockWatch {
  #wall?: number;
  #mono?: number;

  constructor(readonly thresholdMs = 5_000) {}

  /** Feed one tick; returns the jump in ms when it exceeds the threshold, else undefined. */
  tick(wallNow: number, monoNow: number): number | undefined {
    const w = this.#wall;
    const m = this.#mono;
    this.#wall = wallNow;
    this.#mono = monoNow;
    if (w === undefined || m === undefined) return undefined;
    const jump = (wallNow - w) - (monoNow - m);
    return Math.abs(jump) >= this.thresholdMs ? jump : undefined;
  }
}

/**
 * Notices a network change (Wi-Fi to tethering, a new DHCP lease): the set of the machine's own
 * IPv4 addresses, the tunnel's excluded, differs from the last tick. The sessions' sockets are
 * then bound to an address that may be gone, so recovery should start now, not after the
 * dead-peer timer.
 */
export class NetworkWatch {
  #last?: string;

  /** `ignore`: interfaces that do not count (ssm-proxy's own tuns, this one's and others'). */
  constructor(readonly ignore: (name: string) => boolean) {}

  /** Feed the current interfaces; true when they changed since the last call. */
  tick(ifaces: { name: string; family: string; address: string; internal?: boolean }[]): boolean {
    const key = ifaces
      .filter((i) => i.family === "IPv4" && !i.internal && !this.ignore(i.name))
      .map((i) => `${i.name}/${i.address}`)
      .sort()
      .join(",");
    const changed = this.#last !== undefined && key !== this.#last;
    this.#last = key;
    return changed;
  }
}

/** The machine's interfaces for NetworkWatch; none when they cannot be listed (it stays quiet). */
export function localInterfaces(): Deno.NetworkInterfaceInfo[] {
  try {
    return Deno.networkInterfaces();
  } catch {
    return [];
  }
}
