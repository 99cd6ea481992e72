import type { RoleCredentials } from '../imds/credentials.js';
import { backoffDelayMs, jittered } from '../upstream/backoff.js';

/**
 * When to go upstream for credentials: pure functions of the cached state and the time, so
 * the whole schedule of a six-hour credential life can be tested in milliseconds.
 */
export interface RefreshSettings {
  /** Refetch once the cached credentials are this old, to pick up rotations and revocations. */
  maxAgeMs: number;
  /** Refetch when this little is left before Expiration (botocore re-polls under ~25 min). */
  refreshBeforeMs: number;
  /** Credentials are served until Expiration less this margin, never after. */
  safetyMarginMs: number;
  /** Inside the refresh window with no new credentials yet: ask again this often. */
  rotationRetryMs: number;
  failureBackoffBaseMs: number;
  failureBackoffMaxMs: number;
  /** ± fraction applied to scheduled refreshes, so a fleet does not refresh in step. */
  jitter: number;
}

export const DEFAULT_REFRESH_SETTINGS: RefreshSettings = {
  maxAgeMs: 300_000,
  refreshBeforeMs: 1_800_000,
  safetyMarginMs: 60_000,
  rotationRetryMs: 60_000,
  failureBackoffBaseMs: 1_000,
  failureBackoffMaxMs: 60_000,
  jitter: 0.1,
};

/** The last moment at which these credentials may be handed to a client. */
export function servableUntil(c: RoleCredentials, s: RefreshSettings): number {
  return c.expiration - s.safetyMarginMs;
}

export function isServable(c: RoleCredentials, now: number, s: RefreshSettings): boolean {
  return now < servableUntil(c, s);
}

/**
 * When to refresh after a successful fetch at `fetchedAt`. Before the refresh window: at
 * max-age or at the window's start, whichever comes first. Inside the window (upstream has
 * not rotated yet, or handed out credentials that are already short-lived): on the
 * rotation-retry schedule, not on every request.
 */
export function nextRefreshAfterSuccess(
  c: RoleCredentials,
  fetchedAt: number,
  s: RefreshSettings,
  random: () => number = Math.random,
): number {
  const windowStart = c.expiration - s.refreshBeforeMs;
  if (fetchedAt >= windowStart) return fetchedAt + jittered(s.rotationRetryMs, 2 * s.jitter, random);
  const due = Math.min(fetchedAt + s.maxAgeMs, windowStart);
  return fetchedAt + jittered(due - fetchedAt, s.jitter, random);
}

/** When to try again after `consecutiveFailures` failed refreshes in a row (1 = the first). */
export function nextRefreshAfterFailure(
  consecutiveFailures: number,
  failedAt: number,
  s: RefreshSettings,
  random: () => number = Math.random,
): number {
  return failedAt + backoffDelayMs(consecutiveFailures, s.failureBackoffBaseMs, s.failureBackoffMaxMs, random);
}
