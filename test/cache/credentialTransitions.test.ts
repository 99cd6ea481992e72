import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { CredentialCache, EMPTY_LISTING_SPAN_MS, EMPTY_LISTINGS_TO_DROP } from '../../src/cache/credentialCache.js';
import { DEFAULT_REFRESH_SETTINGS as S } from '../../src/cache/refreshPolicy.js';
import { createLogger } from '../../src/runtime/log.js';
import { makeCredentials } from '../support/credentials.js';
import { FakeSource } from '../support/fakeSource.js';
import { RecordingMetrics } from '../support/recordingMetrics.js';
import { proxyAppWithFakes } from '../support/proxyServices.js';

const HOUR = 3600_000;

function setup(lifetimeMs = 6 * HOUR) {
  const clock = new ManualClock();
  const source = new FakeSource(makeCredentials(clock.now() + lifetimeMs));
  const metrics = new RecordingMetrics();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const cache = new CredentialCache({ source, clock, settings: S, metrics, logger, random: () => 0.5 });
  return { clock, source, metrics, cache, lines };
}

/** Lets the background refresher's schedule run until `ms` have passed. */

describe('one empty role listing (item 1)', () => {
  it('keeps servable credentials in service, re-checks within seconds, and stays ready', async () => {
    const { clock, source, cache, metrics, lines } = setup();
    await cache.refreshIfDue();
    source.roles = [];
    clock.advance(S.maxAgeMs);
    await cache.refreshIfDue();
    const lookup = await cache.lookup('app-role');
    expect(lookup.kind).toBe('found');
    expect(cache.isReady()).toBe(true);
    const list = await cache.roleList();
    expect(list.kind === 'found' && list.body).toBe('app-role');
    // Re-checked on a seconds-scale backoff, not the 300 s max-age.
    expect(cache.refreshDueInMs).toBeLessThanOrEqual(S.failureBackoffBaseMs);
    // Logged and counted.
    expect(lines.some((l) => l.event === 'role_listing_empty' && l.role === 'app-role')).toBe(true);
    expect(metrics.count('refresh:app-role:failure')).toBe(1);

    source.roles = ['app-role'];
    clock.advance(cache.refreshDueInMs);
    await cache.refreshIfDue();
    expect(cache.failuresInARow).toBe(0);
    expect(cache.refreshDueInMs).toBeGreaterThan(S.maxAgeMs / 2);
  });

  it(`drops the role only after ${EMPTY_LISTINGS_TO_DROP} empty answers over ${EMPTY_LISTING_SPAN_MS / 1000} s`, async () => {
    const { clock, source, cache, lines } = setup();
    await cache.refreshIfDue();
    source.roles = [];
    clock.advance(S.maxAgeMs);
    const started = clock.monotonic();
    const listingsBefore = source.listCalls;
    for (;;) {
      await cache.refreshIfDue();
      if (cache.snapshot().entries.size === 0 || clock.monotonic() - started > 10 * 60_000) break;
      expect((await cache.lookup('app-role')).kind).toBe('found');
      clock.advance(Math.max(1, cache.refreshDueInMs));
    }
    const listingsAtDrop = source.listCalls - listingsBefore;
    expect(cache.snapshot().entries.size).toBe(0);
    expect(listingsAtDrop).toBeGreaterThanOrEqual(EMPTY_LISTINGS_TO_DROP);
    expect(clock.monotonic() - started).toBeGreaterThanOrEqual(EMPTY_LISTING_SPAN_MS);
    expect(clock.monotonic() - started).toBeLessThan(2 * 60_000);
    expect((await cache.lookup('app-role')).kind).toBe('not_found');
    expect(cache.isReady()).toBe(false);
    expect(lines.some((l) => l.event === 'role_removed')).toBe(true);
  });

  it('a listing that names a different role replaces the old one at once', async () => {
    const { clock, source, cache } = setup();
    await cache.refreshIfDue();
    source.roles = ['other-role'];
    clock.advance(S.maxAgeMs);
    await cache.refreshIfDue();
    expect((await cache.lookup('app-role')).kind).toBe('not_found');
    expect((await cache.lookup('other-role')).kind).toBe('found');
  });

  it('an empty listing with nothing servable is taken at once: no profile, 404 to the listing', async () => {
    const { source, cache } = setup();
    source.roles = [];
    const list = await cache.roleList();
    expect(list.kind === 'found' && list.roles).toEqual([]);
    expect(cache.failuresInARow).toBe(0);
  });
});

