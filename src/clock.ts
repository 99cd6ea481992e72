/**
 * Time is injected everywhere a decision depends on it, so tests can run hours of
 * credential life in milliseconds. `now()` is epoch milliseconds, like Date.now().
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that only moves when told to. For tests and simulations. */
export class ManualClock implements Clock {
  constructor(private current = Date.UTC(2026, 10, 28, 12, 0, 0)) {}
  now(): number {
    return this.current;
  }
  advance(ms: number): void {
    this.current += ms;
  }
  set(ms: number): void {
    this.current = ms;
  }
}
