import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { CredentialCache } from '../../src/cache/credentialCache.js';
import { DEFAULT_REFRESH_SETTINGS as S } from '../../src/cache/refreshPolicy.js';
import { silentLogger } from '../../src/log.js';
import { makeCredentials } from '../support/credentials.js';
import { FakeSource } from '../support/fakeSource.js';
import { RecordingMetrics } from '../support/recordingMetrics.js';

/**
 * Review finding: a cold start that reads an empty listing (an instance whose profile is not yet
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
    expect((await cache.credentials('app-role')).kind).toBe('found');
  });
});
