/**
 * Exponential backoff with jitter. AWS's own advice for a throttled IMDS: back off
 * exponentially, and never let many callers retry in step.
 *
 * `attempt` counts from 1 (the delay before the first retry). The delay is drawn from
 * [ceiling/2, ceiling] ("equal jitter"): spread out, yet never so short that a retry storm
 * hits a struggling upstream.
 */
export function backoffDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Spreads a scheduled delay by up to ±fraction so that a fleet does not refresh in step. */
export function jittered(ms: number, fraction: number, random: () => number = Math.random): number {
  return Math.max(0, Math.round(ms * (1 - fraction + 2 * fraction * random())));
}
