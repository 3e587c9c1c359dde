/**
 * Durations in the agent's config ("90s", "30m", "2h", "1h30m", "500ms", "1d"), as milliseconds.
 * Pure, so config validation is unit-tested. (Output uses src/format.ts's fmtDuration.)
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/** Milliseconds for `text`, or undefined when it is not a duration. "0" alone means zero. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (t === "0") return 0;
  if (!WHOLE.test(t)) return undefined;
  let ms = 0;
  for (const [, n, unit] of t.matchAll(PART)) ms += Number(n) * UNIT_MS[unit];
  return Math.round(ms);
}
