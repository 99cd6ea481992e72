import type { Clock } from '../runtime/clock.js';
import { accessKeyIdSuffix, describeCredentials, type Logger } from '../runtime/log.js';
import type { CacheResult, MetricsRecorder } from '../metrics/recorder.js';
import { formatCredentialsDocument, sameCredentials, type RoleCredentials } from '../imds/credentials.js';
import { UpstreamError } from '../upstream/errors.js';
import { SingleFlight } from './singleFlight.js';
import {
  isServable,
  nextRefreshAfterFailure,
  nextRefreshAfterSuccess,
  type RefreshSettings,
} from './refreshPolicy.js';

/** Where credentials come from: the upstream IMDS in production, anything in tests. */
export interface CredentialSource {
  listRoles(): Promise<string[]>;
  /**
   * `usable` is the cache's own test of fetched credentials (servable now): a source that
   * reports upstream outcomes counts a refused document as `invalid_response`.
   */
  fetchCredentials(role: string, usable: (credentials: RoleCredentials) => boolean): Promise<RoleCredentials>;
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

export interface RoleListing {
  readonly kind: 'found';
  readonly roles: readonly string[];
  /** The listing as IMDS words it, built once per listing. */
  readonly body: string;
}

export type RoleListLookup = RoleListing | { kind: 'unavailable'; retryAfterSeconds: number };

export interface CredentialCacheOptions {
  source: CredentialSource;
  clock: Clock;
  settings: RefreshSettings;
  metrics: MetricsRecorder;
  logger: Logger;
  random?: () => number;
  /** Called after the cached credentials changed (new, rotated, or a role removed); not on seed. */
  onChange?: () => void;
  /** Aborted when the proxy stops: a cycle cut short by it is neither logged nor counted. */
  signal?: AbortSignal;
}

/**
 * Dropping a role on an empty listing (404 or no names) while its credentials are still
 * servable needs this many such answers in a row, spanning at least EMPTY_LISTING_SPAN_MS:
 * one glitch, or an instance-profile association being replaced, must not cost clients the
 * credentials IMDS issued (they stay valid until Expiration whatever the listing says).
 * Meanwhile the listing is re-checked on the failure backoff (seconds). A listing that names
 * a different role replaces the old one at once. See docs/fault-matrix.md.
 */
export const EMPTY_LISTINGS_TO_DROP = 3;
export const EMPTY_LISTING_SPAN_MS = 30_000;

/**
 * The instance profile's credentials, held between upstream fetches: one refresh cycle at a
 * time, refresh-ahead in the background, stale-if-error, never past Expiration (README, Credentials).
 */
export class CredentialCache {
  private roles: readonly string[] | undefined;
  /** `roles` as answered to clients; set with them. */
  private listing: RoleListing | undefined;
  private readonly entries = new Map<string, CachedCredentials>();
  /** One refresh cycle at a time, under a single key. */
  private readonly cycles = new SingleFlight<'cycle', void>();
  private consecutiveFailures = 0;
  /** On the monotonic clock: a wall-clock step neither delays nor hastens a refresh. */
  private nextRefreshAt = Number.NEGATIVE_INFINITY;
  private seededSchedule = false;
  /** Empty listings in a row while servable credentials are held; see EMPTY_LISTINGS_TO_DROP. */
  private emptyListings: { count: number; firstAt: number } | undefined;
  /**
   * Empty listings in a row while nothing servable is held (a cold start before the instance
   * profile is associated, or after a role was dropped): re-checked on the failure backoff,
   * not at max-age, so a role IMDS starts listing is served within seconds.
   */
  private emptyListingsWithNothingServable = 0;
  private readonly random: () => number;

  constructor(private readonly options: CredentialCacheOptions) {
    this.random = options.random ?? Math.random;
  }

  /** True while some role has credentials that can be served now: what /readyz reports. */
  isReady(): boolean {
    return this.hasServableEntries();
  }

  /** Wall-clock epoch ms at which the next refresh cycle is due (as the clock reads now). */
  get refreshDueAt(): number {
    return this.options.clock.now() + this.refreshDueInMs;
  }

