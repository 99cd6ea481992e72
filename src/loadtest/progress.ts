import type { FetchResult } from './credentialFetch.js';

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/**
 * Latencies in buckets 2% wide, so the live p99 costs the same after a million fetches as
 * after ten; the summary's exact percentiles come from LoadRecorder at the end.
 */
class LatencyBuckets {
  private static readonly SMALLEST_MS = 0.1;
  private static readonly GROWTH = 1.02;
  private readonly counts = new Uint32Array(1024);
  private total = 0;

  add(ms: number): void {
    const index = ms <= LatencyBuckets.SMALLEST_MS ? 0 : Math.ceil(Math.log(ms / LatencyBuckets.SMALLEST_MS) / Math.log(LatencyBuckets.GROWTH));
    this.counts[Math.min(index, this.counts.length - 1)]!++;
    this.total++;
  }

  /** The upper edge of the bucket holding the p-th percentile; 0 for no data. */
  percentile(p: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (const [index, count] of this.counts.entries()) {
      seen += count;
      if (seen >= rank) return LatencyBuckets.SMALLEST_MS * LatencyBuckets.GROWTH ** index;
    }
    return 0;
  }
}

/**
 * One status line a second while a load runs, on a terminal only: elapsed/total, the offered
 * rate, completed/s over the last second, failures so far by kind, p99 so far. On a TTY the
 * line redraws in place; anything else (a pipe, a file, CI logs) gets nothing.
 */
export class LiveProgress {
  private readonly latencies = new LatencyBuckets();
  private completed = 0;
  private completedAtLastLine = 0;
  private timeouts = 0;
  private throttled = 0;
  private otherFailures = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = performance.now();
  private drawn = false;

  constructor(
    private readonly stream: ProgressStream,
    private readonly totalSeconds: number,
    /** What is being offered at `elapsedSeconds`, e.g. "120 fetches/s" or "50 clients". */
    private readonly offeredAt: (elapsedSeconds: number) => string,
    private readonly intervalMs = 1000,
  ) {}

  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  record(result: FetchResult): void {
    if (result.failure === undefined) this.completed++;
    else if (result.failure === 'timeout') this.timeouts++;
    else if (result.failure === 'throttled') this.throttled++;
    else this.otherFailures++;
    if (result.failure !== 'not_started') this.latencies.add(result.latencyMs);
  }

  start(): void {
    if (!this.enabled || this.timer !== undefined) return;
    this.timer = setInterval(() => this.draw(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops and clears the line, so the summary starts on a clean one. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }

  /** The status line as it stands. */
  line(): string {
    const elapsed = (performance.now() - this.startedAt) / 1000;
    const perSecond = ((this.completed - this.completedAtLastLine) * 1000) / this.intervalMs;
    this.completedAtLastLine = this.completed;
    const failed = this.timeouts + this.throttled + this.otherFailures;
    const p99 = this.latencies.percentile(99);
    return (
      `${Math.min(elapsed, this.totalSeconds).toFixed(0)}/${this.totalSeconds} s   ${this.offeredAt(elapsed)}   ` +
      `completed ${perSecond.toFixed(0)}/s   failed ${failed} (timeouts ${this.timeouts}, throttled ${this.throttled}, other ${this.otherFailures})   ` +
      `p99 ~${p99 < 10 ? p99.toFixed(1) : p99.toFixed(0)} ms`
    );
  }

  private draw(): void {
    this.stream.write(`\r\x1b[2K${this.line()}`);
    this.drawn = true;
  }
}
