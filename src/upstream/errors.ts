import type { UpstreamOutcome } from '../metrics/recorder.js';

export type UpstreamFailureKind = Exclude<UpstreamOutcome, 'success'>;

/**
 * Every way an upstream request can fail, classified once, here, so that logs, metrics,
 * retries and the cache's stale-if-error policy all agree on what happened.
 * Messages never carry a response body: bodies may hold credentials.
 */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(
    readonly kind: UpstreamFailureKind,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Failures worth another attempt: the next one may well succeed. */
  get retryable(): boolean {
    if (this.kind === 'http_error') return this.status !== undefined && this.status >= 500;
    return this.kind !== 'invalid_response';
  }
}

export function isUpstreamError(error: unknown): error is UpstreamError {
  return error instanceof UpstreamError;
}
