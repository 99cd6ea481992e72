import { isLoopbackHost } from '../server/sourceFilter.js';
import { firstLine, UsageError } from '../config/usageError.js';
import { parseFlags, parseWholeNumber } from '../config/flags.js';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { renderReportHtml } from '../loadtest/htmlReport.js';
import { rampRates } from '../loadtest/knee.js';
import { LiveProgress, type ProgressStream } from '../loadtest/progress.js';
import { formatLoadResult } from '../loadtest/report.js';
import { loadResult } from '../loadtest/result.js';
import { LOAD_LIMITS, runLoadTest, type Arrivals, type LoadOptions } from '../loadtest/runLoad.js';
import { round } from '../loadtest/summary.js';

export const LOADTEST_HELP = `Usage: imds-cache-proxy loadtest --target URL [options]

Simulates fresh short-lived SDK processes: each opens a new connection, PUTs a token,
GETs the role list and the credentials, with the SDKs' timeout.

  --target URL         the IMDS or proxy to load, e.g. http://127.0.0.1:8169 (required)
One of three shapes of load:
  --clients N          closed loop: N processes, each starting anew when its fetch ends
                       (default 50, at most ${LOAD_LIMITS.clients})
  --rate N             open loop: N new processes a second, whatever the earlier ones
                       are doing (at most ${LOAD_LIMITS.ratePerS}); latency counts from when each was due
  --ramp FROM:TO       open loop, the rate in equal steps from FROM to TO over --duration;
                       reports the knee: the highest rate with under 1% of fetches failed
  --steps N            steps of the ramp (default 10)
  --max-clients N      open loop: fetches in flight at most (default 1000); an arrival
                       beyond it is counted as failed, "not started"
And:
  --duration S         seconds, decimals allowed (default 10, at most ${LOAD_LIMITS.durationSeconds})
  --requests N         stop after N credential fetches
  --timeout-ms MS      per request (default 1000, as the SDKs)
  --json               stdout carries one JSON object alone (summary, time series, steps,
                       knee); the table goes to stderr
  --report FILE.html   write a self-contained HTML report with charts
  --allow-remote-target  allow a target that is not loopback (never point this at IMDS)

A live status line appears once a second on a terminal (stderr with --json). Ctrl-C stops
the load, lets fetches in flight finish and prints the summary of what ran (exit code 130);
a second Ctrl-C quits at once.
`;

export interface LoadtestArgs {
  options: LoadOptions;
  json: boolean;
  help: boolean;
  /** --report: where to write the HTML report. */
  reportFile?: string;
}

