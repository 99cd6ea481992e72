import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { CredentialCache } from '../../src/cache/credentialCache.js';
import { DEFAULT_REFRESH_SETTINGS as S } from '../../src/cache/refreshPolicy.js';
import { silentLogger } from '../../src/runtime/log.js';
import { makeCredentials } from '../support/credentials.js';
import { FakeSource } from '../support/fakeSource.js';
import { RecordingMetrics } from '../support/recordingMetrics.js';

/**
 * A cold start that reads an empty listing (an instance whose profile is not yet
 * attached at boot, or associated later with associate-iam-instance-profile) treats "no roles" as
 * a successful refresh and re-asks only at max-age (300 s). IMDS lists the role as soon as it is
 * associated; through the proxy every SDK process gets 404 ("no instance profile") for ~5 minutes.
 */
describe('an empty listing on a cold cache', () => {
  it('is re-checked within seconds, so a profile associated just after start is served', async () => {
    const clock = new ManualClock();
    const source = new FakeSource(makeCredentials(clock.now() + 6 * 3600_000));
    source.roles = [];
    const cache = new CredentialCache({ source, clock, settings: S, metrics: new RecordingMetrics(), logger: silentLogger, random: () => 0.5 });

    const first = await cache.roleList();
    expect(first.kind === 'found' && first.roles.length).toBe(0);

    // The instance profile is associated; IMDS now lists the role.
    source.roles = ['app-role'];
    for (let second = 0; second < 30; second++) {
      clock.advance(1_000);
      await cache.refreshIfDue();
    }
    const later = await cache.roleList();
    expect(later.kind === 'found' && later.roles).toEqual(['app-role']);
    expect((await cache.lookup('app-role')).kind).toBe('found');
  });

  it('after the role was dropped on empty listings, the next role IMDS lists is served within seconds', async () => {
    const clock = new ManualClock();
    const source = new FakeSource(makeCredentials(clock.now() + 6 * 3600_000));
    const cache = new CredentialCache({ source, clock, settings: S, metrics: new RecordingMetrics(), logger: silentLogger, random: () => 0.5 });
    await cache.refreshIfDue();
    // An association being replaced: the listing is empty long enough for the role to go.
    source.roles = [];
    clock.advance(S.maxAgeMs);
    for (let i = 0; i < 200 && cache.snapshot().entries.size > 0; i++) {
      clock.advance(Math.max(1, cache.refreshDueInMs));
      await cache.refreshIfDue();
    }
    expect(cache.snapshot().entries.size).toBe(0);
    // The new association's role appears.
    source.roles = ['new-role'];
    for (let second = 0; second < 30; second++) {
      clock.advance(1_000);
      await cache.refreshIfDue();
    }
    expect((await cache.lookup('new-role')).kind).toBe('found');
  });
});

