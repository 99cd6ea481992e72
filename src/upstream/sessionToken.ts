import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/log.js';
import type { MetricsRecorder, UpstreamOutcome } from '../metrics/recorder.js';
import { MAX_TOKEN_TTL_SECONDS, TOKEN_HEADER, TOKEN_PATH, TOKEN_TTL_HEADER } from '../imds/protocol.js';
import { backoffDelayMs } from './backoff.js';
import { UpstreamError } from './errors.js';
import { recordUpstreamExchange } from './exchangeRecord.js';
import { httpRequest, type UpstreamResponse, type UpstreamTransport } from './httpRequest.js';

/** IMDSv1-only upstreams answer the token PUT with one of these; nothing else means that. */
const V1_ONLY_STATUSES = new Set([403, 404, 405]);
/** How long to stay tokenless before asking whether IMDSv2 has been turned on since. */
const V1_RECHECK_MS = 10 * 60_000;
/** Renew when this fraction of the token's life is left, well before an SDK-visible 401. */
const RENEW_FRACTION = 0.1;
/** After a failed renewal or re-check, the next try waits 1 s, 2 s, ... up to a minute. */
const RETRY_BASE_MS = 1000;
const RETRY_MAX_MS = 60_000;
/** A token this close to its expiry is not sent: it could expire on the way. */
const EXPIRY_SLACK_MS = 10_000;

/** Times are on the monotonic clock: a wall-clock step moves none of them. */
type SessionState =
  | { mode: 'none' }
  | { mode: 'v2'; token: string; renewAt: number; usableUntil: number }
  | { mode: 'v1'; recheckAt: number };

export interface UpstreamSessionOptions {
  baseUrl: string;
  timeoutMs: number;
  clock: Clock;
  metrics: MetricsRecorder;
  logger: Logger;
  ttlSeconds?: number;
  request?: UpstreamTransport;
  signal?: AbortSignal;
}

/**
 * The proxy's own IMDSv2 session with the upstream: one token for all requests, renewed
 * before it expires, dropped on a 401. Falls back to tokenless (IMDSv1) requests only when
 * the token route itself says IMDSv2 is not there (403/404/405): a timeout or a 5xx is a
 * transient failure, and downgrading on one would silently weaken every request after it.
 * In tokenless mode a 401 means IMDS requires tokens now: the next request asks for one.
 */
export class UpstreamSession {
  private state: SessionState = { mode: 'none' };
  private pending: Promise<Record<string, string>> | undefined;
  private readonly ttlSeconds: number;
  private readonly request: UpstreamTransport;
  /** Renewals or re-checks failed in a row while the session in hand still worked. */
  private failedRenewals = 0;

  constructor(private readonly options: UpstreamSessionOptions) {
    this.ttlSeconds = options.ttlSeconds ?? MAX_TOKEN_TTL_SECONDS;
    this.request = options.request ?? httpRequest;
  }

  get mode(): SessionState['mode'] {
    return this.state.mode;
  }

  /** Headers that authenticate one upstream GET. Single-flight: one token PUT at a time. */
  headers(): Promise<Record<string, string>> {
    const now = this.options.clock.monotonic();
    const s = this.state;
    if (s.mode === 'v2' && now < Math.min(s.renewAt, s.usableUntil)) return Promise.resolve({ [TOKEN_HEADER]: s.token });
    if (s.mode === 'v1' && now < s.recheckAt) return Promise.resolve({});
    this.pending ??= this.renew().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  /**
   * A token PUT. If it fails while the session in hand still works (a v2 token not yet
   * expired, or tokenless v1 mode), the request goes on with that session and the PUT is
   * tried again after a backoff: a throttling blip must not fail GETs IMDS would answer.
   */
  private async renew(): Promise<Record<string, string>> {
    const before = this.state;
    try {
      const headers = await this.fetchToken();
      this.failedRenewals = 0;
      return headers;
    } catch (error) {
      const now = this.options.clock.monotonic();
      // `this.state !== before`: a 401 invalidated the session meanwhile.
      if (this.options.signal?.aborted || this.state !== before) throw error;
      const retryAt = now + backoffDelayMs(++this.failedRenewals, RETRY_BASE_MS, RETRY_MAX_MS);
      if (before.mode === 'v2' && now < before.usableUntil) {
        this.state = { ...before, renewAt: Math.min(retryAt, before.usableUntil) };
        return { [TOKEN_HEADER]: before.token };
      }
      if (before.mode === 'v1') {
        this.state = { mode: 'v1', recheckAt: retryAt };
        return {};
      }
      throw error;
    }
  }

  /** Called when upstream answered 401 to `headers`: that token, or going without one, is no good any more. */
  invalidate(headers: Record<string, string>): void {
    const s = this.state;
    if (s.mode === 'v2' && headers[TOKEN_HEADER] === s.token) this.state = { mode: 'none' };
    if (s.mode === 'v1' && headers[TOKEN_HEADER] === undefined) this.state = { mode: 'none' };
  }

  private async fetchToken(): Promise<Record<string, string>> {
    const { baseUrl, timeoutMs, clock, metrics, logger, signal } = this.options;
    const started = performance.now();
    const record = (outcome: UpstreamOutcome, status?: number) =>
      recordUpstreamExchange(metrics, logger, 'token', outcome, status, (performance.now() - started) / 1000);
    let response: UpstreamResponse;
    try {
      response = await this.request({
        method: 'PUT',
        url: baseUrl + TOKEN_PATH,
        headers: { [TOKEN_TTL_HEADER]: String(this.ttlSeconds) },
        timeoutMs,
        maxBodyBytes: 4096,
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      if (signal?.aborted) throw error;
      if (error instanceof UpstreamError) record(error.kind);
      metrics.upstreamTokenRefreshed('failure');
      throw error;
    }
    if (response.status === 200 && response.body.length > 0) {
      record('success', 200);
      const ttl = Number(response.tokenTtl ?? this.ttlSeconds);
      const lifeMs = (Number.isFinite(ttl) && ttl > 0 ? ttl : this.ttlSeconds) * 1000;
      const wasV1 = this.state.mode === 'v1';
      const now = clock.monotonic();
      this.state = { mode: 'v2', token: response.body, renewAt: now + lifeMs * (1 - RENEW_FRACTION), usableUntil: now + lifeMs - Math.min(EXPIRY_SLACK_MS, lifeMs * RENEW_FRACTION) };
      metrics.upstreamTokenRefreshed('success');
      if (wasV1) logger.info({ event: 'upstream_imdsv2_available' }, 'upstream now serves IMDSv2 tokens');
      return { [TOKEN_HEADER]: response.body };
    }
    if (V1_ONLY_STATUSES.has(response.status)) {
      // IMDS answered on purpose: "no IMDSv2 here". A healthy IMDSv1-only upstream, not a failure.
      record('success', response.status);
      if (this.state.mode !== 'v1') {
        logger.warn(
          { event: 'upstream_imdsv1_fallback', status: response.status },
          'upstream refused the IMDSv2 token request; using tokenless IMDSv1 requests',
        );
      }
      this.state = { mode: 'v1', recheckAt: clock.monotonic() + V1_RECHECK_MS };
      metrics.upstreamTokenRefreshed('v1_fallback');
      return {};
    }
    metrics.upstreamTokenRefreshed('failure');
    const error =
      response.status === 429
        ? new UpstreamError('throttled', 'token request throttled (429)', 429)
        : response.status === 200
          ? new UpstreamError('invalid_response', 'token response body empty', 200)
          : new UpstreamError('http_error', `token request answered ${response.status}`, response.status);
    record(error.kind, response.status);
    throw error;
  }
}
