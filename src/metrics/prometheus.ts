import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
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

/** Metric names are a public interface: dashboards, alerts and docs/metrics.md depend on them. */
export const METRIC_NAMES = {
  requests: 'imds_proxy_requests_total',
  requestDuration: 'imds_proxy_request_duration_seconds',
  cacheRequests: 'imds_proxy_cache_requests_total',
  upstreamRequests: 'imds_proxy_upstream_requests_total',
  upstreamRequestDuration: 'imds_proxy_upstream_request_duration_seconds',
  credentialsExpiration: 'imds_proxy_credentials_expiration_timestamp_seconds',
  credentialsLastRefresh: 'imds_proxy_credentials_last_refresh_timestamp_seconds',
  credentialsRefreshes: 'imds_proxy_credentials_refreshes_total',
  tokensIssued: 'imds_proxy_tokens_issued_total',
  tokenRejections: 'imds_proxy_token_rejections_total',
  upstreamTokenRefreshes: 'imds_proxy_upstream_token_refreshes_total',
  buildInfo: 'imds_proxy_build_info',
} as const;

export const ROUTE_LABELS: readonly RouteLabel[] = [
  'token',
  'credentials_list',
  'credentials',
  'credentials_extended',
  'iam_info',
  'metadata',
  'dynamic',
  'user_data',
  'container_credentials',
  'health',
  'metrics',
  'other',
];
export const METHOD_LABELS = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'PATCH', 'other'] as const;
export type MethodLabel = (typeof METHOD_LABELS)[number];
export const CACHE_NAMES: readonly CacheName[] = ['credentials', 'metadata'];
export const CACHE_RESULTS: readonly CacheResult[] = ['hit', 'miss', 'stale', 'coalesced'];
export const UPSTREAM_OUTCOMES: readonly UpstreamOutcome[] = [
  'success',
  'timeout',
  'throttled',
  'http_error',
  'network_error',
  'invalid_response',
];
export const REFRESH_OUTCOMES: readonly RefreshOutcome[] = ['success', 'unchanged', 'failure'];
export const TOKEN_REJECTION_REASONS: readonly TokenRejectionReason[] = ['missing', 'invalid', 'expired', 'forwarded', 'bad_ttl'];
export const UPSTREAM_TOKEN_OUTCOMES: readonly UpstreamTokenOutcome[] = ['success', 'failure', 'v1_fallback'];

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

/** One label set of a counter: the hot path adds to `value`; a scrape hands prom-client the rest. */
interface CounterCell {
  value: number;
  synced: number;
  readonly child: Counter.Internal;
}

/**
 * A prom-client Counter fed from plain numbers. prom-client hashes the label set and checks
 * it on every inc(), about half a microsecond; here the hot path is `cell.value++` and the
 * difference reaches prom-client once per scrape, in collect().
 */
class CellCounter<L extends string> {
  readonly metric: Counter<L>;
  private readonly cells = new Map<string, CounterCell>();

  constructor(registry: Registry, name: string, help: string, labelNames: readonly L[]) {
    const cells = this.cells;
    this.metric = new Counter<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        for (const cell of cells.values()) {
          if (cell.value === cell.synced) continue;
          cell.child.inc(cell.value - cell.synced);
          cell.synced = cell.value;
        }
      },
    });
  }

  /** Binds a label set, exposed as 0 from the next scrape on. Not for the hot path. */
  cell(...labelValues: string[]): CounterCell {
    const key = labelValues.join('\u0000');
    let cell = this.cells.get(key);
    if (cell === undefined) {
      cell = { value: 0, synced: 0, child: this.metric.labels(...labelValues) };
      cell.child.inc(0);
      this.cells.set(key, cell);
    }
    return cell;
  }

  remove(...labelValues: string[]): void {
    if (this.cells.delete(labelValues.join('\u0000'))) this.metric.remove(...labelValues);
  }
}

