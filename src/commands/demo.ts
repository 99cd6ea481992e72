import { existsSync, mkdtempSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { renderReportHtml } from '../loadtest/htmlReport.js';
import { formatTable } from '../loadtest/report.js';
import { describeMachine, loadResult, type LoadResult } from '../loadtest/result.js';
import { spawnServe } from '../child/serveProcess.js';
import { runLoadTest, type LoadOptions } from '../loadtest/runLoad.js';
import type { LoadSummary } from '../loadtest/summary.js';
import { startSimulator, type SimulatorCounters } from '../simulator/simulator.js';
import { UsageError } from '../config/usageError.js';
import { parseFlags } from '../config/flags.js';

export interface DemoSettings {
  /** The simulated IMDS admits this many requests a second and drops the rest. */
  throttleRps: number;
  clients: number;
  durationSeconds: number;
  timeoutMs: number;
}

export const DEMO_PRESETS: Record<'standard' | 'quick', DemoSettings> = {
  standard: { throttleRps: 60, clients: 150, durationSeconds: 8, timeoutMs: 1000 },
  quick: { throttleRps: 30, clients: 40, durationSeconds: 2, timeoutMs: 1000 },
};

export interface DemoRun {
  load: LoadSummary;
  /** The same run with its time series, for the report. */
  result: LoadResult;
  imds: SimulatorCounters;
}

export interface DemoResult {
  settings: DemoSettings;
  direct: DemoRun;
  proxied: DemoRun;
}

const credentialFetchesServed = (c: SimulatorCounters) => c.byRoute.credentials?.ok ?? 0;

/**
 * The seed problem and its fix, side by side, on loopback only: a simulated IMDS throttled
 * like a busy instance's, loaded first directly by fresh SDK-like processes, then through
 * the proxy.
 */
export async function runDemoScenario(settings: DemoSettings, onPhase: (text: string) => void = () => {}): Promise<DemoResult> {
  const sim = await startSimulator({ port: 0, roles: ['demo-role'], throttleRps: settings.throttleRps, throttleMode: 'drop' });
  try {
    const machine = describeMachine();
    const load = async (target: string) => {
      const options: LoadOptions = { target, clients: settings.clients, durationSeconds: settings.durationSeconds, timeoutMs: settings.timeoutMs };
      const run = await runLoadTest(options);
      return { load: run.summary, result: loadResult(options, run, machine) };
    };

    onPhase(`1/2  ${settings.clients} fresh processes straight at the throttled IMDS for ${settings.durationSeconds} s ...`);
    const direct = { ...(await load(sim.url)), imds: sim.counters() };

    // Let the bucket refill and the dropped connections drain, then start clean.
    await new Promise((r) => setTimeout(r, 1500));
    sim.resetCounters();
    const proxy = await spawnServe(sim.url);
    try {
      onPhase(`2/2  the same load through imds-cache-proxy for ${settings.durationSeconds} s ...`);
      const proxied = { ...(await load(proxy.url)), imds: sim.counters() };
      return { settings, direct, proxied };
    } finally {
      await proxy.close();
    }
  } finally {
    await sim.close();
  }
}

export function formatDemoResult({ settings, direct, proxied }: DemoResult): string {
  const row = (label: string, get: (r: DemoRun) => string | number): (string | number)[] => [label, get(direct), get(proxied)];
  const table = formatTable(
    ['', 'direct to IMDS', 'through the proxy'],
    [
      row('credential fetches completed', (r) => r.load.completed),
      row('credential fetches failed', (r) => r.load.failed),
      row('  of which timeouts', (r) => r.load.timeouts),
      row('  of which throttled (429)', (r) => r.load.throttled),
      row('latency p50 (ms)', (r) => r.load.p50_ms),
      row('latency p99 (ms)', (r) => r.load.p99_ms),
      row('requests that reached IMDS', (r) => r.imds.total),
      row('  credentials fetches IMDS served', (r) => credentialFetchesServed(r.imds)),
    ],
  );
  const failRate = (r: DemoRun) => (r.load.fetches > 0 ? (100 * r.load.failed) / r.load.fetches : 0);
  return [
    `Simulated IMDS throttled to ${settings.throttleRps} requests/s (excess dropped, as on EC2); ${settings.clients} concurrent`,
    `fresh SDK-like processes, each: new connection, PUT token, GET role list, GET credentials, ${settings.timeoutMs} ms timeout.`,
    '',
    table,
    '',
    `Direct: ${failRate(direct).toFixed(1)}% of credential fetches failed — "cURL error 28: Connection timed out after ${settings.timeoutMs} milliseconds".`,
    `Through the proxy: ${failRate(proxied).toFixed(1)}% failed, ${proxied.load.completed} fetches served, and IMDS served ${credentialFetchesServed(proxied.imds)} credentials fetch(es).`,
  ].join('\n');
}

/** Both runs in one page, direct first. */
export function renderDemoReport({ settings, direct, proxied }: DemoResult): string {
  const served = (r: DemoRun) => `; IMDS saw ${r.imds.total} requests and served ${credentialFetchesServed(r.imds)} credentials fetch(es)`;
  return renderReportHtml(
    [
      { title: `Direct to IMDS${served(direct)}`, result: direct.result },
      { title: `Through imds-cache-proxy${served(proxied)}`, result: proxied.result },
    ],
    {
      title: 'imds-cache-proxy demo: IMDS throttling, direct and through the proxy',
      intro:
        `A simulated IMDS throttled to ${settings.throttleRps} requests/s (excess dropped, as on EC2), loaded by ${settings.clients} ` +
        `concurrent fresh SDK-like processes for ${settings.durationSeconds} s, first directly, then through the proxy.`,
    },
  );
}

/** `imds-cache-proxy demo` (= `npm run demo`). */
export async function runDemo(argv: string[]): Promise<number> {
  const values = parseFlags(argv, { quick: { type: 'boolean' }, json: { type: 'boolean' }, report: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    process.stdout.write(
      'Usage: imds-cache-proxy demo [--quick] [--json] [--report FILE.html]\n\nIMDS throttling, direct and through the proxy, on loopback only.\n' +
        'Writes an HTML report of both runs (default: a new temporary directory) and prints its path.\n',
    );
    return 0;
  }
  if (values.report !== undefined && (values.report === '' || !existsSync(dirname(resolve(values.report))))) {
    throw new UsageError(`--report: no such directory for "${values.report}"`);
  }
  const result = await runDemoScenario(values.quick ? DEMO_PRESETS.quick : DEMO_PRESETS.standard, (text) => process.stderr.write(`${text}\n`));
  process.stdout.write(`\n${formatDemoResult(result)}\n`);
  const reportFile = values.report ?? join(mkdtempSync(join(tmpdir(), 'imds-cache-proxy-demo-')), 'report.html');
  await writeFile(reportFile, renderDemoReport(result));
  process.stdout.write(`\nReport: ${resolve(reportFile)}\n`);
  if (values.json) {
    const run = (r: DemoRun) => ({ ...r.load, series: r.result.series, imds_requests: r.imds.total, imds_credentials_served: credentialFetchesServed(r.imds) });
    process.stdout.write(`${JSON.stringify({ direct: run(result.direct), proxied: run(result.proxied) })}\n`);
  }
  return 0;
}
