import { parseArgs } from 'node:util';
import { firstLine } from '../config.js';
import { isLoopbackHost } from '../server/sourceFilter.js';
import { UsageError } from '../usageError.js';
import { formatSummary } from './report.js';
import { LOAD_LIMITS, runLoad, type LoadOptions } from './runLoad.js';

export const LOADTEST_HELP = `Usage: imds-cache-proxy loadtest --target URL [options]

Simulates fresh short-lived SDK processes: each opens a new connection, PUTs a token,
GETs the role list and the credentials, with the SDKs' timeout.

  --target URL         the IMDS or proxy to load, e.g. http://127.0.0.1:8169 (required)
  --clients N          concurrent processes (default 50, at most ${LOAD_LIMITS.clients})
  --duration S         seconds (default 10, at most ${LOAD_LIMITS.durationSeconds})
  --requests N         stop after N credential fetches
  --timeout-ms MS      per request (default 1000, as the SDKs)
  --json               print one JSON object on the last line
  --allow-remote-target  allow a target that is not loopback (never point this at IMDS)
`;

export function parseLoadtestArgs(argv: string[]): { options: LoadOptions; json: boolean; help: boolean } {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        target: { type: 'string' },
        clients: { type: 'string' },
        duration: { type: 'string' },
        requests: { type: 'string' },
        'timeout-ms': { type: 'string' },
        json: { type: 'boolean' },
        'allow-remote-target': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (error) {
    throw new UsageError(firstLine(error));
  }
  const whole = (flag: string, raw: string | undefined, fallback: number, min: number, max: number): number => {
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      throw new UsageError(`--${flag}: expected a whole number from ${min} to ${max}, got "${raw}"`);
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
  const requests = values.requests === undefined ? undefined : whole('requests', values.requests, 0, 1, 100_000_000);
  return {
    options: {
      target: url.origin,
      clients: whole('clients', values.clients, 50, 1, LOAD_LIMITS.clients),
      durationSeconds: whole('duration', values.duration, 10, 1, LOAD_LIMITS.durationSeconds),
      timeoutMs: whole('timeout-ms', values['timeout-ms'], 1000, 1, LOAD_LIMITS.timeoutMs),
      ...(requests !== undefined ? { maxFetches: requests } : {}),
    },
    json: values.json ?? false,
    help,
  };
}

/** `imds-cache-proxy loadtest`. */
export async function runLoadtestCommand(argv: string[]): Promise<number> {
  const { options, json, help } = parseLoadtestArgs(argv);
  if (help) {
    process.stdout.write(LOADTEST_HELP);
    return 0;
  }
  const summary = await runLoad(options);
  process.stdout.write(
    `${options.clients} fresh-process clients against ${options.target} for ${summary.duration_s} s\n\n${formatSummary(summary)}\n`,
  );
  if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  return 0;
}