  /** Milliseconds until the next refresh cycle is due (≤ 0: due now), on the monotonic clock. */
  get refreshDueInMs(): number {
    return this.nextRefreshAt - this.options.clock.monotonic();
  }

  get failuresInARow(): number {
    return this.consecutiveFailures;
  }

  /**
   * Starts a refresh cycle if one is due, or if a listed role holds nothing servable while
   * refreshes are not failing (the wall clock stepped past its Expiration); resolves when any
   * cycle in flight has ended.
   */
  refreshIfDue(): Promise<void> {
    if (this.cycleInFlight === undefined && this.consecutiveFailures === 0 && this.roles?.some((role) => this.peekServable(role) === undefined)) {
      this.startRefresh();
    }
    this.nudge();
    return this.cycleInFlight ?? Promise.resolve();
  }

  private peekServable(role: string): CachedCredentials | undefined {
    const cached = this.entries.get(role);
    return cached !== undefined && isServable(cached.credentials, this.options.clock.now(), this.options.settings) ? cached : undefined;
  }

  /**
   * The role listing. A request that had to wait for the first cycle is counted as the
   * cache's miss (or coalesced, when it joined a cycle in flight): a cold stampede that goes
   * through the listing shows as one miss, however many clients one fetch served.
   */
  async roleList(): Promise<RoleListLookup> {
    const cached = this.serveCachedRoleList();
    if (cached !== undefined) return cached;
    const joined = this.cycleInFlight !== undefined;
    const wait = this.waitForRefresh();
    if (this.roles !== undefined || wait !== undefined) {
      // Never listed yet, or an empty listing due for its re-check: the client waits for it.
      this.options.metrics.cache('credentials', joined ? 'coalesced' : 'miss');
      await wait;
    }
    if (this.listing === undefined) return { kind: 'unavailable', retryAfterSeconds: this.retryAfterSeconds() };
    return this.listing;
  }

  /**
   * The role listing if it can be answered now, without waiting: the hit path, like
   * serveCached(). Undefined when the caller must go through roleList().
   */
  serveCachedRoleList(): RoleListing | undefined {
    if (this.listing === undefined || this.emptyListingRecheckDue()) return undefined;
    this.nudge();
    return this.listing;
  }

  /**
   * Serves the role's credentials from the cache if they can be served now, without waiting:
   * the hit path. When found, counts a hit (or stale) and nudges refresh-ahead; otherwise
   * records nothing and the caller goes through `lookup()`.
   */
  serveCached(role: string): CachedCredentials | undefined {
    const cached = this.peekServable(role);
    if (cached === undefined) return undefined;
    this.options.metrics.cache('credentials', this.cachedResult());
    this.nudge();
    return cached;
  }

  /** What serving from the cache counts as: stale while refreshes are failing. */
  private cachedResult(): 'hit' | 'stale' {
    return this.consecutiveFailures > 0 ? 'stale' : 'hit';
  }

  /** The role's credentials, waiting for a refresh cycle when nothing servable is cached. */
  async lookup(role: string): Promise<CredentialsLookup> {
    const { metrics } = this.options;
    const cached = this.serveCached(role);
    if (cached !== undefined) {
      return { kind: 'found', entry: cached, result: this.cachedResult() };
    }
    if (this.roles !== undefined && !this.roles.includes(role) && !this.emptyListingRecheckDue()) return { kind: 'not_found' };

    const joined = this.cycleInFlight !== undefined;
    const wait = this.waitForRefresh();
    if (wait === undefined) return { kind: 'unavailable', retryAfterSeconds: this.retryAfterSeconds() };
    const result = joined ? 'coalesced' : 'miss';
    metrics.cache('credentials', result);
    await wait;

    const fetched = this.peekServable(role);
    if (fetched !== undefined) return { kind: 'found', entry: fetched, result };
    if (this.roles !== undefined && !this.roles.includes(role)) return { kind: 'not_found' };
    return { kind: 'unavailable', retryAfterSeconds: this.retryAfterSeconds() };
  }

