import { Agent } from 'node:http';
import { DEFAULT_LISTEN, formatListen, parseListen } from '../config/proxyConfig.js';
import { httpRequest } from '../upstream/httpRequest.js';
import { UsageError, firstLine } from '../config/usageError.js';
import { parseFlags } from '../config/flags.js';
import { parseExposition } from '../status/exposition.js';
import { STATUS_EXIT, buildStatusView, renderStatusText, type Observation, type StatusView, type UnreachableView } from '../status/view.js';

export const STATUS_HELP = `Usage: imds-cache-proxy status [--endpoint URL] [--watch] [--json]

A running proxy at a glance, from its /metrics and /readyz: each cached role with its key
id's last 4 characters, time to expiry and since the last refresh; upstream requests by
outcome, cache hit ratio and tokens issued over the last second; ready or not, and why.

  --endpoint URL   the proxy (default: IMDS_PROXY_LISTEN as serve reads it, 0.0.0.0 and ::
                   read as loopback; else http://${DEFAULT_LISTEN})
  --watch          redraw every second until Ctrl-C
  --json           one JSON object (with --watch: one per line)

Exit codes: 0 ready, 1 reachable but not ready, 2 bad usage, 3 not reachable.
`;

/** Between the two looks that give rates, and between redraws with --watch. */
const INTERVAL_MS = 1_000;
const REQUEST_TIMEOUT_MS = 2_000;
const MAX_BODY_BYTES = 8 * 1024 * 1024;
/** ANSI: cursor home, clear screen. */
const CLEAR = '\x1b[H\x1b[2J';

export async function runStatusCommand(argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    endpoint: { type: 'string' },
    watch: { type: 'boolean' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(STATUS_HELP);
    return 0;
  }
  const endpoint = values.endpoint !== undefined ? parseEndpoint(values.endpoint) : defaultEndpoint(process.env);
  const print = (view: StatusView | UnreachableView) => {
    const text = values.json ? `${JSON.stringify(view)}\n` : renderStatusText(view);
    process.stdout.write(values.watch && !values.json && process.stdout.isTTY ? CLEAR + text : text);
  };

  // One connection, kept between looks; destroyed at the end so nothing holds the process.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    return values.watch ? await watch(endpoint, agent, print) : await once(endpoint, agent, print);
  } finally {
    agent.destroy();
  }
}

async function once(endpoint: string, agent: Agent, print: (view: StatusView | UnreachableView) => void): Promise<number> {
  const first = await observe(endpoint, agent);
  if ('error' in first) return report(print, endpoint, first.error);
  await sleep(INTERVAL_MS);
  const second = await observe(endpoint, agent);
  if ('error' in second) return report(print, endpoint, second.error);
  const view = buildStatusView(endpoint, first, second);
  print(view);
  return view.exitCode;
}

/** Redraws every second until SIGINT or SIGTERM; exits with the last view's code. */
async function watch(endpoint: string, agent: Agent, print: (view: StatusView | UnreachableView) => void): Promise<number> {
  let stopped = false;
  let wake: (() => void) | undefined;
  const stop = () => {
    stopped = true;
    wake?.();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let previous: Observation | undefined;
  let code: number = STATUS_EXIT.unreachable;
  try {
    while (!stopped) {
      const current = await observe(endpoint, agent);
      if ('error' in current) {
        previous = undefined;
        code = report(print, endpoint, current.error);
      } else if (previous !== undefined) {
        const view = buildStatusView(endpoint, previous, current);
        print(view);
        code = view.exitCode;
      }
      if (!('error' in current)) previous = current;
      if (stopped) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, INTERVAL_MS);
      });
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return code;
}

function report(print: (view: UnreachableView) => void, endpoint: string, error: string): number {
  print({ endpoint, reachable: false, error, exitCode: STATUS_EXIT.unreachable });
  return STATUS_EXIT.unreachable;
}

/** /readyz, then /metrics; a proxy with metrics off answers 404 there and is still a proxy. */
async function observe(endpoint: string, agent: Agent): Promise<Observation | { error: string }> {
  try {
    const readiness = await get(`${endpoint}/readyz`, agent);
    if (readiness.status !== 200 && readiness.status !== 503) {
      return { error: `GET /readyz answered ${readiness.status}, not 200 or 503: is this imds-cache-proxy, and is this host allowed?` };
    }
    const metrics = await get(`${endpoint}/metrics`, agent);
    if (metrics.status !== 200 && metrics.status !== 404) return { error: `GET /metrics answered ${metrics.status}` };
    return {
      readiness: { status: readiness.status, body: readiness.body.slice(0, 200) },
      samples: metrics.status === 200 ? parseExposition(metrics.body) : undefined,
      at: Date.now(),
    };
  } catch (error) {
    return { error: firstLine(error) };
  }
}

/** GET over node:http (the exchange credential-process uses): fetch costs tens of milliseconds to load. */
async function get(url: string, agent: Agent): Promise<{ status: number; body: string }> {
  try {
    return await httpRequest({ method: 'GET', url, timeoutMs: REQUEST_TIMEOUT_MS, maxBodyBytes: MAX_BODY_BYTES, agent });
  } catch (error) {
    throw new Error(`GET ${new URL(url).pathname}: ${firstLine(error)}`);
  }
}

function parseEndpoint(raw: string): string {
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (url === undefined || url.protocol !== 'http:' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.username !== '') {
    throw new UsageError(`--endpoint: expected http://HOST:PORT, got "${raw}"`);
  }
  return url.origin;
}

/**
 * Where `serve` listens when started with the same environment: IMDS_PROXY_LISTEN, with
 * the wildcard addresses read as loopback. A container HEALTHCHECK relies on this.
 */
export function defaultEndpoint(env: NodeJS.ProcessEnv): string {
  const raw = env.IMDS_PROXY_LISTEN;
  const listen = parseListen('IMDS_PROXY_LISTEN', raw !== undefined && raw !== '' ? raw : DEFAULT_LISTEN);
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  return `http://${formatListen({ host, port: listen.port })}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
