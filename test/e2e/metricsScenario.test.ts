import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { defaultProxyConfig, type ProxyConfig } from '../../src/config/proxyConfig.js';
import { silentLogger } from '../../src/runtime/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { runCli, type CliRun } from '../support/cliProcess.js';
import { sampleValue } from '../support/exposition.js';
import { freeLoopbackPort } from '../support/ports.js';

/**
 * The observability issue's end-to-end checks: a scripted scenario (start, hits, upstream
 * timeouts with stale serving, recovery, lapsed credentials) scraped over HTTP after every
 * step, each counter asserted to move by exactly what the step did; /metrics on the IMDS
 * listener, on --metrics-listen, and gone with --metrics off; and `promtool check metrics`
 * on a real scrape of a real `serve` process. Every server is one this file starts on
 * loopback. Credentials are compared by AccessKeyId and Expiration only, never printed.
 */

const ROLE = 'scenario-role';
const LIST = '/latest/meta-data/iam/security-credentials/';
const CREDS = `${LIST}${ROLE}`;
const TOKEN_TTL_SECONDS = '21600';

const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p));
const SKIP_PROMTOOL = "promtool not installed here; CI installs it with Debian's prometheus package (apt-get install prometheus)";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  // In order: proxies (put first) before the simulators they read from.
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function simulator(options: Parameters<typeof startSimulator>[0] = {}): Promise<RunningSimulator> {
  const sim = await startSimulator({ port: 0, roles: [ROLE], ...options });
  cleanups.push(() => sim.close());
  return sim;
}

async function proxyFor(sim: RunningSimulator, config: Partial<ProxyConfig> = {}, clock?: ManualClock): Promise<RunningProxy> {
  const proxy = await startProxy(
    {
      ...defaultProxyConfig(),
      listen: { host: '127.0.0.1', port: 0 },
      upstream: sim.url,
      upstreamTimeoutMs: 200,
      upstreamAttempts: 1,
      ...config,
    },
    { logger: silentLogger, ...(clock ? { clock } : {}) },
  );
  cleanups.unshift(() => proxy.close());
  return proxy;
}