  /** Role names currently listed and, for each, its cached credentials if any. */
  snapshot(): { roles: readonly string[] | undefined; entries: ReadonlyMap<string, CachedCredentials> } {
    return { roles: this.roles, entries: this.entries };
  }

  /**
   * Seeds the cache (e.g. from the warm-start file). Credentials not servable now are
   * ignored. The next refresh is scheduled as if they had just been fetched; with several
   * roles seeded, the earliest of their refreshes is the one kept.
   */
  seed(role: string, credentials: RoleCredentials, fetchedAt: number): boolean {
    const { clock, settings } = this.options;
    const now = clock.now();
    if (!isServable(credentials, now, settings)) return false;
    this.roles ??= [];
    if (!this.roles.includes(role)) this.setRoles([...this.roles, role]);
    const fetched = Math.min(fetchedAt, now);
    this.store(role, credentials, fetched, false);
    const dueAt = this.monotonicIn(nextRefreshAfterSuccess(credentials, fetched, settings, this.random) - now);
    this.nextRefreshAt = this.seededSchedule ? Math.min(this.nextRefreshAt, dueAt) : dueAt;
    this.seededSchedule = true;
    return true;
  }

  /** The monotonic time `ms` from now. */
  private monotonicIn(ms: number): number {
    return this.options.clock.monotonic() + ms;
  }

  /**
   * A cycle to wait for when nothing servable is cached: the one in flight, or a new one,
   * unless the last cycles failed and the backoff has not run out (then undefined: the
   * caller answers 503 without touching upstream).
   */
  private waitForRefresh(): Promise<void> | undefined {
    const inFlight = this.cycleInFlight;
    if (inFlight !== undefined) return inFlight;
    if (this.consecutiveFailures > 0 && this.refreshDueInMs > 0) return undefined;
    return this.startRefresh();
  }

  /**
   * True when the listing was empty, nothing is servable, and its re-check is due or under
   * way: a client's request then waits for the re-check instead of taking a 404 from it.
   */
  private emptyListingRecheckDue(): boolean {
    if (this.roles?.length !== 0 || this.hasServableEntries()) return false;
    return this.cycleInFlight !== undefined || this.refreshDueInMs <= 0;
  }

  /** Background refresh-ahead on the request path: one comparison when nothing is due. */
  private nudge(): void {
    if (this.cycleInFlight === undefined && this.options.clock.monotonic() >= this.nextRefreshAt) this.startRefresh();
  }

