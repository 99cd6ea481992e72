import { fetchCredentialsLikeAFreshProcess, type FetchResult } from './credentialFetch.js';
import { LoadRecorder, round, type LoadSummary } from './summary.js';

/** Open loop: fresh processes arrive on a schedule, whatever the earlier ones are doing. */
export interface Arrivals {
  /** Offered credential fetches per second, one rate per equal step of the duration. */
  ratesPerS: number[];
  /** Fetches in flight at most; an arrival beyond it is counted as `not_started`. */
  maxClients: number;
}

export interface LoadOptions {
  /** Base URL of an IMDS (or the proxy), e.g. http://127.0.0.1:8169. */
  target: string;
  /** Closed loop: this many simulated processes, each starting its next fetch when one ends. */
  clients: number;
  /** Open loop instead of `clients` when given. */
  arrivals?: Arrivals;
  /** Whole or fractional seconds. */
  durationSeconds: number;
  /** Stop after this many credential fetches in all, if sooner. */
  maxFetches?: number;
  timeoutMs: number;
  /** Stops new fetches (Ctrl-C); those in flight finish, each bounded by its timeouts. */
  signal?: AbortSignal;
  /** Every fetch's result as it ends, for live progress. */
  onResult?: (result: FetchResult) => void;
}

/** Failure counts and percentiles a time series carries for each second. */
const SERIES_FIELDS = [
  'completed', 'failed', 'timeouts', 'throttled', 'http_errors', 'connection_errors', 'bad_documents', 'not_started', 'p50_ms', 'p90_ms', 'p99_ms',
] as const satisfies readonly (keyof LoadSummary)[];

/** One second of the run, by when fetches ended; `offered` counts fetches due to start in it. */
export type SeriesPoint = Pick<LoadSummary, (typeof SERIES_FIELDS)[number]> & {
  t_s: number;
  /** Length of this second that the run lasted (the last one is partial). */
  span_s: number;
  offered: number;
};

/** One step of an open-loop run, by when fetches were due: `rate_per_s` is completed per second. */
export interface StepResult extends LoadSummary {
  offered_per_s: number;
  /** Failed fetches in percent of the step's fetches. */
  failed_pct: number;
  /** Arrivals the generator started over LATE_START_MS after they were due. */
  late_starts: number;
}

export interface LoadRun {
  summary: LoadSummary;
  /** Stopped by the signal before the duration was spent. */
  interrupted: boolean;
  series: SeriesPoint[];
  /** Open loop only: one row per step that began. */
  steps: StepResult[];
  /** Open loop: arrivals started over LATE_START_MS late, the generator's own lag. */
  lateStarts: number;
}

/**
 * An open-loop arrival started this much after it was due means the generator fell behind
 * (a busy machine): its latency still counts from the due time, but late arrivals start in a
 * bunch, and a bunch is what a throttle punishes, so the run says how many there were.
 */
export const LATE_START_MS = 100;

/** Hard ceilings whatever the caller asks: every load loop ends by itself. */
export const LOAD_LIMITS = { clients: 10_000, durationSeconds: 600, timeoutMs: 60_000, ratePerS: 20_000 };

/** Closed-loop summary only: what the benchmark and older callers need. */
export async function runLoad(options: LoadOptions): Promise<LoadSummary> {
  return (await runLoadTest(options)).summary;
}

/**
 * Runs simulated fresh processes until the duration (or the fetch budget) is spent or the
 * signal stops it: closed loop (`clients` back to back) or open loop (`arrivals`). Fetches in
 * flight at the end finish (each is bounded by its timeouts) and are counted.
 */
