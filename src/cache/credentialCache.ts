import type { Clock } from '../clock.js';
import { describeCredentials, type Logger } from '../log.js';
import type { CacheResult, MetricsRecorder } from '../metrics/recorder.js';
import { formatCredentialsDocument, sameCredentials, type RoleCredentials } from '../imds/credentials.js';
import { UpstreamError } from '../upstream/errors.js';
import {
  isServable,
  nextRefreshAfterFailure,
  nextRefreshAfterSuccess,
  type RefreshSettings,
} from './refreshPolicy.js';

/** Where credentials come from: the upstream IMDS in production, anything in tests. */
export interface CredentialSource {
  listRoles(): Promise<string[]>;
  fetchCredentials(role: string): Promise<RoleCredentials>;
}

export interface CachedCredentials {
  readonly credentials: RoleCredentials;
  /** The IMDS document, formatted once per fetch so the hit path only copies bytes. */
  readonly body: string;
  /** `body`'s length in bytes, for the hit path's Content-Length. */
  readonly bodyLength: number;
  readonly fetchedAt: number;
}

export type CredentialsLookup =
  | { kind: 'found'; entry: CachedCredentials; result: CacheResult }
  | { kind: 'not_found' }
  | { kind: 'unavailable'; retryAfterSeconds: number };

export type RoleListLookup =
  | { kind: 'found'; roles: readonly string[]; body: string }
  | { kind: 'unavailable'; retryAfterSeconds: number };

export interface CredentialCacheOptions {
  source: CredentialSource;
  clock: Clock;
  settings: RefreshSettings;
  metrics: MetricsRecorder;
  logger: Logger;
  random?: () => number;
  /** Called after the cached credentials changed (new, rotated, or a role removed); not on seed. */
  onChange?: () => void;
}

/**
 * The instance profile's credentials, held between upstream fetches.
 *
 * - One refresh cycle at a time (list roles, fetch each role's credentials); every request
 *   that finds nothing servable joins the cycle in flight instead of starting another.
 * - Refresh-ahead: cycles are due by the refresh policy and run in the background
 *   (`refreshIfDue`, driven by a timer and nudged by requests), never on a client's time
 *   while servable credentials are cached.
 * - Stale-if-error: a failed cycle keeps the cached credentials in service until they
 *   expire less the safety margin, and schedules the next try with backoff.
 * - Credentials already expired (or inside the margin) when fetched are a failed fetch, not
 *   credentials; nothing is ever served past its Expiration.
 */
export class CredentialCache {
  private roles: readonly string[] | undefined;
  private roleListBody = '';
  private readonly entries = new Map<string, CachedCredentials>();
  private inFlight: Promise<void> | undefined;
  private consecutiveFailures = 0;
  private nextRefreshAt = 0;
  private readonly random: () => number;

  constructor(private readonly options: CredentialCacheOptions) {
    this.random = options.random ?? Math.random;
  }

  /** True once credentials for every listed role can be served. */
  isReady(): boolean {
    if (this.roles === undefined) return false;
    const now = this.options.clock.now();
    return this.roles.every((role) => {
      const entry = this.entries.get(role);
      return entry !== undefined && isServable(entry.credentials, now, this.options.settings);
    });
  }

  /** Epoch ms at which the next refresh cycle is due. */
  get refreshDueAt(): number {
    return this.nextRefreshAt;
  }

  get failuresInARow(): number {
    return this.consecutiveFailures;
  }

  /** Starts a refresh cycle if one is due; resolves when any cycle in flight has ended. */
  refreshIfDue(): Promise<void> {
    if (this.inFlight === undefined && this.options.clock.now() >= this.nextRefreshAt) this.startRefresh();
    return this.inFlight ?? Promise.resolve();
  }

  async roleList(): Promise<RoleListLookup> {
    if (this.roles === undefined) {
      const wait = this.waitForRefresh();
      if (wait !== undefined) await wait;
    } else {
      this.nudge();
    }
    if (this.roles === undefined) return { kind: 'unavailable', retryAfterSeconds: this.retryAfterSeconds() };
    return { kind: 'found', roles: this.roles, body: this.roleListBody };
  }

