import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { parseCredentialsDocument, sameCredentials } from '../../src/imds/credentials.js';
import { CredentialsIssuer } from '../../src/simulator/credentialsIssuer.js';
import { startSimulator } from '../../src/simulator/simulator.js';
import { bodyOf, call, fetchToken, TOKEN_HEADER } from './rawCall.js';

const HOUR = 3600_000;

describe('credentials issuer', () => {
  it('returns the same credentials until the rotation period, then new ones that expire lifetime after issue', () => {
    const clock = new ManualClock();
    const issuer = new CredentialsIssuer(clock, 6 * HOUR, HOUR);
    const first = issuer.current('r');
    expect(first.lastUpdated).toBe(clock.now());
    expect(first.expiration).toBe(first.lastUpdated + 6 * HOUR);
    clock.advance(HOUR - 1000);
    expect(issuer.current('r') === first).toBe(true);
    clock.advance(1000);
    const second = issuer.current('r');
    expect(second.accessKeyId).not.toBe(first.accessKeyId);
    expect(second.secretAccessKey === first.secretAccessKey).toBe(false);
    expect(second.lastUpdated).toBe(clock.now());
    expect(second.expiration).toBe(clock.now() + 6 * HOUR);
    // The new credentials exist hours (and so at least five minutes) before the old expire.
    expect(first.expiration - second.lastUpdated).toBeGreaterThanOrEqual(5 * 60_000);
  });

  it('issue times are whole seconds, as IMDS writes them', () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 0, 0, 0, 789));
    const c = new CredentialsIssuer(clock, 6 * HOUR, HOUR).current('r');
    expect(c.lastUpdated % 1000).toBe(0);
    expect(c.expiration % 1000).toBe(0);
  });

  it('roles rotate independently; rotateAll renews every role now', () => {
    const clock = new ManualClock();
    const issuer = new CredentialsIssuer(clock, 6 * HOUR, HOUR);
    const a = issuer.current('a');
    clock.advance(30 * 60_000);
    const b = issuer.current('b');
    clock.advance(30 * 60_000);
    expect(issuer.current('a') === a).toBe(false);
    expect(issuer.current('b') === b).toBe(true);
    issuer.rotateAll(['a', 'b']);
    expect(issuer.peek('b') === b).toBe(false);
  });

  it('issues well-formed key ids, secrets and tokens', () => {
    const c = new CredentialsIssuer(new ManualClock(), 6 * HOUR, HOUR).current('r');
    expect(c.accessKeyId).toMatch(/^ASIA[A-Z0-9]{16}$/);
    expect(/^[A-Za-z0-9+/]{40}$/.test(c.secretAccessKey)).toBe(true);
    expect(/^[A-Za-z0-9+/]{400,}={0,2}$/.test(c.token)).toBe(true);
    expect(c.type).toBe('AWS-HMAC');
  });
});

describe('rotation through the simulator, on a manual clock', () => {
  it('serves the same document until rotation, then new credentials; expired tokens are refused', async () => {
    const clock = new ManualClock();
    const sim = await startSimulator({ port: 0, clock, credentialLifetimeSeconds: 7200, rotationPeriodSeconds: 1800 });
    try {
      const token = await fetchToken(sim.url, '21600');
      const fetchCredentials = async () => {
        const doc = parseCredentialsDocument(
          bodyOf(await call(`${sim.url}/latest/meta-data/iam/security-credentials/demo-role`, 'GET', { [TOKEN_HEADER]: token })),
        );
        if (doc.kind !== 'credentials') throw new Error(`expected credentials, got ${doc.kind}`);
        return doc.credentials;
      };
      const issuedAt = clock.now();
      const first = await fetchCredentials();
      expect(first.expiration).toBe(issuedAt + 7200_000);
      clock.advance(1800_000 - 1);
      expect(sameCredentials(await fetchCredentials(), first)).toBe(true);
      clock.advance(1);
      const second = await fetchCredentials();
      expect(sameCredentials(second, first)).toBe(false);
      expect(second.lastUpdated).toBe(clock.now());
      expect(second.expiration).toBe(clock.now() + 7200_000);
      expect(sameCredentials(sim.currentCredentials('demo-role')!, second)).toBe(true);

      const shortToken = await fetchToken(sim.url, '5');
      clock.advance(5000);
      const refused = await call(`${sim.url}/latest/meta-data/instance-id`, 'GET', { [TOKEN_HEADER]: shortToken });
      expect('status' in refused && refused.status).toBe(401);
    } finally {
      await sim.close();
    }
  });

  it('refuses a lifetime that does not outlive rotation by five minutes', async () => {
    await expect(startSimulator({ port: 0, credentialLifetimeSeconds: 3600, rotationPeriodSeconds: 3600 })).rejects.toThrow(RangeError);
    await expect(startSimulator({ port: 0, credentialLifetimeSeconds: 3899 })).rejects.toThrow(/rotationPeriodSeconds/);
    await expect(startSimulator({ port: 0, roles: [] })).rejects.toThrow(/roles/);
  });
});
