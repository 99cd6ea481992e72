import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { ClientTokenAuthority, TOKEN_KEY_BYTES } from '../../src/tokens/clientTokens.js';

describe('ClientTokenAuthority', () => {
  it('accepts its own token for its whole TTL, and calls it expired on the tenth of a second after', () => {
    // 12:00:00.050: the expiry rounds up to the next tenth, .100.
    const clock = new ManualClock(Date.UTC(2026, 10, 28, 12, 0, 0, 50));
    const tokens = new ClientTokenAuthority(clock);
    const token = tokens.mint(21600);
    expect(tokens.verify(token)).toBe('valid');
    clock.advance(21600 * 1000);
    expect(tokens.verify(token)).toBe('valid');
    clock.advance(49);
    expect(tokens.verify(token)).toBe('valid');
    clock.advance(1);
    expect(tokens.verify(token)).toBe('expired');
  });

  it('refuses a genuine-looking token that expires later than the longest TTL allows (a leaked key minting forever-tokens)', () => {
    const key = randomBytes(TOKEN_KEY_BYTES);
    const clock = new ManualClock();
    const verifier = new ClientTokenAuthority(clock, key);
    // Same key, a clock 10 min ahead: what a holder of the key minting long tokens looks like.
    const ahead = new ManualClock(clock.now() + 10 * 60_000);
    expect(verifier.verify(new ClientTokenAuthority(ahead, key).mint(21600))).toBe('invalid');
    expect(verifier.verify(new ClientTokenAuthority(new ManualClock(clock.now() + 365 * 86_400_000), key).mint(60))).toBe('invalid');
    // A wall clock a minute off between minting and checking is slack, not forgery.
    const skewed = new ClientTokenAuthority(new ManualClock(clock.now() + 60_000), key).mint(21600);
    expect(verifier.verify(skewed)).toBe('valid');
  });

  it('gives requests for one TTL within a tenth of a second the same token, and a new one for the next tenth or another TTL', () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 28, 12, 0, 0, 1));
    const tokens = new ClientTokenAuthority(clock);
    const first = tokens.mint(21600);
    clock.advance(98);
    expect(tokens.mint(21600)).toBe(first);
    const otherTtl = tokens.mint(60);
    expect(otherTtl).not.toBe(first);
    expect(tokens.mint(21600)).toBe(first);
    // 12:00:00.100 plus the TTL is still the same tenth; a millisecond later is not.
    clock.advance(1);
    expect(tokens.mint(21600)).toBe(first);
    clock.advance(1);
    const nextSecond = tokens.mint(21600);
    expect(nextSecond).not.toBe(first);
    expect([first, otherTtl, nextSecond].map((t) => tokens.verify(t))).toEqual(['valid', 'valid', 'valid']);
    // Across tenths, and across more TTLs than are kept for sharing (40 of them, three to a
    // tenth): a new token every time, never one seen before.
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      if (i % 3 === 0) clock.advance(100);
      seen.add(tokens.mint(60 + (i % 40)));
    }
    expect(seen.size).toBe(1000);
  });

  it('rejects a token minted by another process (another key)', () => {
    const clock = new ManualClock();
    const foreign = new ClientTokenAuthority(clock).mint(60);
    expect(new ClientTokenAuthority(clock).verify(foreign)).toBe('invalid');
  });

  it('rejects any single-character change, including to the expiry', () => {
    const tokens = new ClientTokenAuthority(new ManualClock());
    const token = tokens.mint(1);
    for (let i = 0; i < token.length; i++) {
      const replacement = token[i] === 'A' ? 'B' : 'A';
      const tampered = token.slice(0, i) + replacement + token.slice(i + 1);
      expect(tokens.verify(tampered), `position ${i}`).toBe('invalid');
    }
  });

  it('rejects malformed input without throwing', () => {
    const tokens = new ClientTokenAuthority(new ManualClock());
    const valid = tokens.mint(60);
    for (const bad of ['', 'x', valid + 'A', valid.slice(1), valid.replace(/.$/, '!'), '\u0000'.repeat(valid.length), ' '.repeat(valid.length)]) {
      expect(tokens.verify(bad)).toBe('invalid');
    }
  });

  it('keeps tokens issued before a flood valid: nothing is stored per token', () => {
    const clock = new ManualClock();
    const tokens = new ClientTokenAuthority(clock);
    const early = tokens.mint(21600);
    // 50,000 new tokens, a tenth of a second apart for the first 200,000 ms (the early token's
    // TTL is 21,600,000 ms), then all in that last tenth with a TTL each.
    for (let i = 0; i < 50_000; i++) {
      clock.advance(i < 2_000 ? 100 : 0);
      tokens.mint(21600 - (i % 100));
    }
    expect(tokens.verify(early)).toBe('valid');
  });
});

describe('ClientTokenAuthority verification memo', () => {
  it('still expires a remembered token on time, and stays bounded under a flood of distinct tokens', () => {
    const clock = new ManualClock();
    const tokens = new ClientTokenAuthority(clock);
    const first = tokens.mint(21600);
    expect(tokens.verify(first)).toBe('valid');
    // 10,000 distinct tokens: a TTL each, as the same TTL within a second is one token.
    for (let i = 0; i < 10_000; i++) expect(tokens.verify(tokens.mint(20000 - i))).toBe('valid');
    expect(tokens.verify(first)).toBe('valid');
    clock.advance(21600 * 1000);
    expect(tokens.verify(first)).toBe('expired');
    expect((tokens as unknown as { verified: Map<string, number> }).verified.size).toBeLessThanOrEqual(256);
    expect((tokens as unknown as { shared: Map<number, unknown> }).shared.size).toBeLessThanOrEqual(16);
  });
});