  /**
   * The role's credentials if they can be served now, without waiting for anything: the
   * hit path. Counted as a hit (or stale) only when found; otherwise nothing is recorded and
   * the caller goes through `credentials()`.
   */
  peek(role: string): CachedCredentials | undefined {
    const cached = this.entries.get(role);
    if (cached === undefined || !isServable(cached.credentials, this.options.clock.now(), this.options.settings)) return undefined;
    this.options.metrics.cache('credentials', this.cachedResult());
    this.nudge();
    return cached;
  }

  /** What serving from the cache counts as: stale while refreshes are failing. */
  private cachedResult(): 'hit' | 'stale' {
    return this.consecutiveFailures > 0 ? 'stale' : 'hit';
  }

  async credentials(role: string): Promise<CredentialsLookup> {
    const { clock, settings, metrics } = this.options;
    const cached = this.peek(role);
    if (cached !== undefined) {
      return { kind: 'found', entry: cached, result: this.cachedResult() };
    }
    if (this.roles !== undefined && !this.roles.includes(role)) return { kind: 'not_found' };

    const joined = this.inFlight !== undefined;
    const wait = this.waitForRefresh();
    if (wait === undefined) return { kind: 'unavailable', retryAfterSeconds: this.retryAfterSeconds() };
    const result = joined ? 'coalesced' : 'miss';
    metrics.cache('credentials', result);
    await wait;

    const fetched = this.entries.get(role);
    if (fetched !== undefined && isServable(fetched.credentials, clock.now(), settings)) {
      return { kind: 'found', entry: fetched, result };
    }
    if (this.roles !== undefined && !this.roles.includes(role)) return { kind: 'not_found' };
    return { kind: 'unavailable', retryAfterSeconds: this.retryAfterSeconds() };
  }

  /** Role names currently listed and, for each, its cached credentials if any. */
  snapshot(): { roles: readonly string[] | undefined; entries: ReadonlyMap<string, CachedCredentials> } {
    return { roles: this.roles, entries: this.entries };
  }

  /**
   * Seeds the cache (e.g. from the warm-start file). Credentials not servable now are
   * ignored. The next refresh is scheduled as if they had just been fetched.
   */
  seed(role: string, credentials: RoleCredentials, fetchedAt: number): boolean {
    const { clock, settings } = this.options;
    const now = clock.now();
    if (!isServable(credentials, now, settings)) return false;
    this.roles ??= [];
    if (!this.roles.includes(role)) this.setRoles([...this.roles, role]);
    this.store(role, credentials, Math.min(fetchedAt, now), false);
    this.nextRefreshAt = nextRefreshAfterSuccess(credentials, Math.min(fetchedAt, now), settings, this.random);
    return true;
  }

  /**
   * A cycle to wait for when nothing servable is cached: the one in flight, or a new one,
   * unless the last cycles failed and the backoff has not run out (then undefined: the
   * caller answers 503 without touching upstream).
   */
  private waitForRefresh(): Promise<void> | undefined {
    if (this.inFlight !== undefined) return this.inFlight;
    if (this.consecutiveFailures > 0 && this.options.clock.now() < this.nextRefreshAt) return undefined;
    this.startRefresh();
    return this.inFlight;
  }

  /** Background refresh-ahead on the request path: one comparison when nothing is due. */
  private nudge(): void {
    if (this.inFlight === undefined && this.options.clock.now() >= this.nextRefreshAt) this.startRefresh();
  }

