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
