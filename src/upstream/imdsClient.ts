import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { MetricsRecorder, RouteLabel, UpstreamOutcome } from '../metrics/recorder.js';
import { backoffDelayMs } from './backoff.js';
import { UpstreamError } from './errors.js';
import { httpRequest, type UpstreamResponse } from './httpRequest.js';
import { UpstreamSession } from './sessionToken.js';

export interface ImdsClientOptions {
  /** e.g. http://169.254.169.254, no trailing slash. */
  baseUrl: string;
  /** Per attempt, covering connect, headers and body. */
  timeoutMs: number;
  /** Attempts per get(), counting the first. */
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  clock: Clock;
  metrics: MetricsRecorder;
  logger: Logger;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * GETs from IMDS with the proxy's session token, a timeout per attempt and bounded retries
 * with backoff. Answers IMDS gives on purpose (200, 404, other 4xx) are returned for the
 * caller to judge; failures (timeout, 429, 5xx, network) are retried, then thrown as
 * UpstreamError. Each exchange is counted once in metrics under its outcome.
 */
export class ImdsClient {
  readonly session: UpstreamSession;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly options: ImdsClientOptions) {
    this.session = new UpstreamSession(options);
    this.sleep = options.sleep ?? defaultSleep;
  }

  async get(path: string, route: RouteLabel): Promise<UpstreamResponse> {
    const { maxAttempts, retryBaseMs, retryMaxMs, random } = this.options;
    let lastError: UpstreamError | undefined;
    let tokenRefetched = false;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      try {
        const headers = await this.session.headers();
        const response = await this.exchange(path, route, headers);
        if (response.status === 401 && !tokenRefetched) {
          // Our session token expired or IMDS restarted: a new token, then one more try,
          // without spending a retry on it.
          tokenRefetched = true;
          this.session.invalidate(headers);
          attempt--;
          continue;
        }
        return response;
      } catch (error) {
        if (!(error instanceof UpstreamError)) throw error;
        lastError = error;
        if (!error.retryable || attempt === maxAttempts) break;
        await this.sleep(backoffDelayMs(attempt, retryBaseMs, retryMaxMs, random));
      }
    }
    throw lastError ?? new UpstreamError('network_error', 'no attempt made');
  }

  private async exchange(path: string, route: RouteLabel, headers: Record<string, string>): Promise<UpstreamResponse> {
    const { baseUrl, timeoutMs } = this.options;
    const started = performance.now();
    const outcome = (kind: UpstreamOutcome, status?: number) => this.record(route, kind, status, (performance.now() - started) / 1000);
    try {
      const response = await httpRequest({ method: 'GET', url: baseUrl + path, headers, timeoutMs });
      if (response.status === 429) {
        outcome('throttled', 429);
        throw new UpstreamError('throttled', `${route}: throttled (429)`, 429);
      }
      if (response.status >= 500) {
        outcome('http_error', response.status);
        throw new UpstreamError('http_error', `${route}: upstream answered ${response.status}`, response.status);
      }
      const ok = response.status < 400 || response.status === 404;
      outcome(ok ? 'success' : 'http_error', response.status);
      return response;
    } catch (error) {
      if (error instanceof UpstreamError && error.status === undefined) outcome(error.kind);
      throw error;
    }
  }

  /** Each exchange once: in metrics, and as one log line (route and status only, never a body). */
  private record(route: RouteLabel, outcome: UpstreamOutcome, status: number | undefined, seconds: number): void {
    const { metrics, logger } = this.options;
    metrics.upstreamRequest(route, outcome, seconds);
    // Credential fetches are a handful an hour: worth a line at info. Forwarded metadata is
    // client-driven, so its successes stay at debug.
    const level = outcome !== 'success' ? 'warn' : CREDENTIAL_ROUTES.has(route) ? 'info' : 'debug';
    if (!logger.isLevelEnabled(level)) return;
    logger[level]({ event: 'upstream_request', route, outcome, status, ms: Math.round(seconds * 10_000) / 10 }, 'upstream IMDS request');
  }
}

const CREDENTIAL_ROUTES: ReadonlySet<RouteLabel> = new Set(['credentials_list', 'credentials', 'credentials_extended', 'iam_info']);