/** One label set of a histogram: per-bucket (not cumulative) counts, the last for +Inf. */
interface HistogramCell {
  readonly labelValue: string;
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * A histogram with one label whose observe() touches no object but its cell. prom-client's
 * Histogram has no way to add a batch of observations, so this is a metric of its own: it
 * answers get() in the shape prom-client's registry formats, and the registry writes the
 * text exposition as for any histogram.
 */
class CellHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly cells: HistogramCell[] = [];

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    private readonly labelName: string,
    private readonly upperBounds: readonly number[],
  ) {
    // The registry needs only name, help, type, get() and reset(); its type names
    // prom-client's own classes, hence the cast.
    registry.registerMetric(this as unknown as Metric);
  }

  cell(labelValue: string): HistogramCell {
    const cell: HistogramCell = { labelValue, counts: new Float64Array(this.upperBounds.length + 1), sum: 0, count: 0 };
    this.cells.push(cell);
    return cell;
  }

  observe(cell: HistogramCell, seconds: number): void {
    // One NaN would turn _sum into NaN for the life of the process.
    const value = seconds >= 0 ? seconds : 0;
    const bounds = this.upperBounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    cell.counts[i]!++;
    cell.sum += value;
    cell.count++;
  }

  async get() {
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    const bucket = `${this.name}_bucket`;
    for (const cell of this.cells) {
      if (cell.count === 0) continue;
      let cumulative = 0;
      for (let i = 0; i < this.upperBounds.length; i++) {
        cumulative += cell.counts[i]!;
        values.push({ metricName: bucket, labels: { [this.labelName]: cell.labelValue, le: this.upperBounds[i]! }, value: cumulative });
      }
      values.push({ metricName: bucket, labels: { [this.labelName]: cell.labelValue, le: '+Inf' }, value: cell.count });
      values.push({ metricName: `${this.name}_sum`, labels: { [this.labelName]: cell.labelValue }, value: cell.sum });
      values.push({ metricName: `${this.name}_count`, labels: { [this.labelName]: cell.labelValue }, value: cell.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const cell of this.cells) {
      cell.counts.fill(0);
      cell.sum = 0;
      cell.count = 0;
    }
  }
}

interface RequestRouteCells {
  duration: HistogramCell;
  /** Indexed by position in METHOD_LABELS, then keyed by status code. */
  byMethod: Map<number, CounterCell>[];
}

interface UpstreamRouteCells {
  duration: HistogramCell;
  byOutcome: Map<string, CounterCell>;
}

interface RoleState {
  label: string;
  expiration: Gauge.Internal<'role'>;
  lastRefresh: Gauge.Internal<'role'>;
  refreshes: Map<string, CounterCell>;
}

const KNOWN_ROUTES: ReadonlySet<string> = new Set(ROUTE_LABELS);
const KNOWN_UPSTREAM_OUTCOMES: ReadonlySet<string> = new Set(UPSTREAM_OUTCOMES);
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

function isValidStatus(status: number): boolean {
  return Number.isInteger(status) && status >= 100 && status <= 599;
}

/**
 * The MetricsRecorder behind /metrics. Every instance owns its registry, so tests and several
 * proxies in one process never share a series. Every label set is bound once to a plain
 * counter cell, so a call on the hit path is a Map lookup or two and an increment; prom-client
 * sees the totals when Prometheus scrapes.
 */
export class PrometheusMetrics implements MetricsRecorder {
  readonly registry: Registry;

  private readonly requests: CellCounter<'route' | 'method' | 'status'>;
  private readonly requestDuration: CellHistogram;
  private readonly upstreamRequests: CellCounter<'route' | 'outcome'>;
  private readonly upstreamDuration: CellHistogram;
  private readonly credentialsExpiration: Gauge<'role'>;
  private readonly credentialsLastRefresh: Gauge<'role'>;
  private readonly credentialsRefreshes: CellCounter<'role' | 'outcome'>;
  private readonly tokensIssued: CounterCell;

  private readonly requestCells = new Map<string, RequestRouteCells>();
  private readonly upstreamCells = new Map<string, UpstreamRouteCells>();
  private readonly cacheCells = new Map<string, Map<string, CounterCell>>();
  private readonly rejectionCells = new Map<string, CounterCell>();
  private readonly upstreamTokenCells = new Map<string, CounterCell>();
  /** By role as reported; several overflow roles map to one shared state. */
  private readonly roles = new Map<string, RoleState>();
  private readonly roleLabels = new Map<string, RoleState>();

  constructor(options: PrometheusMetricsOptions) {
    const registry = new Registry();
    this.registry = registry;

    this.requests = new CellCounter(
      registry,
      METRIC_NAMES.requests,
      'Client requests answered, by route label, HTTP method and status code.',
      ['route', 'method', 'status'],
    );
    this.requestDuration = new CellHistogram(
      registry,
      METRIC_NAMES.requestDuration,
      'Time to answer a client request, in seconds, by route label.',
      'route',
      REQUEST_DURATION_BUCKETS,
    );
    const cacheRequests = new CellCounter(
      registry,
      METRIC_NAMES.cacheRequests,
      'Cache lookups by cache and result: hit, miss, stale (served during a failing refresh), coalesced (joined an in-flight fetch).',
      ['cache', 'result'],
    );
    this.upstreamRequests = new CellCounter(
      registry,
      METRIC_NAMES.upstreamRequests,
      'Requests to the real IMDS, each attempt and retry counted, by route label and outcome.',
      ['route', 'outcome'],
    );
    this.upstreamDuration = new CellHistogram(
      registry,
      METRIC_NAMES.upstreamRequestDuration,
      'Duration of each request attempt to the real IMDS, in seconds, by route label.',
      'route',
      UPSTREAM_DURATION_BUCKETS,
    );
    this.credentialsExpiration = new Gauge({
      name: METRIC_NAMES.credentialsExpiration,
      help: 'Expiration of the credentials cached for a role, as a Unix timestamp in seconds.',
      labelNames: ['role'],
      registers: [registry],
    });
    this.credentialsLastRefresh = new Gauge({
      name: METRIC_NAMES.credentialsLastRefresh,
      help: 'When the credentials cached for a role were last fetched from upstream, as a Unix timestamp in seconds.',
      labelNames: ['role'],
      registers: [registry],
    });
    this.credentialsRefreshes = new CellCounter(
      registry,
      METRIC_NAMES.credentialsRefreshes,
      'Credential refreshes from upstream by role and outcome: success (new credentials), unchanged, failure.',
      ['role', 'outcome'],
    );
    this.tokensIssued = new CellCounter(registry, METRIC_NAMES.tokensIssued, 'IMDSv2 session tokens issued to clients.', []).cell();
    const tokenRejections = new CellCounter(
      registry,
      METRIC_NAMES.tokenRejections,
      'Client requests refused for their session token, by reason.',
      ['reason'],
    );
    const upstreamTokenRefreshes = new CellCounter(
      registry,
      METRIC_NAMES.upstreamTokenRefreshes,
      "Refreshes of the proxy's own IMDSv2 session token with upstream, by outcome.",
      ['outcome'],
    );
    new Gauge({
      name: METRIC_NAMES.buildInfo,
      help: 'Always 1; the version label says which imds-cache-proxy is running.',
      labelNames: ['version'],
      registers: [registry],
    })
      .labels(options.version)
      .set(1);

    // Label sets known up front exist from the first scrape, at zero, so the first event
    // shows in increase() rather than as a series appearing at 1.
    for (const cache of CACHE_NAMES) {
      this.cacheCells.set(cache, new Map(CACHE_RESULTS.map((result) => [result, cacheRequests.cell(cache, result)])));
    }
    for (const reason of TOKEN_REJECTION_REASONS) this.rejectionCells.set(reason, tokenRejections.cell(reason));
    for (const outcome of UPSTREAM_TOKEN_OUTCOMES) this.upstreamTokenCells.set(outcome, upstreamTokenRefreshes.cell(outcome));
    for (const route of ROUTE_LABELS) {
      this.requestCells.set(route, {
        duration: this.requestDuration.cell(route),
        byMethod: METHOD_LABELS.map(() => new Map<number, CounterCell>()),
      });
      this.upstreamCells.set(route, { duration: this.upstreamDuration.cell(route), byOutcome: new Map() });
    }
    for (const route of ALWAYS_UPSTREAM_ROUTES) {
      for (const outcome of UPSTREAM_OUTCOMES) this.upstreamOutcome(route, outcome);
    }

    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  }

  request(route: RouteLabel, method: string, status: number, seconds: number): void {
    const cells = this.requestCells.get(route) ?? this.requestCells.get('other')!;
    this.requestDuration.observe(cells.duration, seconds);
    const methodIndex = methodIndexOf(method);
    const byStatus = cells.byMethod[methodIndex]!;
    let counter = byStatus.get(status);
    if (counter === undefined) {
      const valid = isValidStatus(status);
      counter = this.requests.cell(
        KNOWN_ROUTES.has(route) ? route : 'other',
        METHOD_LABELS[methodIndex]!,
        valid ? String(status) : INVALID_STATUS_LABEL,
      );
      // Invalid statuses share one series, but remembering each distinct invalid number
      // would still grow this map without bound.
      if (valid) byStatus.set(status, counter);
    }
    counter.value++;
  }

  cache(cache: CacheName, result: CacheResult): void {
    const cell = this.cacheCells.get(cache)?.get(result);
    if (cell !== undefined) cell.value++;
  }

  upstreamRequest(route: RouteLabel, outcome: UpstreamOutcome, seconds: number): void {
    const label = KNOWN_ROUTES.has(route) ? route : 'other';
    const cells = this.upstreamCells.get(label)!;
    this.upstreamDuration.observe(cells.duration, seconds);
    const counter = cells.byOutcome.get(outcome) ?? (KNOWN_UPSTREAM_OUTCOMES.has(outcome) ? this.upstreamOutcome(label, outcome) : undefined);
    if (counter !== undefined) counter.value++;
  }

  credentialsRefreshed(role: string, outcome: RefreshOutcome): void {
    if (!KNOWN_REFRESH_OUTCOMES.has(outcome)) return;
    const state = this.role(role);
    let counter = state.refreshes.get(outcome);
    if (counter === undefined) {
      counter = this.credentialsRefreshes.cell(state.label, outcome);
      state.refreshes.set(outcome, counter);
    }
    counter.value++;
  }

  credentialsState(role: string, expiration: number, lastRefresh: number): void {
    const state = this.role(role);
    state.expiration.set(expiration / 1000);
    state.lastRefresh.set(lastRefresh / 1000);
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
    for (const outcome of REFRESH_OUTCOMES) this.credentialsRefreshes.remove(role, outcome);
  }

  tokenIssued(): void {
    this.tokensIssued.value++;
  }

  tokenRejected(reason: TokenRejectionReason): void {
    const cell = this.rejectionCells.get(reason);
    if (cell !== undefined) cell.value++;
  }

  upstreamTokenRefreshed(outcome: UpstreamTokenOutcome): void {
    const cell = this.upstreamTokenCells.get(outcome);
    if (cell !== undefined) cell.value++;
  }

  /** The text exposition for GET /metrics, with the Content-Type to send it under. */
  async exposition(): Promise<Exposition> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private upstreamOutcome(route: string, outcome: string): CounterCell {
    const cell = this.upstreamRequests.cell(route, outcome);
    this.upstreamCells.get(route)!.byOutcome.set(outcome, cell);
    return cell;
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
        refreshes: new Map(),
      };
      this.roleLabels.set(label, state);
    }
    // Overflow roles are not remembered one by one: that map would grow without bound.
    if (label === role) this.roles.set(role, state);
    return state;
  }
}