export async function runLoadTest(options: LoadOptions): Promise<LoadRun> {
  const durationMs = Math.min(options.durationSeconds, LOAD_LIMITS.durationSeconds) * 1000;
  const timeoutMs = Math.min(options.timeoutMs, LOAD_LIMITS.timeoutMs);
  const maxFetches = options.maxFetches ?? Number.POSITIVE_INFINITY;
  const { signal } = options;
  const total = new LoadRecorder();
  const bySecond: LoadRecorder[] = [];
  const offeredBySecond: number[] = [];
  const rates = options.arrivals?.ratesPerS.map((r) => Math.min(r, LOAD_LIMITS.ratePerS)) ?? [];
  const bySteps = rates.map(() => new LoadRecorder());
  const lateBySteps = rates.map(() => 0);
  const stepMs = rates.length > 0 ? durationMs / rates.length : durationMs;
  const started = performance.now();
  const endsAt = started + durationMs;
  let begun = 0;

  const offer = (dueAt: number) => {
    begun++;
    const second = Math.floor((dueAt - started) / 1000);
    offeredBySecond[second] = (offeredBySecond[second] ?? 0) + 1;
  };
  const record = (result: FetchResult, step: number | undefined) => {
    total.record(result);
    const second = Math.floor((performance.now() - started) / 1000);
    (bySecond[second] ??= new LoadRecorder()).record(result);
    if (step !== undefined) bySteps[step]!.record(result);
    options.onResult?.(result);
  };
  const fetch = (dueAt: number) => fetchCredentialsLikeAFreshProcess(options.target, timeoutMs, dueAt);

  // When new fetches stopped: the end of the duration, Ctrl-C, or the fetch budget.
  let stoppedAt = endsAt;
  let abortedAt: number | undefined;
  const onAbort = () => (abortedAt = performance.now());
  signal?.addEventListener('abort', onAbort, { once: true });
  let stepsBegun = 0;
  if (options.arrivals === undefined) {
    const client = async () => {
      while (performance.now() < endsAt && begun < maxFetches && !signal?.aborted) {
        const now = performance.now();
        offer(now);
        record(await fetch(now), undefined);
      }
      stoppedAt = Math.min(stoppedAt, performance.now());
    };
    await Promise.all(Array.from({ length: Math.min(options.clients, LOAD_LIMITS.clients) }, client));
  } else {
    const maxClients = Math.min(options.arrivals.maxClients, LOAD_LIMITS.clients);
    const inFlight = new Set<Promise<void>>();
    let yieldedAt = performance.now();
    schedule: for (const [step, rate] of rates.entries()) {
      const stepStart = started + step * stepMs;
      for (let i = 0; ; i++) {
        // Arrival times come from the schedule alone, never from how earlier fetches went.
        const dueAt = stepStart + (i * 1000) / rate;
        if (dueAt >= stepStart + stepMs) break;
        if (begun >= maxFetches) break schedule;
        if (dueAt > performance.now()) {
          await sleepUntil(dueAt, signal);
          yieldedAt = performance.now();
        } else if (performance.now() - yieldedAt > 10) {
          // Behind schedule: still let the fetches in flight (and Ctrl-C) run now and then.
          await new Promise((resolve) => setImmediate(resolve));
          yieldedAt = performance.now();
        }
        if (signal?.aborted) break schedule;
        offer(dueAt);
        stepsBegun = step + 1;
        if (performance.now() - dueAt > LATE_START_MS) lateBySteps[step]!++;
        if (inFlight.size >= maxClients) {
          record({ requests: 0, failure: 'not_started', latencyMs: 0 }, step);
          continue;
        }
        const running = fetch(dueAt).then((result) => {
          inFlight.delete(running);
          record(result, step);
        });
        inFlight.add(running);
      }
    }
    if (signal?.aborted || begun >= maxFetches) stoppedAt = Math.min(endsAt, performance.now());
    await Promise.all(inFlight);
  }
  signal?.removeEventListener('abort', onAbort);
  const interrupted = abortedAt !== undefined && abortedAt < endsAt;
  const elapsedMs = performance.now() - started;

  const seriesLength = Math.max(bySecond.length, offeredBySecond.length);
  const series = Array.from({ length: seriesLength }, (_, second) => {
    const span = Math.min(1, elapsedMs / 1000 - second);
    const s = (bySecond[second] ?? new LoadRecorder()).summarize(span);
    const point = { t_s: second, span_s: round(span), offered: offeredBySecond[second] ?? 0 } as SeriesPoint;
    for (const field of SERIES_FIELDS) point[field] = s[field];
    return point;
  });
  const steps = rates.slice(0, stepsBegun).map((rate, step) => {
    const lasted = Math.min(stepMs, stoppedAt - started - step * stepMs) / 1000;
    const s = bySteps[step]!.summarize(lasted);
    const failedPct = round(s.fetches > 0 ? (100 * s.failed) / s.fetches : 0);
    return { offered_per_s: round(rate), ...s, failed_pct: failedPct, late_starts: lateBySteps[step]! };
  });
  const lateStarts = lateBySteps.reduce((a, b) => a + b, 0);
  return { summary: total.summarize(elapsedMs / 1000), interrupted, series, steps, lateStarts };
}

/** Resolves at `at` (performance.now() time) or as soon as the signal aborts. */
function sleepUntil(at: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, at - performance.now()));
    signal?.addEventListener('abort', done, { once: true });
  });
}
