import { FETCH_FAILURES, type FetchFailure, type FetchResult } from './credentialFetch.js';

export interface LoadSummary {
  /** HTTP requests sent. */
  requests: number;
  /** Credential fetches attempted (each is up to three requests). */
  fetches: number;
  completed: number;
  failed: number;
  timeouts: number;
  throttled: number;
  http_errors: number;
  connection_errors: number;
  /** 200s whose body was not credentials (error document, malformed JSON). */
  bad_documents: number;
  /** Open loop: arrivals that found --max-clients fetches in flight and never started. */
  not_started: number;
  /**
   * Latency of whole credential fetches that started, failed ones included (a timeout costs
   * the client too), from their intended start.
   */
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  duration_s: number;
  /** Completed credential fetches per second. */
  rate_per_s: number;
}

/** Accumulates fetch results; exact counts, percentiles from every recorded latency. */
export class LoadRecorder {
  private latencies = new Float64Array(64);
  private size = 0;
  requests = 0;
  private readonly failures = Object.fromEntries(FETCH_FAILURES.map((f) => [f, 0])) as Record<FetchFailure, number>;

  record(result: FetchResult): void {
    this.requests += result.requests;
    if (result.failure !== undefined) this.failures[result.failure]++;
    // A fetch that never started has no latency to speak of.
    if (result.failure === 'not_started') return;
    if (this.size === this.latencies.length) {
      const grown = new Float64Array(this.latencies.length * 2);
      grown.set(this.latencies);
      this.latencies = grown;
    }
    this.latencies[this.size++] = result.latencyMs;
  }

  summarize(durationSeconds: number): LoadSummary {
    const sorted = this.latencies.slice(0, this.size).sort();
    const failed = Object.values(this.failures).reduce((a, b) => a + b, 0);
    const fetches = this.size + this.failures.not_started;
    const completed = fetches - failed;
    return {
      requests: this.requests,
      fetches,
      completed,
      failed,
      timeouts: this.failures.timeout,
      throttled: this.failures.throttled,
      http_errors: this.failures.http_error,
      connection_errors: this.failures.connection_error,
      bad_documents: this.failures.bad_document,
      not_started: this.failures.not_started,
      p50_ms: round(percentile(sorted, 50)),
      p90_ms: round(percentile(sorted, 90)),
      p99_ms: round(percentile(sorted, 99)),
      max_ms: round(sorted.length > 0 ? sorted[sorted.length - 1]! : 0),
      duration_s: round(durationSeconds),
      rate_per_s: round(durationSeconds > 0 ? completed / durationSeconds : 0),
    };
  }
}

/** Nearest-rank percentile of an ascending array; 0 for no data. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export function round(n: number): number {
  return Math.round(n * 10) / 10;
}
