import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { MetricsRecorder, RouteLabel } from '../metrics/recorder.js';
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
    const { baseUrl, timeoutMs, metrics } = this.options;
    const started = performance.now();
    try {
      const response = await httpRequest({ method: 'GET', url: baseUrl + path, headers, timeoutMs });
      const seconds = (performance.now() - started) / 1000;
      if (response.status === 429) {
        metrics.upstreamRequest(route, 'throttled', seconds);
        throw new UpstreamError('throttled', `${route}: throttled (429)`, 429);
      }
      if (response.status >= 500) {
        metrics.upstreamRequest(route, 'http_error', seconds);
        throw new UpstreamError('http_error', `${route}: upstream answered ${response.status}`, response.status);
      }
      const ok = response.status < 400 || response.status === 404;
      metrics.upstreamRequest(route, ok ? 'success' : 'http_error', seconds);
      return response;
    } catch (error) {
      if (error instanceof UpstreamError) {
        if (error.status === undefined) metrics.upstreamRequest(route, error.kind, (performance.now() - started) / 1000);
        throw error;
      }
      throw error;
    }
  }
}
