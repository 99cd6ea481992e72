import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { CredentialCache } from '../../src/cache/credentialCache.js';
import { DEFAULT_REFRESH_SETTINGS as S } from '../../src/cache/refreshPolicy.js';
import { silentLogger } from '../../src/runtime/log.js';
import { makeCredentials } from '../support/credentials.js';
import { FakeSource } from '../support/fakeSource.js';
import { RecordingMetrics } from '../support/recordingMetrics.js';

const HOUR = 3600_000;
const MIN = 60_000;

function setup(lifetimeMs = 6 * HOUR) {
  const clock = new ManualClock();
  const source = new FakeSource(makeCredentials(clock.now() + lifetimeMs));
  const metrics = new RecordingMetrics();
  const cache = new CredentialCache({ source, clock, settings: S, metrics, logger: silentLogger, random: () => 0.5 });
  return { clock, source, metrics, cache };
}

describe('CredentialCache', () => {
  it('turns 1000 concurrent cold requests into one upstream fetch', async () => {
    const { source, cache, metrics } = setup();
    source.hold();
    const lookups = Array.from({ length: 1000 }, () => cache.lookup('app-role'));
    source.release();
    const results = await Promise.all(lookups);
    expect(source.listCalls).toBe(1);
    expect(source.fetchCalls).toBe(1);
    expect(results.every((r) => r.kind === 'found')).toBe(true);
    expect(metrics.count('cache:credentials:miss')).toBe(1);
    expect(metrics.count('cache:credentials:coalesced')).toBe(999);
  });

  it('serves hits without going upstream until max-age, then refreshes in the background', async () => {
    const { clock, source, cache } = setup();
    await cache.refreshIfDue();
    expect(source.fetchCalls).toBe(1);
    for (let i = 0; i < 100; i++) expect((await cache.lookup('app-role')).kind).toBe('found');
    expect(source.fetchCalls).toBe(1);

    clock.advance(S.maxAgeMs - 1);
    await cache.refreshIfDue();
    expect(source.fetchCalls).toBe(1);
    clock.advance(1);
    await cache.refreshIfDue();
    expect(source.fetchCalls).toBe(2);
  });

  it('a hit never waits for a refresh that is due: the refresh runs behind it', async () => {
    const { clock, source, cache } = setup();
    await cache.refreshIfDue();
    clock.advance(S.maxAgeMs);
    source.hold();
    const lookup = await cache.lookup('app-role');
    expect(lookup.kind === 'found' && lookup.result).toBe('hit');
    expect(source.listCalls).toBe(2);
    source.release();
    await cache.refreshIfDue();
  });

  it('picks up rotated credentials and serves them', async () => {
    const { clock, source, cache } = setup();
    await cache.refreshIfDue();
    const rotated = makeCredentials(clock.now() + 7 * HOUR);
    source.credentials = rotated;
    clock.advance(S.maxAgeMs);
    await cache.refreshIfDue();
    const lookup = await cache.lookup('app-role');
    expect(lookup.kind === 'found' && lookup.entry.credentials.accessKeyId).toBe(rotated.accessKeyId);
  });

  it('rotation lag: unchanged credentials inside the refresh window are re-asked every ~60 s, not per request', async () => {
    const { clock, source, cache } = setup(25 * MIN);
    await cache.refreshIfDue();
    expect(source.fetchCalls).toBe(1);
    for (let i = 0; i < 50; i++) await cache.lookup('app-role');
    expect(source.fetchCalls).toBe(1);
    clock.advance(S.rotationRetryMs - 1);
    await cache.refreshIfDue();
    expect(source.fetchCalls).toBe(1);
    clock.advance(1);
    await cache.refreshIfDue();
    expect(source.fetchCalls).toBe(2);
  });

  it('stale-if-error: keeps serving cached credentials through failures, retrying with backoff', async () => {
    const { clock, source, cache, metrics } = setup();
    await cache.refreshIfDue();
    source.failWith('timeout');
    clock.advance(S.maxAgeMs);
    await cache.refreshIfDue();
    expect(cache.failuresInARow).toBe(1);
    const lookup = await cache.lookup('app-role');
    expect(lookup.kind === 'found' && lookup.result).toBe('stale');
    expect(metrics.count('cache:credentials:stale')).toBe(1);

    // Backoff: the next attempts come later and later, not on every tick.
    const attemptsAt: number[] = [];
    for (let step = 0; step < 20 * 60; step++) {
      clock.advance(1000);
      const before = source.listCalls;
      await cache.refreshIfDue();
      if (source.listCalls > before) attemptsAt.push(step);
    }
    const gaps = attemptsAt.slice(1).map((t, i) => t - attemptsAt[i]!);
    expect(gaps.length).toBeGreaterThan(3);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(S.failureBackoffMaxMs / 1000 + 1);
    expect(gaps.at(-1)).toBeGreaterThan(gaps[0]!);
    // Once backed off, attempts are at least half the cap apart (equal jitter): at most
    // 20 in ten minutes with a 60 s cap, whatever the dice say. Bounded load on a failing IMDS.
    const minGapSeconds = S.failureBackoffMaxMs / 2 / 1000;
    expect(attemptsAt.filter((t) => t >= 10 * 60).length).toBeLessThanOrEqual(Math.ceil(600 / minGapSeconds));
  });

  it('never serves credentials past their expiry less the margin, even when upstream is down', async () => {
    const { clock, source, cache } = setup(40 * MIN);
    await cache.refreshIfDue();
    source.failWith('network_error');
    clock.advance(40 * MIN - S.safetyMarginMs - 1);
    await cache.refreshIfDue();
    expect((await cache.lookup('app-role')).kind).toBe('found');
    clock.advance(1);
    const lookup = await cache.lookup('app-role');
    expect(lookup.kind).toBe('unavailable');
  });

  it('refuses credentials that arrive already expired: they are a failure, not a cache entry', async () => {
    const { clock, source, cache } = setup();
    source.credentials = makeCredentials(clock.now() - MIN);
    const lookup = await cache.lookup('app-role');
    expect(lookup.kind).toBe('unavailable');
    expect(cache.isReady()).toBe(false);
    expect(cache.failuresInARow).toBe(1);
  });

  it('with nothing cached and upstream failing: 503-style answer, and no upstream call until the backoff ends', async () => {
    const { clock, source, cache } = setup();
    source.failWith('throttled', 429);
    const first = await cache.lookup('app-role');
    expect(first.kind).toBe('unavailable');
    expect(first.kind === 'unavailable' && first.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    const calls = source.listCalls;
    for (let i = 0; i < 100; i++) expect((await cache.lookup('app-role')).kind).toBe('unavailable');
    expect(source.listCalls).toBe(calls);

    source.failWith(undefined);
    clock.advance(S.failureBackoffBaseMs);
    expect((await cache.lookup('app-role')).kind).toBe('found');
  });

  it('answers not_found for a role the instance profile does not have, without asking upstream', async () => {
    const { source, cache } = setup();
    await cache.refreshIfDue();
    const calls = source.fetchCalls;
    expect((await cache.lookup('other-role')).kind).toBe('not_found');
    expect(source.fetchCalls).toBe(calls);
  });

  it('lists roles with no trailing newline and forgets roles that left the profile', async () => {
    const { clock, source, cache } = setup();
    const list = await cache.roleList();
    expect(list.kind === 'found' && list.body).toBe('app-role');
    source.roles = ['new-role'];
    clock.advance(S.maxAgeMs);
    await cache.refreshIfDue();
    expect((await cache.lookup('app-role')).kind).toBe('not_found');
    expect((await cache.lookup('new-role')).kind).toBe('found');
  });

  it('is ready only while servable credentials are cached', async () => {
    const { clock, cache } = setup(2 * HOUR);
    expect(cache.isReady()).toBe(false);
    await cache.refreshIfDue();
    expect(cache.isReady()).toBe(true);
    clock.advance(2 * HOUR);
    expect(cache.isReady()).toBe(false);
  });

  it('seeds from a warm-start snapshot only if still servable', () => {
    const { clock, cache } = setup();
    expect(cache.seed('app-role', makeCredentials(clock.now() + 30_000), clock.now())).toBe(false);
    expect(cache.seed('app-role', makeCredentials(clock.now() + HOUR), clock.now())).toBe(true);
    expect(cache.isReady()).toBe(true);
  });
  it('tells onChange about new, rotated and removed credentials, not about seeds or unchanged refreshes', async () => {
    const clock = new ManualClock();
    const source = new FakeSource(makeCredentials(clock.now() + 6 * HOUR));
    let changes = 0;
    const metrics = new RecordingMetrics();
    const cache = new CredentialCache({
      source, clock, settings: S, metrics, logger: silentLogger, random: () => 0.5,
      onChange: () => changes++,
    });
    cache.seed('app-role', makeCredentials(clock.now() + 5 * HOUR), clock.now());
    expect(changes).toBe(0);
    clock.advance(S.maxAgeMs);
    await cache.refreshIfDue();
    expect(changes).toBe(1);
    clock.advance(S.maxAgeMs);
    await cache.refreshIfDue();
    expect(changes).toBe(1);
    source.credentials = makeCredentials(clock.now() + 6 * HOUR);
    clock.advance(S.maxAgeMs);
    await cache.refreshIfDue();
    expect(changes).toBe(2);
    // The listing empties: the role goes only once that has been said 3 times over 30 s.
    source.roles = [];
    clock.advance(S.maxAgeMs);
    await cache.refreshIfDue();
    expect(changes).toBe(2);
    for (let i = 0; i < 10 && changes === 2; i++) {
      clock.advance(cache.refreshDueInMs);
      await cache.refreshIfDue();
    }
    expect(changes).toBe(3);
    expect(cache.snapshot().entries.size).toBe(0);
    // Its metric series go with it, so no alert keeps firing on a role that is gone.
    expect(metrics.count('forgetRole:app-role')).toBe(1);
  });

  it('counts a failed role listing as a failed refresh of the roles it serves', async () => {
    const { clock, source, metrics, cache } = setup();
    source.failWith('timeout');
    await cache.refreshIfDue();
    expect(metrics.count('refresh:unknown:failure')).toBe(1);
    source.failWith(undefined);
    clock.advance(S.maxAgeMs);
    await cache.refreshIfDue();
    source.failWith('timeout');
    clock.advance(S.maxAgeMs);
    await cache.refreshIfDue();
    expect(metrics.count('refresh:app-role:failure')).toBe(1);
    expect(metrics.count('refresh:unknown:failure')).toBe(1);
  });
});