export function parseLoadtestArgs(argv: string[]): LoadtestArgs {
  const values = parseFlags(argv, {
    target: { type: 'string' },
    clients: { type: 'string' },
    rate: { type: 'string' },
    ramp: { type: 'string' },
    steps: { type: 'string' },
    'max-clients': { type: 'string' },
    duration: { type: 'string' },
    requests: { type: 'string' },
    'timeout-ms': { type: 'string' },
    json: { type: 'boolean' },
    report: { type: 'string' },
    'allow-remote-target': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  const whole = (flag: string, raw: string | undefined, fallback: number, min: number, max: number): number =>
    raw === undefined ? fallback : parseWholeNumber(`--${flag}`, raw, min, max);
  const positive = (flag: string, raw: string, max: number, shown = raw): number => {
    if (!/^\d+(\.\d+)?$/.test(raw) || !(Number(raw) > 0) || Number(raw) > max) {
      throw new UsageError(`--${flag}: expected a number above 0 and at most ${max}, got "${shown}"`);
    }
    return Number(raw);
  };
  const help = values.help ?? false;
  if (help) return { options: { target: '', clients: 0, durationSeconds: 0, timeoutMs: 0 }, json: false, help };
  if (values.target === undefined) throw new UsageError('--target: required (e.g. --target http://127.0.0.1:8169)');
  let url: URL;
  try {
    url = new URL(values.target);
  } catch {
    throw new UsageError(`--target: expected an http:// URL, got "${values.target}"`);
  }
  if (url.protocol !== 'http:') throw new UsageError(`--target: expected an http:// URL, got "${values.target}"`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!isLoopbackHost(host) && !values['allow-remote-target']) {
    throw new UsageError(
      `--target: "${values.target}" is not a loopback address; load tests belong on servers you run here (add --allow-remote-target to insist, never against real IMDS)`,
    );
  }

  if (values.rate !== undefined && values.ramp !== undefined) throw new UsageError('--ramp: give either --rate or --ramp, not both');
  const openLoop = values.rate !== undefined || values.ramp !== undefined;
  if (openLoop && values.clients !== undefined) {
    throw new UsageError(`--clients: sets the closed loop; --${values.rate !== undefined ? 'rate' : 'ramp'} sets an open one (use --max-clients to bound it)`);
  }
  if (!openLoop && values['max-clients'] !== undefined) throw new UsageError('--max-clients: bounds an open loop; give --rate or --ramp too');
  if (values.ramp === undefined && values.steps !== undefined) throw new UsageError('--steps: goes with --ramp');

  const durationSeconds = values.duration === undefined ? 10 : positive('duration', values.duration, LOAD_LIMITS.durationSeconds);
  let arrivals: Arrivals | undefined;
  if (openLoop) {
    let rates: number[];
    if (values.rate !== undefined) {
      rates = [positive('rate', values.rate, LOAD_LIMITS.ratePerS)];
    } else {
      const match = /^([^:]+):([^:]+)$/.exec(values.ramp!);
      if (match === null) throw new UsageError(`--ramp: expected FROM:TO fetches per second, e.g. 10:200, got "${values.ramp}"`);
      const from = positive('ramp', match[1]!, LOAD_LIMITS.ratePerS, values.ramp);
      const to = positive('ramp', match[2]!, LOAD_LIMITS.ratePerS, values.ramp);
      if (!(from < to)) throw new UsageError(`--ramp: FROM must be below TO, got "${values.ramp}"`);
      const steps = whole('steps', values.steps, 10, 2, 1000);
      if ((durationSeconds * 1000) / steps < 100) {
        throw new UsageError(`--steps: ${steps} steps over ${durationSeconds} s leave under 0.1 s a step, got "${steps}"`);
      }
      rates = rampRates(from, to, steps);
    }
    arrivals = { ratesPerS: rates, maxClients: whole('max-clients', values['max-clients'], 1000, 1, LOAD_LIMITS.clients) };
  }

  const reportFile = values.report;
  if (reportFile !== undefined) {
    if (reportFile === '' || reportFile.endsWith('/')) throw new UsageError(`--report: expected a file name, got "${reportFile}"`);
    const dir = dirname(resolve(reportFile));
    if (!existsSync(dir)) throw new UsageError(`--report: no such directory "${dir}"`);
  }
  const requests = values.requests === undefined ? undefined : whole('requests', values.requests, 0, 1, 100_000_000);
  return {
    options: {
      target: url.origin,
      clients: openLoop ? 0 : whole('clients', values.clients, 50, 1, LOAD_LIMITS.clients),
      ...(arrivals !== undefined ? { arrivals } : {}),
      durationSeconds,
      timeoutMs: whole('timeout-ms', values['timeout-ms'], 1000, 1, LOAD_LIMITS.timeoutMs),
      ...(requests !== undefined ? { maxFetches: requests } : {}),
    },
    json: values.json ?? false,
    help,
    ...(reportFile !== undefined ? { reportFile } : {}),
  };
}

/** The offered load at a moment of the run, for the status line. */
function offeredAt(options: LoadOptions): (elapsedSeconds: number) => string {
  const rates = options.arrivals?.ratesPerS;
  if (rates === undefined) return () => `${options.clients} clients`;
  const stepSeconds = options.durationSeconds / rates.length;
  return (elapsed) => `rate ${round(rates[Math.min(rates.length - 1, Math.floor(elapsed / stepSeconds))]!)}/s`;
}

/** `imds-cache-proxy loadtest`. */
export async function runLoadtestCommand(argv: string[], io: { stdout: ProgressStream; stderr: ProgressStream } = process): Promise<number> {
  const { options, json, help, reportFile } = parseLoadtestArgs(argv);
  if (help) {
    io.stdout.write(LOADTEST_HELP);
    return 0;
  }
  // With --json, stdout is for the JSON alone: people pipe it into jq.
  const human = json ? io.stderr : io.stdout;
  const progress = new LiveProgress(human, options.durationSeconds, offeredAt(options));
  const stop = new AbortController();
  const onInterrupt = () => {
    // Once: a second Ctrl-C finds no handler and ends the process at once.
    process.off('SIGINT', onInterrupt);
    progress.stop();
    io.stderr.write('\nstopping: letting fetches in flight finish (Ctrl-C again to quit now)\n');
    stop.abort();
  };
  process.on('SIGINT', onInterrupt);
  let run;
  try {
    progress.start();
    run = await runLoadTest({ ...options, signal: stop.signal, onResult: (r) => progress.record(r) });
  } finally {
    progress.stop();
    process.off('SIGINT', onInterrupt);
  }
  const result = loadResult(options, run);
  human.write(`${formatLoadResult(result)}\n`);
  let reportFailed = false;
  if (reportFile !== undefined) {
    try {
      await writeFile(reportFile, renderReportHtml([{ title: `loadtest against ${options.target}`, result }]));
      human.write(`report: ${resolve(reportFile)}\n`);
    } catch (error) {
      // The run's figures are still worth having: say so, print them, exit non-zero.
      io.stderr.write(`imds-cache-proxy: --report: could not write "${reportFile}": ${firstLine(error)}\n`);
      reportFailed = true;
    }
  }
  if (json) io.stdout.write(`${JSON.stringify(result)}\n`);
  if (reportFailed) return 1;
  return run.interrupted ? 130 : 0;
}