  private retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((this.nextRefreshAt - this.options.clock.now()) / 1000));
  }

  private startRefresh(): void {
    this.inFlight = this.runRefresh().finally(() => {
      this.inFlight = undefined;
    });
  }

  private async runRefresh(): Promise<void> {
    const { source, clock, settings, logger } = this.options;
    let currentRole: string | undefined;
    try {
      const roles = await source.listRoles();
      this.setRoles(roles);
      let nextAt = clock.now() + settings.maxAgeMs;
      for (const role of roles) {
        currentRole = role;
        const credentials = await source.fetchCredentials(role);
        const fetchedAt = clock.now();
        if (!isServable(credentials, fetchedAt, settings)) {
          throw new UpstreamError('invalid_response', 'credentials already expired or inside the safety margin');
        }
        this.store(role, credentials, fetchedAt, true);
        nextAt = Math.min(nextAt, nextRefreshAfterSuccess(credentials, fetchedAt, settings, this.random));
      }
      if (this.consecutiveFailures > 0) {
        logger.info(
          { event: 'upstream_recovered', failedRefreshes: this.consecutiveFailures },
          'credential refresh succeeded again',
        );
      }
      this.consecutiveFailures = 0;
      this.nextRefreshAt = nextAt;
    } catch (error) {
      this.consecutiveFailures++;
      this.nextRefreshAt = nextRefreshAfterFailure(this.consecutiveFailures, clock.now(), settings, this.random);
      // A failed listing is a failed refresh of every role we serve; 'unknown' only before
      // any listing was ever read. Dashboards filter by role and must see it.
      const failedRoles = currentRole !== undefined ? [currentRole] : this.roles?.length ? this.roles : ['unknown'];
      for (const role of failedRoles) this.options.metrics.credentialsRefreshed(role, 'failure');
      const upstream = error instanceof UpstreamError;
      logger.warn(
        {
          event: this.consecutiveFailures === 1 ? 'upstream_degraded' : 'credential_refresh_failed',
          role: currentRole ?? 'unknown',
          failure: upstream ? error.kind : 'internal_error',
          status: upstream ? error.status : undefined,
          reason: upstream ? error.message : String((error as Error)?.message ?? error),
          failedRefreshes: this.consecutiveFailures,
          servingStale: this.hasServableEntries(),
          retryInMs: this.nextRefreshAt - clock.now(),
        },
        'credential refresh failed',
      );
    }
  }

  private hasServableEntries(): boolean {
    const now = this.options.clock.now();
    for (const entry of this.entries.values()) {
      if (isServable(entry.credentials, now, this.options.settings)) return true;
    }
    return false;
  }

  private setRoles(roles: readonly string[]): void {
    this.roles = roles;
    // No trailing newline: botocore and the PHP SDK paste the body into the next URL.
    this.roleListBody = roles.join('\n');
    let removed = false;
    for (const role of this.entries.keys()) {
      if (!roles.includes(role)) {
        this.entries.delete(role);
        this.options.metrics.forgetRole(role);
        removed = true;
        this.options.logger.info({ event: 'role_removed', role }, 'role no longer in the instance profile');
      }
    }
    if (removed) this.options.onChange?.();
  }

  private store(role: string, credentials: RoleCredentials, fetchedAt: number, fromUpstream: boolean): void {
    const { metrics, logger } = this.options;
    const previous = this.entries.get(role);
    const changed = previous === undefined || !sameCredentials(previous.credentials, credentials);
    const body = formatCredentialsDocument(credentials);
    this.entries.set(role, { credentials, body, bodyLength: Buffer.byteLength(body), fetchedAt });
    metrics.credentialsState(role, credentials.expiration, fetchedAt);
    if (!fromUpstream) return;
    metrics.credentialsRefreshed(role, changed ? 'success' : 'unchanged');
    if (changed) this.options.onChange?.();
    if (!changed) {
      logger.debug({ event: 'credentials_unchanged', role, ...describeCredentials(credentials) }, 'credentials unchanged');
    } else if (previous === undefined) {
      logger.info({ event: 'credentials_cached', role, ...describeCredentials(credentials) }, 'credentials cached');
    } else {
      logger.info({ event: 'credentials_rotated', role, ...describeCredentials(credentials) }, 'credentials rotated');
    }
  }
}
