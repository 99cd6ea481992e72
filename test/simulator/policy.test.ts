import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { CredentialsIssuer } from '../../src/simulator/credentialsIssuer.js';
import { validateFaultsPatch } from '../../src/simulator/faults.js';
import { TokenBucket } from '../../src/simulator/tokenBucket.js';
import { parseSimulateArgs } from '../../src/simulator/command.js';
import { UsageError } from '../../src/usageError.js';

describe('token bucket', () => {
  for (const rps of [5, 50, 1000]) {
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

  it('admits a burst at once, then only the refill', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(10, 20, clock);
    expect(Array.from({ length: 30 }, () => bucket.tryTake()).filter(Boolean)).toHaveLength(20);
    clock.advance(500);
    expect(Array.from({ length: 30 }, () => bucket.tryTake()).filter(Boolean)).toHaveLength(5);
  });
});

describe('credentials issuer', () => {
  it('returns the same credentials until the rotation period, then new ones that expire lifetime after issue', () => {
    const clock = new ManualClock();
    const issuer = new CredentialsIssuer(clock, 6 * 3600_000, 3600_000);
    const first = issuer.current('r');
    expect(first.expiration - first.lastUpdated).toBe(6 * 3600_000);
    clock.advance(3600_000 - 1000);
    expect(issuer.current('r') === first).toBe(true);
    clock.advance(1000);
    const second = issuer.current('r');
    expect(second.accessKeyId).not.toBe(first.accessKeyId);
    expect(second.expiration).toBe(clock.now() - (clock.now() % 1000) + 6 * 3600_000);
    // The new credentials exist hours (and so at least five minutes) before the old expire.
    expect(first.expiration - second.lastUpdated).toBeGreaterThanOrEqual(5 * 60_000);
  });

  it('issues well-formed key ids, secrets and tokens', () => {
    const c = new CredentialsIssuer(new ManualClock(), 3600_000, 3600_000).current('r');
    expect(c.accessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/);
    expect(c.secretAccessKey).toMatch(/^[A-Za-z0-9+/]{40}$/);
    expect(c.token.length).toBeGreaterThan(400);
  });
});

describe('fault patches', () => {
  it('accepts known faults with good values', () => {
    expect(validateFaultsPatch({ latencyMs: 5, errorRate: 0.5, down: true, imdsV1Only: 405, httpTokens: 'optional' })).toEqual({
      latencyMs: 5,
      errorRate: 0.5,
      down: true,
      imdsV1Only: 405,
      httpTokens: 'optional',
    });
  });
  it('names the bad field', () => {
    expect(validateFaultsPatch({ errorRate: 2 })).toMatch(/^errorRate: /);
    expect(validateFaultsPatch({ down: 'yes' })).toMatch(/^down: /);
    expect(validateFaultsPatch({ imdsV1Only: 500 })).toMatch(/^imdsV1Only: /);
    expect(validateFaultsPatch({ frobnicate: 1 })).toMatch(/unknown fault "frobnicate"/);
    expect(validateFaultsPatch([1])).toMatch(/JSON object/);
  });
});

describe('simulate flags', () => {
  const bad = (argv: string[]) => {
    try {
      parseSimulateArgs(argv);
    } catch (error) {
      if (error instanceof UsageError) return error.message;
      throw error;
    }
    throw new Error('expected a UsageError');
  };
  it('names the bad flag and value in one line', () => {
    expect(bad(['--throttle-rps', 'lots'])).toMatch(/^--throttle-rps: .*"lots"$/);
    expect(bad(['--throttle-mode', 'slow'])).toMatch(/^--throttle-mode: .*"slow"$/);
    expect(bad(['--error-rate', '1.5'])).toMatch(/^--error-rate: .*"1\.5"$/);
    expect(bad(['--imdsv1-only', '500'])).toMatch(/^--imdsv1-only: /);
    expect(bad(['--control-listen', '0.0.0.0:8171'])).toMatch(/^--control-listen: .*loopback/);
    expect(bad(['--role', 'bad role'])).toMatch(/^--role: /);
    expect(bad(['--nope'])).toMatch(/--nope/);
  });
  it('turns flags into simulator options', () => {
    const { options } = parseSimulateArgs(['--listen', '127.0.0.1:0', '--throttle-rps', '50', '--throttle-mode', '429', '--role', 'a', '--role', 'b', '--error-document']);
    expect(options).toMatchObject({ port: 0, throttleRps: 50, throttleMode: '429', roles: ['a', 'b'], faults: { errorDocument: true } });
  });
});
