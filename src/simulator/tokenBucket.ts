import type { Clock } from '../runtime/clock.js';

/**
 * IMDS's per-instance throttle, modelled as a token bucket: `ratePerSecond` requests a
 * second on average, bursts of up to `burst`. Pure apart from the injected clock.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly clock: Clock,
  ) {
    this.tokens = burst;
    this.updatedAt = clock.now();
  }

  /** Takes one token if there is one. */
  tryTake(): boolean {
    const now = this.clock.now();
    // Wall clocks step back (NTP); that is no time passing, not a debt to repay.
    const elapsedMs = Math.max(0, now - this.updatedAt);
    this.tokens = Math.min(this.burst, this.tokens + (elapsedMs / 1000) * this.ratePerSecond);
    this.updatedAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
