import { describe, expect, it } from 'vitest';
import {
  DEFAULT_REFRESH_SETTINGS as S,
  isServable,
  nextRefreshAfterFailure,
  nextRefreshAfterSuccess,
} from '../../src/cache/refreshPolicy.js';
import { makeCredentials } from '../support/credentials.js';

const HOUR = 3600_000;
const MIN = 60_000;
const t0 = Date.UTC(2026, 10, 28, 12);
const mid = () => 0.5;

describe('refresh policy', () => {
  it('refreshes at max-age while expiry is far', () => {
    const c = makeCredentials(t0 + 6 * HOUR);
    expect(nextRefreshAfterSuccess(c, t0, S, mid)).toBe(t0 + S.maxAgeMs);
  });

  it('jitters the max-age refresh within ±10%', () => {
    const c = makeCredentials(t0 + 6 * HOUR);
    expect(nextRefreshAfterSuccess(c, t0, S, () => 0)).toBe(t0 + 0.9 * S.maxAgeMs);
    expect(nextRefreshAfterSuccess(c, t0, S, () => 1)).toBe(t0 + 1.1 * S.maxAgeMs);
  });

  it('refreshes when refresh-before is reached if that comes first', () => {
    const c = makeCredentials(t0 + 32 * MIN);
    expect(nextRefreshAfterSuccess(c, t0, S, mid)).toBe(t0 + 2 * MIN);
  });

  it('inside the refresh window, retries on the rotation schedule, not at once', () => {
    const c = makeCredentials(t0 + 20 * MIN);
    const next = nextRefreshAfterSuccess(c, t0, S, mid);
    expect(next).toBe(t0 + S.rotationRetryMs);
    expect(nextRefreshAfterSuccess(c, t0, S, () => 0)).toBeGreaterThan(t0 + 0.7 * S.rotationRetryMs);
  });

  it('backs off exponentially after failures, capped', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 20].map((n) => nextRefreshAfterFailure(n, t0, S, () => 1) - t0);
    expect(delays.slice(0, 7)).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000]);
    expect(delays.at(-1)).toBe(S.failureBackoffMaxMs);
    for (const n of [1, 5, 30]) expect(nextRefreshAfterFailure(n, t0, S, () => 0) - t0).toBeGreaterThan(0);
  });

  it('serves credentials only until expiry less the safety margin', () => {
    const c = makeCredentials(t0 + 10 * MIN);
    expect(isServable(c, t0 + 10 * MIN - S.safetyMarginMs - 1, S)).toBe(true);
    expect(isServable(c, t0 + 10 * MIN - S.safetyMarginMs, S)).toBe(false);
    expect(isServable(c, t0 + 11 * MIN, S)).toBe(false);
  });
});