describe('/readyz', () => {
  it('is 503 with no roles at all and 200 once some role has servable credentials', async () => {
    const h = proxyAppWithFakes();
    h.source.roles = [];
    await h.services.credentials.refreshIfDue();
    expect((await h.app.request('/readyz')).status).toBe(503);
    h.source.roles = ['app-role'];
    h.clock.advance(S.maxAgeMs);
    await h.services.credentials.refreshIfDue();
    expect((await h.app.request('/readyz')).status).toBe(200);
  });
});

describe('monotonic scheduling (item 7)', () => {
  for (const [what, step] of [
    ['back', -HOUR],
    ['forward', HOUR],
  ] as const) {
    it(`a wall-clock step ${what} of an hour neither delays nor hastens the next refresh`, async () => {
      const { clock, source, cache } = setup(12 * HOUR);
      await cache.refreshIfDue();
      expect(source.listCalls).toBe(1);
      clock.stepWall(step);
      clock.advance(S.maxAgeMs * 0.8);
      await cache.refreshIfDue();
      expect(source.listCalls).toBe(1);
      clock.advance(S.maxAgeMs * 0.4);
      await cache.refreshIfDue();
      expect(source.listCalls).toBe(2);
    });
  }

  it('Expiration is judged on the wall clock: a step past it stops serving and starts a refresh', async () => {
    const { clock, source, cache } = setup(2 * HOUR);
    await cache.refreshIfDue();
    source.credentials = makeCredentials(clock.now() + 5 * HOUR);
    clock.stepWall(2 * HOUR);
    expect(cache.isReady()).toBe(false);
    await cache.refreshIfDue();
    expect(source.listCalls).toBe(2);
    expect(cache.isReady()).toBe(true);
  });
});

describe('smaller transitions (item 8)', () => {
  it('warm-start seeding keeps the earliest next refresh of all roles, whatever their order', async () => {
    const { clock, cache } = setup();
    cache.seed('soon-role', makeCredentials(clock.now() + 40 * 60_000), clock.now());
    cache.seed('late-role', makeCredentials(clock.now() + 6 * HOUR), clock.now());
    // soon-role is inside the 30 min refresh window in 10 min; late-role would wait 5 min.
    // Either way the earliest is due no later than either alone.
    expect(cache.refreshDueInMs).toBeLessThanOrEqual(S.maxAgeMs * (1 + S.jitter));
    const { cache: reversed, clock: c2 } = setup();
    reversed.seed('late-role', makeCredentials(c2.now() + 6 * HOUR), c2.now() - 4 * 60_000);
    reversed.seed('soon-role', makeCredentials(c2.now() + 6 * HOUR), c2.now());
    // late-role was fetched 4 min ago: due in ~1 min, and seeding soon-role must not push it out.
    expect(reversed.refreshDueInMs).toBeLessThanOrEqual(S.maxAgeMs - 4 * 60_000 + S.maxAgeMs * S.jitter);
  });

  it('a document without LastUpdated is served with the time it was fetched, never a future time', async () => {
    const { clock, source, cache } = setup();
    source.credentials = { ...makeCredentials(clock.now() + 6 * HOUR), lastUpdated: Number.NaN };
    const lookup = await cache.lookup('app-role');
    expect(lookup.kind).toBe('found');
    const doc = JSON.parse(lookup.kind === 'found' ? lookup.entry.body : '{}') as { LastUpdated: string };
    expect(Date.parse(doc.LastUpdated)).toBeLessThanOrEqual(clock.now());
    expect(Date.parse(doc.LastUpdated)).toBeGreaterThan(clock.now() - 1000);
  });
});

describe('logs and cache results (#17)', () => {
  it('a failed listing after the roles are known names them, not "unknown"', async () => {
    const { clock, source, cache, lines } = setup();
    await cache.refreshIfDue();
    source.failWith('timeout');
    clock.advance(S.maxAgeMs);
    await cache.refreshIfDue();
    const failure = lines.find((l) => l.event === 'upstream_degraded');
    expect(failure?.role).toBe('app-role');
  });

  it('a cold stampede through the role list counts one miss and the rest coalesced', async () => {
    const { source, cache, metrics } = setup();
    source.hold();
    const lists = Array.from({ length: 50 }, () => cache.roleList());
    source.release();
    await Promise.all(lists);
    for (let i = 0; i < 50; i++) await cache.lookup('app-role');
    expect(source.fetchCalls).toBe(1);
    expect(metrics.count('cache:credentials:miss')).toBe(1);
    expect(metrics.count('cache:credentials:coalesced')).toBe(49);
    expect(metrics.count('cache:credentials:hit')).toBe(50);
  });
});

