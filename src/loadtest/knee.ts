import type { StepResult } from './runLoad.js';
import { round } from './summary.js';

/** A step "held" when fewer than this share of its fetches failed. */
export const KNEE_FAILED_PCT = 1;

/** `steps` equally spaced offered rates from `from` to `to`, both included. */
export function rampRates(from: number, to: number, steps: number): number[] {
  if (steps === 1) return [from];
  return Array.from({ length: steps }, (_, i) => from + ((to - from) * i) / (steps - 1));
}

export interface Knee {
  /**
   * The highest offered rate (fetches/s) at which fewer than 1% of fetches failed; null when
   * every step failed more (the knee lies below the ramp).
   */
  knee_fetches_per_s: number | null;
  /** Mean completed fetches/s over the steps offered more than the knee; null when none was. */
  sustained_fetches_per_s: number | null;
}

/**
 * The knee of a ramp. The highest step that held, not the last before the first that failed:
 * a stall of the machine can fail one low step, but cannot make a step above a drained
 * throttle hold, so the highest is the robust reading.
 */
export function findKnee(steps: StepResult[]): Knee {
  const held = steps.filter((s) => s.fetches > 0 && (100 * s.failed) / s.fetches < KNEE_FAILED_PCT);
  const knee = held.length > 0 ? Math.max(...held.map((s) => s.offered_per_s)) : null;
  const beyond = steps.filter((s) => s.fetches > 0 && (knee === null || s.offered_per_s > knee));
  const sustained = beyond.length > 0 ? round(beyond.reduce((sum, s) => sum + s.rate_per_s, 0) / beyond.length) : null;
  return { knee_fetches_per_s: knee, sustained_fetches_per_s: sustained };
}
