import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { ClientTokenAuthority, TOKEN_KEY_BYTES } from '../../src/tokens/clientTokens.js';

describe('ClientTokenAuthority', () => {
  it('accepts its own token until the TTL runs out, then calls it expired', () => {
    const clock = new ManualClock();
    const tokens = new ClientTokenAuthority(clock);
    const token = tokens.mint(21600);
    expect(tokens.verify(token)).toBe('valid');
    clock.advance(21600 * 1000 - 1);
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

  it('mints a different token every time', () => {
    const tokens = new ClientTokenAuthority(new ManualClock());
    const seen = new Set(Array.from({ length: 1000 }, () => tokens.mint(60)));
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
    for (let i = 0; i < 50_000; i++) tokens.mint(21600);
    expect(tokens.verify(early)).toBe('valid');
  });
});

describe('ClientTokenAuthority verification memo', () => {
  it('still expires a remembered token on time, and stays bounded under a flood of distinct tokens', () => {
    const clock = new ManualClock();
    const tokens = new ClientTokenAuthority(clock);
    const first = tokens.mint(10);
    expect(tokens.verify(first)).toBe('valid');
    for (let i = 0; i < 10_000; i++) expect(tokens.verify(tokens.mint(10))).toBe('valid');
    expect(tokens.verify(first)).toBe('valid');
    clock.advance(10_000);
    expect(tokens.verify(first)).toBe('expired');
    expect((tokens as unknown as { verified: Map<string, number> }).verified.size).toBeLessThanOrEqual(256);
  });
});