async function clientToken(url: string): Promise<string> {
  const res = await fetch(`${url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': TOKEN_TTL_SECONDS } });
  expect(res.status).toBe(200);
  return res.text();
}

interface Answer {
  status: number;
  accessKeyId?: string;
  /** Epoch ms parsed from the document's Expiration. */
  expiration?: number;
}

/** GETs the role's credentials; keeps only AccessKeyId and Expiration, never the secrets. */
async function credentialsVia(url: string, token: string): Promise<Answer> {
  const res = await fetch(`${url}${CREDS}`, { headers: { 'x-aws-ec2-metadata-token': token } });
  const body = await res.text();
  if (res.status !== 200) return { status: res.status };
  const doc = JSON.parse(body) as { AccessKeyId: string; Expiration: string };
  return { status: 200, accessKeyId: doc.AccessKeyId, expiration: Date.parse(doc.Expiration) };
}

async function scrape(metricsUrl: string): Promise<string> {
  const res = await fetch(metricsUrl);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** Every counter the scenario watches, by a readable key; all of them are compared at every step. */
const WATCHED: Record<string, [string, Record<string, string>]> = {
  'cache hit': ['imds_proxy_cache_requests_total', { cache: 'credentials', result: 'hit' }],
  'cache miss': ['imds_proxy_cache_requests_total', { cache: 'credentials', result: 'miss' }],
  'cache stale': ['imds_proxy_cache_requests_total', { cache: 'credentials', result: 'stale' }],
  'cache coalesced': ['imds_proxy_cache_requests_total', { cache: 'credentials', result: 'coalesced' }],
  ...Object.fromEntries(
    ['credentials_list', 'credentials'].flatMap((route) =>
      ['success', 'timeout', 'throttled', 'http_error', 'network_error', 'invalid_response'].map((outcome) => [
        `upstream ${route} ${outcome}`,
        ['imds_proxy_upstream_requests_total', { route, outcome }],
      ]),
    ),
  ),
  'refresh success': ['imds_proxy_credentials_refreshes_total', { role: ROLE, outcome: 'success' }],
  'refresh unchanged': ['imds_proxy_credentials_refreshes_total', { role: ROLE, outcome: 'unchanged' }],
  'refresh failure': ['imds_proxy_credentials_refreshes_total', { role: ROLE, outcome: 'failure' }],
  'refresh failure (role unknown)': ['imds_proxy_credentials_refreshes_total', { role: 'unknown', outcome: 'failure' }],
  'client GET credentials 200': ['imds_proxy_requests_total', { route: 'credentials', method: 'GET', status: '200' }],
  'client GET credentials 503': ['imds_proxy_requests_total', { route: 'credentials', method: 'GET', status: '503' }],
  'client PUT token 200': ['imds_proxy_requests_total', { route: 'token', method: 'PUT', status: '200' }],
  'tokens issued': ['imds_proxy_tokens_issued_total', {}],
  'upstream token success': ['imds_proxy_upstream_token_refreshes_total', { outcome: 'success' }],
  'upstream token failure': ['imds_proxy_upstream_token_refreshes_total', { outcome: 'failure' }],
};

function read(exposition: string): Record<string, number> {
  return Object.fromEntries(Object.entries(WATCHED).map(([key, [name, labels]]) => [key, sampleValue(exposition, name, labels)]));
}

/** What every watched counter moved by; keys not in `expected` must not have moved at all. */
function expectMoved(before: string, after: string, expected: Record<string, number>, step: string): void {
  for (const key of Object.keys(expected)) expect(Object.keys(WATCHED), `${step}: unknown key`).toContain(key);
  const b = read(before);
  const a = read(after);
  const moved = Object.fromEntries(Object.keys(WATCHED).map((key) => [key, a[key]! - b[key]!]));
  const want = Object.fromEntries(Object.keys(WATCHED).map((key) => [key, expected[key] ?? 0]));
  expect(moved, step).toEqual(want);
}

const expirationGauge = (text: string) => sampleValue(text, 'imds_proxy_credentials_expiration_timestamp_seconds', { role: ROLE });
const lastRefreshGauge = (text: string) => sampleValue(text, 'imds_proxy_credentials_last_refresh_timestamp_seconds', { role: ROLE });

describe('metrics over a scripted scenario', () => {
  it('each counter moves exactly as each step says: start, hits, upstream timeouts with stale serving, recovery, a lapse and its miss', async () => {
    // One manual clock for the simulator and the proxy: refreshes happen only when this test
    // moves the clock and asks for one. The background refresher, after the start-up fetch,
    // sleeps its longest (60 s of real time), far beyond this test.
    // Off the whole second, so a gauge that rounded its timestamps would show.
    const clock = new ManualClock(Date.UTC(2026, 10, 28, 12, 0, 0) + 37_123);
    const sim = await simulator({ clock });
    const proxy = await proxyFor(sim, {}, clock);
    const cache = proxy.services.credentials;
    const metricsUrl = `${proxy.url}/metrics`;
    /** Moves the clock to the next scheduled refresh and runs it to the end. */
    const refreshNow = async () => {
      clock.set(Math.max(clock.now(), cache.refreshDueAt));
      await cache.refreshIfDue();
    };

    // Start: the proxy fetches at once, before any client asks (its warm-up is in flight
    // when startProxy returns; refreshIfDue hands back that same cycle).
    await cache.refreshIfDue();
    expect(proxy.isReady()).toBe(true);
    const served = sim.currentCredentials(ROLE);
    expect(served).toBeDefined();
    const atStart = await scrape(metricsUrl);
    expectMoved('', atStart, {
      'upstream credentials_list success': 1,
      'upstream credentials success': 1,
      'upstream token success': 1,
      'refresh success': 1,
    }, 'start-up fetch');
    expect(expirationGauge(atStart)).toBe(served!.expiration / 1000);
    expect(lastRefreshGauge(atStart)).toBe(clock.now() / 1000);

    // The first client: the start-up fetch took the cold miss, so the first GET is a hit
    // and goes nowhere near IMDS.
    const token = await clientToken(proxy.url);
    const first = await credentialsVia(proxy.url, token);
    expect(first.status).toBe(200);
    expect(first.accessKeyId).toBe(served!.accessKeyId);
    expect(first.expiration).toBe(served!.expiration);
    const afterFirst = await scrape(metricsUrl);
    expectMoved(atStart, afterFirst, { 'tokens issued': 1, 'client PUT token 200': 1, 'cache hit': 1, 'client GET credentials 200': 1 }, 'first client');
    // The gauge holds the Expiration the client was served, in seconds.
    expect(expirationGauge(afterFirst)).toBe(first.expiration! / 1000);

    // Hits: N clients' worth of GETs on one token.
    const N = 7;
    for (let i = 0; i < N; i++) expect((await credentialsVia(proxy.url, token)).accessKeyId).toBe(served!.accessKeyId);
    const afterHits = await scrape(metricsUrl);
    expectMoved(afterFirst, afterHits, { 'cache hit': N, 'client GET credentials 200': N }, 'hits');

    // IMDS stops answering in time (latency 5x the 200 ms timeout): the refresh's first request,
    // the role listing, times out. A failed listing is a failed refresh of the role already
    // served (docs/metrics.md, the role label).
    sim.setFaults({ latencyMs: 1_000 });
    await refreshNow();
    expect(cache.failuresInARow).toBe(1);
    const afterListTimeout = await scrape(metricsUrl);
    expectMoved(afterHits, afterListTimeout, { 'upstream credentials_list timeout': 1, 'refresh failure': 1 }, 'listing timeout');
    expect(expirationGauge(afterListTimeout)).toBe(expirationGauge(afterHits));
    expect(lastRefreshGauge(afterListTimeout)).toBe(lastRefreshGauge(afterHits));

    // Clients keep getting the cached credentials, counted as stale, with no upstream traffic.
    for (let i = 0; i < 3; i++) expect((await credentialsVia(proxy.url, token)).accessKeyId).toBe(served!.accessKeyId);
    const staleServed = await scrape(metricsUrl);
    expectMoved(afterListTimeout, staleServed, { 'cache stale': 3, 'client GET credentials 200': 3 }, 'stale serving');

    // Now the listing answers but the credentials document dribbles in past the timeout:
    // a timeout on the credentials route, a failure of this role.
    sim.setFaults({ latencyMs: 0, slowBodyMs: 100 });
    await refreshNow();
    expect(cache.failuresInARow).toBe(2);
    const afterCredentialsTimeout = await scrape(metricsUrl);
    expectMoved(staleServed, afterCredentialsTimeout, {
      'upstream credentials_list success': 1,
      'upstream credentials timeout': 1,
      'refresh failure': 1,
    }, 'credentials timeout');
    expect((await credentialsVia(proxy.url, token)).accessKeyId).toBe(served!.accessKeyId);
    const staleAgain = await scrape(metricsUrl);
    expectMoved(afterCredentialsTimeout, staleAgain, { 'cache stale': 1, 'client GET credentials 200': 1 }, 'stale again');

    // Recovery: IMDS answers again; it has not rotated, so the refresh is "unchanged", and
    // clients are back to plain hits.
    sim.resetFaults();
    await refreshNow();
    expect(cache.failuresInARow).toBe(0);
    const recovered = await scrape(metricsUrl);
    expectMoved(staleAgain, recovered, {
      'upstream credentials_list success': 1,
      'upstream credentials success': 1,
      'refresh unchanged': 1,
    }, 'recovery');
    expect(expirationGauge(recovered)).toBe(served!.expiration / 1000);
    expect(lastRefreshGauge(recovered)).toBe(clock.now() / 1000);
    expect((await credentialsVia(proxy.url, token)).accessKeyId).toBe(served!.accessKeyId);
    const hitAfterRecovery = await scrape(metricsUrl);
    expectMoved(recovered, hitAfterRecovery, { 'cache hit': 1, 'client GET credentials 200': 1 }, 'hit after recovery');

    // A lapse: the clock reaches the cached credentials' last servable moment (Expiration less
    // the 60 s margin) with no refresh in between. Nothing servable is cached, so the next
    // GET is a miss that waits on a fetch; IMDS has rotated by then, and the proxy's own
    // session token is due for renewal, as is the client's.
    clock.set(served!.expiration - 60_000);
    expect(proxy.isReady()).toBe(false);
    const lateToken = await clientToken(proxy.url);
    const afterLapse = await credentialsVia(proxy.url, lateToken);
    expect(afterLapse.status).toBe(200);
    const rotated = sim.currentCredentials(ROLE);
    expect(afterLapse.accessKeyId).toBe(rotated!.accessKeyId);
    expect(afterLapse.accessKeyId).not.toBe(served!.accessKeyId);
    expect(afterLapse.expiration).toBe(rotated!.expiration);
    const missed = await scrape(metricsUrl);
    expectMoved(hitAfterRecovery, missed, {
      'tokens issued': 1,
      'client PUT token 200': 1,
      'cache miss': 1,
      'client GET credentials 200': 1,
      'upstream token success': 1,
      'upstream credentials_list success': 1,
      'upstream credentials success': 1,
      'refresh success': 1,
    }, 'lapse and miss');
    expect(expirationGauge(missed)).toBe(afterLapse.expiration! / 1000);
    expect(lastRefreshGauge(missed)).toBe(clock.now() / 1000);
  }, 30_000);
});

describe('where /metrics is served', () => {
  it('--metrics-listen serves /metrics (and /healthz) but none of IMDS; the IMDS listener keeps its /metrics', async () => {
    const sim = await simulator();
    const proxy = await proxyFor(sim, { metricsListen: { host: '127.0.0.1', port: 0 } });
    await proxy.services.credentials.refreshIfDue();
    expect(proxy.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const metricsOrigin = new URL(proxy.metricsUrl!).origin;
    expect(metricsOrigin).not.toBe(proxy.url);

    const token = await clientToken(proxy.url);
    const answer = await credentialsVia(proxy.url, token);
    expect(answer.status).toBe(200);

    const onMetricsPort = await scrape(proxy.metricsUrl!);
    const onImdsPort = await scrape(`${proxy.url}/metrics`);
    // One registry behind both: the same families, and the same values where scraping the
    // IMDS listener (itself a request) does not move them.
    const families = (text: string) => text.split('\n').filter((l) => l.startsWith('# TYPE imds_proxy_')).sort();
    expect(families(onMetricsPort)).toEqual(families(onImdsPort));
    expect(families(onMetricsPort).length).toBeGreaterThanOrEqual(12);
    expect(read(onMetricsPort)).toEqual(read(onImdsPort));
    expect(read(onMetricsPort)['cache hit']).toBe(1);
    expect(read(onMetricsPort)['tokens issued']).toBe(1);
    expect(expirationGauge(onMetricsPort)).toBe(answer.expiration! / 1000);
    expect((await fetch(`${metricsOrigin}/healthz`)).status).toBe(200);

    // Nothing of IMDS there, not even with a valid token from the IMDS listener.
    const put = await fetch(`${metricsOrigin}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } });
    expect(put.status).toBe(404);
    await put.body?.cancel();
    for (const path of [LIST, CREDS, `/latest/meta-data/iam/security-credentials-extended/${ROLE}`, '/latest/meta-data/iam/info', '/latest/meta-data/']) {
      const res = await fetch(`${metricsOrigin}${path}`, { headers: { 'x-aws-ec2-metadata-token': token } });
      const body = await res.text();
      expect(res.status, path).toBe(404);
      expect(body.includes('AccessKeyId'), path).toBe(false);
      expect(body.includes(ROLE), path).toBe(false);
    }
    // Nor did those 404s reach the credentials cache.
    expect(read(await scrape(proxy.metricsUrl!))['cache hit']).toBe(1);
  });

  it('--metrics off: /metrics answers 404 and no metrics port is opened, while IMDS is served', async () => {
    const sim = await simulator();
    const port = await freeLoopbackPort();
    const proxy = await proxyFor(sim, { metrics: false, metricsListen: { host: '127.0.0.1', port } });
    await proxy.services.credentials.refreshIfDue();
    expect(proxy.metricsUrl).toBeUndefined();
    const metricsRes = await fetch(`${proxy.url}/metrics`);
    expect(metricsRes.status).toBe(404);
    expect(await metricsRes.text()).not.toContain('imds_proxy_');
    expect((await credentialsVia(proxy.url, await clientToken(proxy.url))).status).toBe(200);
    const refused = await fetch(`http://127.0.0.1:${port}/metrics`).then(
      () => 'answered',
      (error: { cause?: { code?: string } }) => error.cause?.code ?? 'failed',
    );
    expect(refused).toBe('ECONNREFUSED');
  });
});

