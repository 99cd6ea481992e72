import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { TokenBucket } from '../../src/simulator/tokenBucket.js';

describe('token bucket', () => {
  for (const rps of [1, 5, 50, 1000]) {
    it(`a bucket of ${rps} rps admits about ${rps} a second over ten simulated seconds of hammering`, () => {
      const clock = new ManualClock();
      const bucket = new TokenBucket(rps, rps, clock);
      let admitted = 0;
      for (let ms = 0; ms < 10_000; ms++) {
        clock.advance(1);
        for (let i = 0; i < 5; i++) if (bucket.tryTake()) admitted++;
      }
      // Ten seconds of refill plus the initial burst; 5 tries a millisecond caps at 5000/s.
      const expected = Math.min(rps * 10 + rps, 50_000);
      expect(admitted).toBeGreaterThanOrEqual(expected - 1);
      expect(admitted).toBeLessThanOrEqual(expected + 1);
    });
  }

  it('each simulated second after the burst admits the rate, no more', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(20, 20, clock);
    while (bucket.tryTake()) {
      /* drain the initial burst */
    }
    for (let second = 0; second < 5; second++) {
      let admitted = 0;
      for (let tick = 0; tick < 100; tick++) {
        clock.advance(10);
        for (let i = 0; i < 3; i++) if (bucket.tryTake()) admitted++;
      }
      expect(admitted).toBe(20);
    }
  });

  it('admits a burst at once, then only the refill', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(10, 20, clock);
    expect(Array.from({ length: 30 }, () => bucket.tryTake()).filter(Boolean)).toHaveLength(20);
    clock.advance(500);
    expect(Array.from({ length: 30 }, () => bucket.tryTake()).filter(Boolean)).toHaveLength(5);
  });

  it('an idle bucket fills up to the burst and no further', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(10, 3, clock);
    clock.advance(3_600_000);
    expect(Array.from({ length: 10 }, () => bucket.tryTake()).filter(Boolean)).toHaveLength(3);
  });

  it('a clock that steps back neither mints tokens nor runs up a debt', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(10, 1, clock);
    expect(bucket.tryTake()).toBe(true);
    clock.advance(-60_000);
    expect(bucket.tryTake()).toBe(false);
    clock.advance(100);
    expect(bucket.tryTake()).toBe(true);
  });
});
