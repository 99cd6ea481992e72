/** Reads one sample's value out of a Prometheus text exposition; 0 when absent. */
export function sampleValue(exposition: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return 0;
}

/** The metric names documented as public interface (docs/metrics.md). */
export const PUBLIC_SERIES = [
  'imds_proxy_requests_total',
  'imds_proxy_request_duration_seconds',
  'imds_proxy_cache_requests_total',
  'imds_proxy_upstream_requests_total',
  'imds_proxy_upstream_request_duration_seconds',
  'imds_proxy_credentials_expiration_timestamp_seconds',
  'imds_proxy_credentials_last_refresh_timestamp_seconds',
  'imds_proxy_credentials_refreshes_total',
  'imds_proxy_credentials_info',
  'imds_proxy_tokens_issued_total',
  'imds_proxy_token_rejections_total',
  'imds_proxy_upstream_token_refreshes_total',
  'imds_proxy_build_info',
];
