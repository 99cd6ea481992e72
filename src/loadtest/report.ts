import { KNEE_FAILED_PCT } from './knee.js';
import type { LoadResult } from './result.js';
import { LATE_START_MS, type StepResult } from './runLoad.js';
import type { LoadSummary } from './summary.js';

/** Rows of a two-or-more-column table, aligned for a terminal. */
export function formatTable(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('   ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('   '), ...cells.slice(1).map(line)].join('\n');
}

export const SUMMARY_ROWS: [string, (s: LoadSummary) => string | number][] = [
  ['credential fetches completed', (s) => s.completed],
  ['credential fetches failed', (s) => s.failed],
  ['  timeouts', (s) => s.timeouts],
  ['  throttled (429)', (s) => s.throttled],
  ['  other HTTP errors', (s) => s.http_errors],
  ['  connection errors', (s) => s.connection_errors],
  ['  200 but not credentials', (s) => s.bad_documents],
  ['  not started (--max-clients reached)', (s) => s.not_started],
  ['HTTP requests sent', (s) => s.requests],
  ['latency p50 (ms)', (s) => s.p50_ms],
  ['latency p90 (ms)', (s) => s.p90_ms],
  ['latency p99 (ms)', (s) => s.p99_ms],
  ['latency max (ms)', (s) => s.max_ms],
  ['completed fetches per second', (s) => s.rate_per_s],
];

export function formatSummary(s: LoadSummary): string {
  return formatTable(['', 'value'], SUMMARY_ROWS.map(([label, get]) => [label, get(s)]));
}

/** The per-step table of an open-loop run or a ramp. */
export function formatSteps(steps: StepResult[]): string {
  return formatTable(
    ['offered/s', 'fetches', 'completed/s', 'failed %', 'timeouts', 'throttled', 'other', 'not started', 'late starts', 'p50 ms', 'p99 ms'],
    steps.map((s) => [
      s.offered_per_s,
      s.fetches,
      s.rate_per_s,
      s.failed_pct,
      s.timeouts,
      s.throttled,
      s.http_errors + s.connection_errors + s.bad_documents,
      s.not_started,
      s.late_starts,
      s.p50_ms,
      s.p99_ms,
    ]),
  );
}

/** What the knee says, in words. */
export function describeKnee(result: LoadResult): string {
  const steps = result.steps ?? [];
  const knee = result.knee_fetches_per_s ?? null;
  const sustained = result.sustained_fetches_per_s ?? null;
  if (knee === null) return `knee: below the ramp (every step had ${KNEE_FAILED_PCT}% or more of its fetches failed); IMDS sustained ${sustained ?? 0} completed fetches/s`;
  const beyond = sustained === null ? 'no step offered more' : `beyond it IMDS sustained ${sustained} completed fetches/s`;
  const top = steps.at(-1)?.offered_per_s;
  const note = sustained === null && knee === top ? ' (not reached: the throttle lies at or above the ramp\'s top)' : '';
  return `knee: ${knee} fetches/s, the highest offered rate with fewer than ${KNEE_FAILED_PCT}% of fetches failed${note}; ${beyond}`;
}

/** The whole human-readable result: heading, summary, steps, knee. */
export function formatLoadResult(result: LoadResult): string {
  const s = result.settings;
  const offered =
    result.mode === 'closed'
      ? `${s.clients} fresh-process clients (closed loop)`
      : result.mode === 'open'
        ? `${s.rate_per_s} fetches/s (open loop, at most ${s.max_clients} in flight)`
        : `a ramp from ${s.ramp_from_per_s} to ${s.ramp_to_per_s} fetches/s in ${s.steps} steps (open loop, at most ${s.max_clients} in flight)`;
  const lasted = result.interrupted
    ? `${result.duration_s} s (interrupted)`
    : result.duration_s > Number(s.duration_s) + 0.05
      ? `${s.duration_s} s (${result.duration_s} s until the last fetch ended)`
      : `${result.duration_s} s`;
  const parts = [
    `${offered} against ${s.target} for ${lasted}`,
    '',
    formatSummary(result),
  ];
  if (result.steps !== undefined && result.steps.length > 0) parts.push('', formatSteps(result.steps));
  if (result.mode === 'ramp') parts.push('', describeKnee(result));
  if ((result.late_starts ?? 0) > 0) {
    parts.push(
      '',
      `warning: the generator started ${result.late_starts} fetches over ${LATE_START_MS} ms late (this machine is busy): their latency counts ` +
        'from when they were due, but late fetches start in a bunch, and a throttle punishes bunches',
    );
  }
  return parts.join('\n');
}
