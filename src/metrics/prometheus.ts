import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type {
  CacheName,
  CacheResult,
  MetricsRecorder,
  RefreshOutcome,
  RouteLabel,
  TokenRejectionReason,
  UpstreamOutcome,
  UpstreamTokenOutcome,
} from './recorder.js';
import {
  CACHE_NAMES,
  CACHE_RESULTS,
  METHOD_LABELS,
  METRIC_NAMES,
  REFRESH_OUTCOMES,
  ROUTE_LABELS,
  TOKEN_REJECTION_REASONS,
  UPSTREAM_OUTCOMES,
  UPSTREAM_TOKEN_OUTCOMES,
  type MethodLabel,
} from './names.js';

// Existing importers read the names from here.
export * from './names.js';

/**
 * An instance profile holds one role, so more than a handful means something is wrong; past
 * this many, roles share one series rather than growing the label set without limit.
 */
export const MAX_ROLE_LABELS = 16;
/** Parentheses cannot appear in an IAM role name, so this never collides with a real role. */
export const OVERFLOW_ROLE_LABEL = '(other)';
/** A status outside 100–599 is a bug, not a distinct series. */
export const INVALID_STATUS_LABEL = 'other';

/** The hit path answers from memory in well under a millisecond; misses wait on upstream. */
export const REQUEST_DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];
/** IMDS answers in a few ms; the default per-attempt timeout is 1 s, so resolve around it. */
export const UPSTREAM_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10];

/**
 * Upstream routes the background refresher always uses (its own token PUT included): their outcomes start at zero so
 * increase() and rate() see the first failure rather than a series appearing at 1.
 */
const ALWAYS_UPSTREAM_ROUTES: readonly RouteLabel[] = ['token', 'credentials_list', 'credentials'];

export interface PrometheusMetricsOptions {
  version: string;
  /** prom-client's process_* and nodejs_* metrics; on unless false. */
  defaultMetrics?: boolean;
}

export interface Exposition {
  contentType: string;
  body: string;
}

interface RequestRouteChildren {
  duration: Histogram.Internal<'route'>;
  /** Indexed by position in METHOD_LABELS, then keyed by status code; bound on first use. */
  byMethod: Map<number, Counter.Internal>[];
}

interface RoleState {
  label: string;
  expiration: Gauge.Internal<'role'>;
  lastRefresh: Gauge.Internal<'role'>;
  /** The access_key_id_suffix label of the role's credentials_info series, if any. */
  keySuffix: string | undefined;
  refreshes: Map<string, Counter.Internal>;
}

const KNOWN_ROUTES: ReadonlySet<string> = new Set(ROUTE_LABELS);
const KNOWN_REFRESH_OUTCOMES: ReadonlySet<string> = new Set(REFRESH_OUTCOMES);
const METHOD_INDEX = new Map<string, number>(METHOD_LABELS.map((m, i) => [m, i]));
const OTHER_METHOD_INDEX = METHOD_LABELS.length - 1;
const LONGEST_METHOD = Math.max(...METHOD_LABELS.map((m) => m.length));

/** Position in METHOD_LABELS; anything not a known method (in any case) is "other". */
function methodIndexOf(method: string): number {
  const exact = METHOD_INDEX.get(method);
  if (exact !== undefined) return exact;
  // Length first, so a hostile multi-megabyte method is never copied by toUpperCase.
  if (method.length > LONGEST_METHOD) return OTHER_METHOD_INDEX;
  return METHOD_INDEX.get(method.toUpperCase()) ?? OTHER_METHOD_INDEX;
}

/** prom-client refuses non-finite values, and one NaN would spoil _sum for good: such is 0. */
function observable(seconds: number): number {
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : 0;
}

function isValidStatus(status: number): boolean {
  return Number.isInteger(status) && status >= 100 && status <= 599;
}

/**
 * The MetricsRecorder behind /metrics, on prom-client's own Counter, Histogram and Gauge.
 * Every instance owns its registry, so tests and several proxies in one process never share
 * a series. Label children are bound once (`.labels(...)`), up front where the label set is
 * known, else on first use, so a call on the hot path is a lookup or two and prom-client's
 * own inc()/observe().
 */
export class PrometheusMetrics implements MetricsRecorder {
  readonly registry: Registry;

  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly credentialsExpiration: Gauge<'role'>;
  private readonly credentialsLastRefresh: Gauge<'role'>;
  private readonly credentialsRefreshes: Counter<'role' | 'outcome'>;
  private readonly credentialsInfo: Gauge<'role' | 'access_key_id_suffix'>;
  private readonly tokensIssued: Counter;

