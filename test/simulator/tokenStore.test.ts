import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { TokenStore } from '../../src/simulator/tokenStore.js';

describe('simulator token store', () => {
  it('a token is valid until its TTL has passed, then expired; unknown strings are invalid', () => {
    const clock = new ManualClock();
    const store = new TokenStore(clock);
    const token = store.mint(2);
    expect(token).toMatch(/^[A-Za-z0-9_-]{56}$/);
    expect(store.verify(token)).toBe('valid');
    clock.advance(1999);
    expect(store.verify(token)).toBe('valid');
    clock.advance(1);
    expect(store.verify(token)).toBe('expired');
    expect(store.verify('made-up')).toBe('invalid');
    expect(store.verify('')).toBe('invalid');
  });

  it('tokens are distinct', () => {
    const store = new TokenStore(new ManualClock());
    expect(new Set(Array.from({ length: 1000 }, () => store.mint(60))).size).toBe(1000);
  });

  it('stays bounded under a flood: expired tokens go first, valid ones only once it is full of them', () => {
    const clock = new ManualClock();
    const store = new TokenStore(clock, 100);
    const shortLived = Array.from({ length: 60 }, () => store.mint(1));
    clock.advance(1000);
    const longLived = Array.from({ length: 40 }, () => store.mint(21600));
    store.mint(21600);
    expect(shortLived.every((t) => store.verify(t) !== 'valid')).toBe(true);
    expect(longLived.every((t) => store.verify(t) === 'valid')).toBe(true);
    for (let i = 0; i < 10_000; i++) store.mint(21600);
    expect(store.size).toBeLessThanOrEqual(100);
    const newest = store.mint(21600);
    expect(store.verify(newest)).toBe('valid');
  });
});
