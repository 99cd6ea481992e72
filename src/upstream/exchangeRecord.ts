import type { Logger } from '../runtime/log.js';
import type { MetricsRecorder, RouteLabel, UpstreamOutcome } from '../metrics/recorder.js';

/** Routes that carry the credential cycle: a handful of exchanges an hour, worth a line at info. */
const CREDENTIAL_ROUTES: ReadonlySet<RouteLabel> = new Set(['token', 'credentials_list', 'credentials', 'credentials_extended', 'iam_info']);

/**
 * Each exchange with IMDS once, under the outcome the proxy concluded: in metrics, and as one
 * `upstream_request` log line (route and status only, never a body). The token PUT goes
 * through here like every GET, so what reaches IMDS is what the metrics say.
 */
export function recordUpstreamExchange(
  metrics: MetricsRecorder,
  logger: Logger,
  route: RouteLabel,
  outcome: UpstreamOutcome,
  status: number | undefined,
  seconds: number,
): void {
  metrics.upstreamRequest(route, outcome, seconds);
  // Forwarded metadata is client-driven, so its successes stay at debug.
  const level = outcome !== 'success' ? 'warn' : CREDENTIAL_ROUTES.has(route) ? 'info' : 'debug';
  if (!logger.isLevelEnabled(level)) return;
  logger[level]({ event: 'upstream_request', route, outcome, status, ms: Math.round(seconds * 10_000) / 10 }, 'upstream IMDS request');
}
