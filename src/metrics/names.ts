/**
 * Names and label values of the proxy's metrics, without prom-client, so that readers of
 * /metrics (the `status` command) load in milliseconds. src/metrics/prometheus.ts re-exports them.
 */
import type {
  CacheName,
  CacheResult,
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
  credentialsInfo: 'imds_proxy_credentials_info',
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
