/** The foreground live line: rates and counters, redrawn in place on a terminal. */
import { deniedText } from "../tunnel/denials.ts";
import type { TunnelState } from "../tunnel/state.ts";
import { fmtBytes, fmtDuration } from "../format.ts";

/** `stripes 4`, with `auto` and the last change of the count when it sizes itself. */
export function stripesText(st: NonNullable<TunnelState["stats"]>): string {
  // Spread: "stripes 4+3" (per instance, in order) so a lost instance shows at a glance.
  const inst = st.instances;
  const up = inst && inst.length > 1
    ? `${inst.map((i) => i.stripesUp).join("+")} on ${inst.length} instances`
    : `${st.stripesUp}`;
  if (!st.stripesAuto) return `stripes ${up}`;
  const why = st.stripesReason ? `; ${st.stripesReason}` : "";
  return `stripes ${up} (auto, up to ${st.stripesMax}${why})`;
}

export function liveText(s: TunnelState): string {
  const st = s.stats;
  if (!st) return `${s.status}`;
  const h = s.health;
  const healing = h && (h.reconnects > 0 || h.healingMs > 0)
    ? `reconnects ${h.reconnects} (healing ${fmtDuration(h.healingMs)})`
    : "";
  return [
    s.status,
    `↑ ${fmtBytes(st.upBps)}/s ↓ ${fmtBytes(st.downBps)}/s`,
    `pkts ${st.packetsOut}/${st.packetsIn}`,
    `drops ${st.dropsOut + st.dropsIn}`,
    `rtt ${Math.round(st.rttMs)} ms`,
    stripesText(st),
    `up ${fmtDuration(Date.now() - Date.parse(s.startedAt))}`,
    healing,
    deniedText(st),
    s.status !== "up" && s.lastError ? `last error: ${s.lastError}` : "",
  ].filter(Boolean).join("  ");
}

export class LiveLine {
  #enc = new TextEncoder();
  #shown = false;
  constructor(private tty: boolean) {}

  show(s: TunnelState): void {
    if (!this.tty) return;
    Deno.stderr.writeSync(this.#enc.encode(`\r\x1b[2K${liveText(s)}`));
    this.#shown = true;
  }

  clear(): void {
    if (this.#shown) Deno.stderr.writeSync(this.#enc.encode("\r\x1b[2K"));
    this.#shown = false;
  }
}
