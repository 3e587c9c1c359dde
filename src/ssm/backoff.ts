/**
 * Retry delays like the plugin's (§10): first rand(100–199) ms, doubling, capped at 5 s. Unlike
 * the plugin we never reset to the start, and we add jitter so many stripes do not retry in step.
 */
export function* backoffDelays(
  initialMs = 100,
  maxMs = 5_000,
  random: () => number = Math.random,
): Generator<number, never> {
  let d = initialMs + Math.floor(random() * initialMs);
  while (true) {
    yield d;
    d = Math.min(maxMs, d * 2);
    d = Math.round(d * (0.75 + random() * 0.5));
    d = Math.min(maxMs, Math.max(initialMs, d));
  }
}
