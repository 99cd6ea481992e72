/**
 * What the proxy reports as it works. The server, cache and upstream client call this
 * interface; src/metrics/prometheus.ts implements it with prom-client, and `noopMetrics`
 * lets the benchmark measure what metrics cost on the hit path.
 */

/** A small fixed set, never a raw path, so label cardinality is bounded whatever clients send. */
export type RouteLabel =
  | 'token'
  | 'credentials_list'
  | 'credentials'
  | 'credentials_extended'
  | 'iam_info'
  | 'metadata'
  | 'dynamic'
  | 'user_data'
  | 'container_credentials'
  | 'health'
  | 'metrics'
  | 'other';

export type CacheName = 'credentials' | 'metadata';
export type CacheResult = 'hit' | 'miss' | 'stale' | 'coalesced';

export type UpstreamOutcome =
  | 'success'
  | 'timeout'
  | 'throttled'
  | 'http_error'
  | 'network_error'
  | 'invalid_response';

export type RefreshOutcome = 'success' | 'unchanged' | 'failure';
export type TokenRejectionReason = 'missing' | 'invalid' | 'expired' | 'forwarded' | 'bad_ttl';
export type UpstreamTokenOutcome = 'success' | 'failure' | 'v1_fallback';

export interface MetricsRecorder {
  request(route: RouteLabel, method: string, status: number, seconds: number): void;
  cache(cache: CacheName, result: CacheResult): void;
  upstreamRequest(route: RouteLabel, outcome: UpstreamOutcome, seconds: number): void;
  credentialsRefreshed(role: string, outcome: RefreshOutcome): void;
  /**
   * Called whenever the credentials cached for a role change; epoch milliseconds. The key id's
   * last 4 characters (as logged) name the credentials without revealing anything secret.
   */
  credentialsState(role: string, expiration: number, lastRefresh: number, accessKeyIdSuffix?: string): void;
  /**
   * Called when a role has left the instance profile: its per-role series go, so a frozen
   * expiration cannot keep alerts firing, and it no longer counts against the role-label cap.
   */
  forgetRole(role: string): void;
  tokenIssued(): void;
  tokenRejected(reason: TokenRejectionReason): void;
  upstreamTokenRefreshed(outcome: UpstreamTokenOutcome): void;
}

export const noopMetrics: MetricsRecorder = {
  request() {},
  cache() {},
  upstreamRequest() {},
  credentialsRefreshed() {},
  credentialsState() {},
  forgetRole() {},
  tokenIssued() {},
  tokenRejected() {},
  upstreamTokenRefreshed() {},
};
