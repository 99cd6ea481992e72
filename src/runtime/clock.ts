/**
 * Time is injected everywhere a decision depends on it, so tests can run hours of
 * credential life in milliseconds.
 * - `now()` is wall-clock epoch milliseconds, like Date.now(): what `Expiration` is compared to.
 * - `monotonic()` only ever moves forward at the rate of real time, whatever NTP or an
 *   operator does to the wall clock: what refreshes and retries are scheduled on, so a step
 *   of the wall clock can neither delay nor hasten them.
 */
export interface Clock {
  now(): number;
  monotonic(): number;
}

export const systemClock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };

/**
 * A clock that only moves when told to. For tests and simulations. `advance` and `set` let
 * time pass (both clocks move); `stepWall` moves only the wall clock, as an NTP step does.
 */
export class ManualClock implements Clock {
  private mono = 1_000_000;
  constructor(private current = Date.UTC(2026, 10, 28, 12, 0, 0)) {}
  now(): number {
    return this.current;
  }
  monotonic(): number {
    return this.mono;
  }
  advance(ms: number): void {
    this.current += ms;
    this.mono += ms;
  }
  stepWall(ms: number): void {
    this.current += ms;
  }
  /** Lets time pass until the wall clock reads `ms` (never backwards: that is `stepWall`). */
  set(ms: number): void {
    this.advance(Math.max(0, ms - this.current));
  }
}