describe('promtool on a real scrape', () => {
  let cli: CliRun | undefined;
  afterEach(async () => {
    if (cli !== undefined && cli.child.exitCode === null && cli.child.signalCode === null) {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
    cli = undefined;
  });

  it.skipIf(PROMTOOL === undefined)(
    `a running serve process's /metrics passes promtool check metrics for every imds_proxy_ series${PROMTOOL ? '' : ` — skipped: ${SKIP_PROMTOOL}`}`,
    async () => {
      const sim = await simulator();
      cli = runCli([
        'serve',
        '--listen', '127.0.0.1:0',
        '--metrics-listen', '127.0.0.1:0',
        '--upstream', sim.url,
        '--upstream-timeout-ms', '500',
        '--upstream-attempts', '1',
      ]);
      const started = await cli.event('started');
      await cli.event('ready');
      const url = String(started.listen);
      const metricsUrl = String(started.metrics);
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

      // Some of every kind of traffic: tokens, the listing, hits, metadata, a refused token, a 404.
      const token = await clientToken(url);
      expect((await fetch(`${url}${LIST}`, { headers: { 'x-aws-ec2-metadata-token': token } })).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await credentialsVia(url, token)).status).toBe(200);
      expect((await fetch(`${url}/latest/meta-data/instance-id`, { headers: { 'x-aws-ec2-metadata-token': token } })).status).toBe(200);
      expect((await fetch(`${url}${CREDS}`, { headers: { 'x-aws-ec2-metadata-token': 'not-a-token' } })).status).toBe(401);
      expect((await fetch(`${url}/latest/meta-data/no-such-thing`, { headers: { 'x-aws-ec2-metadata-token': token } })).status).toBe(404);

      const dir = await mkdtemp(join(tmpdir(), 'promtool-scrape-'));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      for (const [where, from] of [['IMDS listener', `${url}/metrics`], ['--metrics-listen', metricsUrl]] as const) {
        const body = await scrape(from);
        // It is a scrape of the traffic above, not an idle process.
        expect(sampleValue(body, 'imds_proxy_cache_requests_total', { cache: 'credentials', result: 'hit' }), where).toBe(3);
        expect(sampleValue(body, 'imds_proxy_token_rejections_total', { reason: 'invalid' }), where).toBe(1);
        expect(sampleValue(body, 'imds_proxy_tokens_issued_total'), where).toBe(1);

        const whole = join(dir, 'scrape.txt');
        await writeFile(whole, body);
        const full = promtoolCheckMetrics(whole);
        // The whole scrape parses (exit 1 would be a format error). prom-client's own
        // nodejs_active_*_total gauges draw lint findings (exit 3); none may name our series.
        const findings = full.output.split('\n').filter((l) => l.trim() !== '');
        expect(findings.filter((l) => l.includes('imds_proxy_')), where).toEqual([]);
        for (const line of findings) expect(line, where).toMatch(/^(?!imds_proxy_)[a-zA-Z_:][a-zA-Z0-9_:]* /);
        expect(full.status, where).toBe(findings.length === 0 ? 0 : 3);

        // Our series alone, as scraped (HELP, TYPE and samples): clean, exit 0.
        const ours = join(dir, 'ours.txt');
        await writeFile(ours, body.split('\n').filter((l) => l.includes('imds_proxy_')).join('\n') + '\n');
        const clean = promtoolCheckMetrics(ours);
        expect(clean.output.trim(), where).toBe('');
        expect(clean.status, where).toBe(0);
      }
    },
    30_000,
  );
});

/** `promtool check metrics < file`. */
function promtoolCheckMetrics(file: string): { status: number | null; output: string } {
  const input = openSync(file, 'r');
  try {
    const result = spawnSync(PROMTOOL!, ['check', 'metrics'], { stdio: [input, 'pipe', 'pipe'], encoding: 'utf8', timeout: 20_000 });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  } finally {
    closeSync(input);
  }
}
