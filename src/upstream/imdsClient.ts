import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/log.js';
import type { MetricsRecorder, RouteLabel, UpstreamOutcome } from '../metrics/recorder.js';
import { backoffDelayMs } from './backoff.js';
import { UpstreamError } from './errors.js';
import { recordUpstreamExchange } from './exchangeRecord.js';
import { httpRequest, stoppedError, type UpstreamResponse, type UpstreamTransport } from './httpRequest.js';
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
  /** How exchanges are made; httpRequest unless a test scripts the upstream in memory. */
  request?: UpstreamTransport;
  /** Aborted when the proxy stops: exchanges and retry sleeps in flight end at once. */
  signal?: AbortSignal;
}

/**
 * Judges an answer IMDS gave on purpose before it counts as a success: throws an
 * UpstreamError (e.g. `invalid_response` for an error document) when the proxy cannot use it,
 * and that is the outcome counted and logged.
 */
export type ResponseJudge = (response: UpstreamResponse) => void;

/** A retry's wait, cut short when the proxy stops. */
function sleepUnlessStopped(ms: number, stop: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      stop?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    stop?.addEventListener('abort', done, { once: true });
  });
}

/**
 * GETs from IMDS with the proxy's session token, a timeout per attempt and bounded retries
 * with backoff. Answers IMDS gives on purpose (200, 404, other 4xx) are returned for the
 * caller to judge; failures (timeout, 429, 5xx, network) are retried, then thrown as
 * UpstreamError. Each exchange is counted once in metrics under the outcome concluded.
 */
export class ImdsClient {
  readonly session: UpstreamSession;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly request: UpstreamTransport;

  constructor(private readonly options: ImdsClientOptions) {
    this.session = new UpstreamSession(options);
    this.sleep = options.sleep ?? ((ms) => sleepUnlessStopped(ms, options.signal));
    this.request = options.request ?? httpRequest;
  }

  async get(path: string, route: RouteLabel, judge?: ResponseJudge): Promise<UpstreamResponse> {
    const { maxAttempts, retryBaseMs, retryMaxMs, random, signal } = this.options;
    let lastError: UpstreamError | undefined;
    let tokenRefetched = false;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      try {
        const headers = await this.session.headers();
        const response = await this.exchange(path, route, headers, judge, !tokenRefetched);
        if (response === 'token rejected') {
          // Our session token expired or IMDS restarted, or IMDS in tokenless mode now wants
          // tokens: a new token, then one more try, without spending a retry on it.
          tokenRefetched = true;
          this.session.invalidate(headers);
          attempt--;
          continue;
        }
        return response;
      } catch (error) {
        if (!(error instanceof UpstreamError)) throw error;
        lastError = error;
        if (signal?.aborted) throw stoppedError();
        if (!error.retryable || attempt === maxAttempts) break;
        await this.sleep(backoffDelayMs(attempt, retryBaseMs, retryMaxMs, random));
        if (signal?.aborted) throw stoppedError();
      }
    }
    throw lastError ?? new UpstreamError('network_error', 'no attempt made');
  }

  /** One exchange, judged and recorded. A first 401 is handed back for get() to retry. */
  private async exchange(
    path: string,
    route: RouteLabel,
    headers: Record<string, string>,
    judge: ResponseJudge | undefined,
    retryOn401: boolean,
  ): Promise<UpstreamResponse | 'token rejected'> {
    const { baseUrl, timeoutMs, signal, metrics, logger } = this.options;
    const started = performance.now();
    const record = (kind: UpstreamOutcome, status?: number) =>
      recordUpstreamExchange(metrics, logger, route, kind, status, (performance.now() - started) / 1000);
    let response: UpstreamResponse;
    try {
      response = await this.request({ method: 'GET', url: baseUrl + path, headers, timeoutMs, ...(signal ? { signal } : {}) });
    } catch (error) {
      if (error instanceof UpstreamError && !signal?.aborted) record(error.kind);
      throw error;
    }
    const { status } = response;
    if (status === 429) {
      record('throttled', 429);
      throw new UpstreamError('throttled', `${route}: throttled (429)`, 429);
    }
    if (status >= 500) {
      record('http_error', status);
      throw new UpstreamError('http_error', `${route}: upstream answered ${status}`, status);
    }
    if (status === 401) {
      record('http_error', 401);
      if (retryOn401) return 'token rejected';
      // IMDS rejected a token fetched a moment ago: the proxy's trouble, never the client's.
      // Relayed as 401, an SDK would take it as "your token is bad" and loop on new ones.
      throw new UpstreamError('http_error', `${route}: upstream rejected a fresh session token (401)`, 401);
    }
    if (judge !== undefined) {
      try {
        judge(response);
      } catch (error) {
        if (error instanceof UpstreamError) record(error.kind, status);
        throw error;
      }
      record('success', status);
      return response;
    }
    record(status < 400 || status === 404 ? 'success' : 'http_error', status);
    return response;
  }
}