  private readonly requestChildren = new Map<string, RequestRouteChildren>();
  private readonly upstreamDurations = new Map<string, Histogram.Internal<'route'>>();
  private readonly upstreamOutcomes = new Map<string, Map<string, Counter.Internal>>();
  private readonly cacheChildren = new Map<string, Map<string, Counter.Internal>>();
  private readonly rejectionChildren = new Map<string, Counter.Internal>();
  private readonly upstreamTokenChildren = new Map<string, Counter.Internal>();
  /** By role as reported; several overflow roles map to one shared state. */
  private readonly roles = new Map<string, RoleState>();
  private readonly roleLabels = new Map<string, RoleState>();

  constructor(options: PrometheusMetricsOptions) {
    const registry = new Registry();
    this.registry = registry;
    const registers = [registry];

    this.requests = new Counter({
      name: METRIC_NAMES.requests,
      help: 'Client requests answered, by route label, HTTP method and status code.',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    const requestDuration = new Histogram({
      name: METRIC_NAMES.requestDuration,
      help: 'Time to answer a client request, in seconds, by route label.',
      labelNames: ['route'],
      buckets: REQUEST_DURATION_BUCKETS,
      registers,
    });
    const cacheRequests = new Counter({
      name: METRIC_NAMES.cacheRequests,
      help: 'Cache lookups by cache and result: hit, miss, stale (served during a failing refresh), coalesced (joined an in-flight fetch).',
      labelNames: ['cache', 'result'],
      registers,
    });
    const upstreamRequests = new Counter({
      name: METRIC_NAMES.upstreamRequests,
      help: 'Requests to the real IMDS, each attempt and retry counted, by route label and outcome.',
      labelNames: ['route', 'outcome'],
      registers,
    });
    const upstreamDuration = new Histogram({
      name: METRIC_NAMES.upstreamRequestDuration,
      help: 'Duration of each request attempt to the real IMDS, in seconds, by route label.',
      labelNames: ['route'],
      buckets: UPSTREAM_DURATION_BUCKETS,
      registers,
    });
    this.credentialsExpiration = new Gauge({
      name: METRIC_NAMES.credentialsExpiration,
      help: 'Expiration of the credentials cached for a role, as a Unix timestamp in seconds.',
      labelNames: ['role'],
      registers,
    });
    this.credentialsLastRefresh = new Gauge({
      name: METRIC_NAMES.credentialsLastRefresh,
      help: 'When the credentials cached for a role were last fetched from upstream, as a Unix timestamp in seconds.',
      labelNames: ['role'],
      registers,
    });
    this.credentialsRefreshes = new Counter({
      name: METRIC_NAMES.credentialsRefreshes,
      help: 'Credential refreshes from upstream by role and outcome: success (new credentials), unchanged, failure.',
      labelNames: ['role', 'outcome'],
      registers,
    });
    this.tokensIssued = new Counter({ name: METRIC_NAMES.tokensIssued, help: 'IMDSv2 session tokens issued to clients.', registers });
    const tokenRejections = new Counter({
      name: METRIC_NAMES.tokenRejections,
      help: 'Client requests refused for their session token, by reason.',
      labelNames: ['reason'],
      registers,
    });
    const upstreamTokenRefreshes = new Counter({
      name: METRIC_NAMES.upstreamTokenRefreshes,
      help: "Refreshes of the proxy's own IMDSv2 session token with upstream, by outcome.",
      labelNames: ['outcome'],
      registers,
    });
    this.credentialsInfo = new Gauge({
      name: METRIC_NAMES.credentialsInfo,
      help: 'Always 1; names the credentials cached for a role by the last 4 characters of their AccessKeyId (as logged), so a rotation shows.',
      labelNames: ['role', 'access_key_id_suffix'],
      registers,
    });
    new Gauge({
      name: METRIC_NAMES.buildInfo,
      help: 'Always 1; the version label says which imds-cache-proxy is running.',
      labelNames: ['version'],
      registers,
    })
      .labels(options.version)
      .set(1);

    // Label sets known up front exist from the first scrape, at zero (inc(0)), so the first
    // event shows in increase() rather than as a series appearing at 1.
    const atZero = (child: Counter.Internal) => {
      child.inc(0);
      return child;
    };
    for (const cache of CACHE_NAMES) {
      this.cacheChildren.set(cache, new Map(CACHE_RESULTS.map((result) => [result, atZero(cacheRequests.labels(cache, result))])));
    }
    for (const reason of TOKEN_REJECTION_REASONS) this.rejectionChildren.set(reason, atZero(tokenRejections.labels(reason)));
    for (const outcome of UPSTREAM_TOKEN_OUTCOMES) this.upstreamTokenChildren.set(outcome, atZero(upstreamTokenRefreshes.labels(outcome)));
    for (const route of ROUTE_LABELS) {
      this.requestChildren.set(route, { duration: requestDuration.labels(route), byMethod: METHOD_LABELS.map(() => new Map()) });
      this.upstreamDurations.set(route, upstreamDuration.labels(route));
      const always = ALWAYS_UPSTREAM_ROUTES.includes(route);
      this.upstreamOutcomes.set(
        route,
        new Map(UPSTREAM_OUTCOMES.map((outcome) => {
          const child = upstreamRequests.labels(route, outcome);
          return [outcome, always ? atZero(child) : child];
        })),
      );
    }

    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  }

  request(route: RouteLabel, method: string, status: number, seconds: number): void {
    const children = this.requestChildren.get(route) ?? this.requestChildren.get('other')!;
    children.duration.observe(observable(seconds));
    const methodIndex = methodIndexOf(method);
    const byStatus = children.byMethod[methodIndex]!;
    let counter = byStatus.get(status);
    if (counter === undefined) {
      const valid = isValidStatus(status);
      counter = this.requests.labels(
        KNOWN_ROUTES.has(route) ? route : 'other',
        METHOD_LABELS[methodIndex]!,
        valid ? String(status) : INVALID_STATUS_LABEL,
      );
      // Invalid statuses share one series, but remembering each distinct invalid number
      // would still grow this map without bound.
      if (valid) byStatus.set(status, counter);
    }
    counter.inc();
  }

  cache(cache: CacheName, result: CacheResult): void {
    this.cacheChildren.get(cache)?.get(result)?.inc();
  }

  upstreamRequest(route: RouteLabel, outcome: UpstreamOutcome, seconds: number): void {
    const label = KNOWN_ROUTES.has(route) ? route : 'other';
    this.upstreamDurations.get(label)!.observe(observable(seconds));
    this.upstreamOutcomes.get(label)!.get(outcome)?.inc();
  }

  credentialsRefreshed(role: string, outcome: RefreshOutcome): void {
    if (!KNOWN_REFRESH_OUTCOMES.has(outcome)) return;
    const state = this.role(role);
    let counter = state.refreshes.get(outcome);
    if (counter === undefined) {
      counter = this.credentialsRefreshes.labels(state.label, outcome);
      state.refreshes.set(outcome, counter);
    }
    counter.inc();
  }

  credentialsState(role: string, expiration: number, lastRefresh: number, accessKeyIdSuffix?: string): void {
    const state = this.role(role);
    state.expiration.set(expiration / 1000);
    state.lastRefresh.set(lastRefresh / 1000);
    if (accessKeyIdSuffix === undefined || accessKeyIdSuffix === state.keySuffix) return;
    // One series per role: the previous key's goes, so a rotation is a change, not a pile-up.
    if (state.keySuffix !== undefined) this.credentialsInfo.remove(state.label, state.keySuffix);
    this.credentialsInfo.labels(state.label, accessKeyIdSuffix).set(1);
    state.keySuffix = accessKeyIdSuffix;
  }

  /**
   * Drops a role's series once it has left the instance profile, so its frozen expiration
   * cannot fire alerts forever, and frees its place under MAX_ROLE_LABELS. A role that shares
   * the overflow label, or was never seen, is left alone.
   */
  forgetRole(role: string): void {
    const state = this.roles.get(role);
    if (state === undefined || state.label !== role) return;
    this.roles.delete(role);
    this.roleLabels.delete(role);
    this.credentialsExpiration.remove(role);
    this.credentialsLastRefresh.remove(role);
    if (state.keySuffix !== undefined) this.credentialsInfo.remove(role, state.keySuffix);
    for (const outcome of REFRESH_OUTCOMES) this.credentialsRefreshes.remove(role, outcome);
  }

  tokenIssued(): void {
    this.tokensIssued.inc();
  }

  tokenRejected(reason: TokenRejectionReason): void {
    this.rejectionChildren.get(reason)?.inc();
  }

  upstreamTokenRefreshed(outcome: UpstreamTokenOutcome): void {
    this.upstreamTokenChildren.get(outcome)?.inc();
  }

  /** The text exposition for GET /metrics, with the Content-Type to send it under. */
  async exposition(): Promise<Exposition> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private role(role: string): RoleState {
    const known = this.roles.get(role);
    if (known !== undefined) return known;
    const label = this.roleLabels.size < MAX_ROLE_LABELS ? role : OVERFLOW_ROLE_LABEL;
    let state = this.roleLabels.get(label);
    if (state === undefined) {
      state = {
        label,
        expiration: this.credentialsExpiration.labels(label),
        lastRefresh: this.credentialsLastRefresh.labels(label),
        keySuffix: undefined,
        refreshes: new Map(),
      };
      this.roleLabels.set(label, state);
    }
    // Overflow roles are not remembered one by one: that map would grow without bound.
    if (label === role) this.roles.set(role, state);
    return state;
  }
}