  private retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.refreshDueInMs / 1000));
  }

  private get cycleInFlight(): Promise<void> | undefined {
    return this.cycles.current('cycle');
  }

  private startRefresh(): Promise<void> | undefined {
    if (this.options.signal?.aborted) return undefined;
    return this.cycles.run('cycle', () => this.runRefresh()).promise;
  }

  private async runRefresh(): Promise<void> {
    const { source, clock, settings, logger, signal } = this.options;
    let currentRole: string | undefined;
    try {
      const roles = await source.listRoles();
      if (roles.length === 0 && this.hasServableEntries() && !this.emptyListingConfirmed()) {
        this.refreshFailed('role_listing_empty', {
          failure: 'empty_listing',
          reason: `role listing empty; keeping servable credentials until it says so ${EMPTY_LISTINGS_TO_DROP} times over ${EMPTY_LISTING_SPAN_MS / 1000} s`,
          emptyListings: this.emptyListings?.count,
        });
        return;
      }
      this.emptyListings = undefined;
      this.setRoles(roles);
      let nextIn = settings.maxAgeMs;
      if (roles.length === 0) {
        // Nothing to serve: re-check on the failure backoff (seconds), not at max-age. Failures
        // back off by failures plus these, so alternating the two never restarts the ramp.
        const now = clock.now();
        nextIn = nextRefreshAfterFailure(++this.emptyListingsWithNothingServable, now, settings, this.random) - now;
      } else {
        this.emptyListingsWithNothingServable = 0;
      }
      const usable = (c: RoleCredentials) => isServable(c, clock.now(), settings);
      for (const role of roles) {
        currentRole = role;
        const credentials = await source.fetchCredentials(role, usable);
        const fetchedAt = clock.now();
        if (!usable(credentials)) {
          throw new UpstreamError('invalid_response', 'credentials already expired or inside the safety margin');
        }
        this.store(role, credentials, fetchedAt, true);
        nextIn = Math.min(nextIn, nextRefreshAfterSuccess(credentials, fetchedAt, settings, this.random) - fetchedAt);
      }
      if (this.consecutiveFailures > 0) {
        logger.info(
          { event: 'upstream_recovered', failedRefreshes: this.consecutiveFailures },
          'credential refresh succeeded again',
        );
      }
      this.consecutiveFailures = 0;
      this.nextRefreshAt = this.monotonicIn(nextIn);
    } catch (error) {
      // The proxy is stopping: nothing failed upstream, and nothing is logged after `stopped`.
      if (signal?.aborted) return;
      const upstream = error instanceof UpstreamError;
      this.refreshFailed(this.consecutiveFailures === 0 ? 'upstream_degraded' : 'credential_refresh_failed', {
        failure: upstream ? error.kind : 'internal_error',
        status: upstream ? error.status : undefined,
        reason: upstream ? error.message : String((error as Error)?.message ?? error),
        ...(currentRole !== undefined ? { role: currentRole } : {}),
      });
    }
  }

  /** An empty listing counts towards dropping the roles once it has lasted; see EMPTY_LISTINGS_TO_DROP. */
  private emptyListingConfirmed(): boolean {
    const now = this.options.clock.monotonic();
    this.emptyListings ??= { count: 0, firstAt: now };
    this.emptyListings.count++;
    return this.emptyListings.count >= EMPTY_LISTINGS_TO_DROP && now - this.emptyListings.firstAt >= EMPTY_LISTING_SPAN_MS;
  }

  /** A failed cycle: backoff, counted against the roles it failed for, and logged naming them. */
  private refreshFailed(event: string, fields: { role?: string; failure: string; status?: number | undefined; reason: string; emptyListings?: number | undefined }): void {
    const { clock, settings, logger } = this.options;
    this.consecutiveFailures++;
    this.nextRefreshAt = this.monotonicIn(
      nextRefreshAfterFailure(this.consecutiveFailures + this.emptyListingsWithNothingServable, clock.now(), settings, this.random) - clock.now(),
    );
    // A failed listing is a failed refresh of every role we serve; 'unknown' only before
    // any listing was ever read. Dashboards filter by role and must see it.
    const failedRoles = fields.role !== undefined ? [fields.role] : this.roles?.length ? this.roles : ['unknown'];
    for (const role of failedRoles) this.options.metrics.credentialsRefreshed(role, 'failure');
    logger.warn(
      {
        event,
        ...fields,
        role: failedRoles.join(','),
        failedRefreshes: this.consecutiveFailures,
        servingStale: this.hasServableEntries(),
        retryInMs: Math.round(this.refreshDueInMs),
      },
      event === 'role_listing_empty' ? 'role listing empty; still serving cached credentials' : 'credential refresh failed',
    );
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
    this.listing = { kind: 'found', roles, body: roles.join('\n') };
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

  private store(role: string, fetched: RoleCredentials, fetchedAt: number, fromUpstream: boolean): void {
    const { metrics, logger } = this.options;
    // A document without LastUpdated is served with the time the proxy fetched it: the
    // latest moment the credentials are known to have been current (never a future time).
    const credentials = Number.isFinite(fetched.lastUpdated) ? fetched : { ...fetched, lastUpdated: Math.floor(fetchedAt / 1000) * 1000 };
    const previous = this.entries.get(role);
    const changed = previous === undefined || !sameCredentials(previous.credentials, credentials);
    const body = formatCredentialsDocument(credentials);
    this.entries.set(role, { credentials, body, bodyLength: Buffer.byteLength(body), fetchedAt });
    metrics.credentialsState(role, credentials.expiration, fetchedAt, accessKeyIdSuffix(credentials.accessKeyId));
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
