import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  CACHE_NAMES,
  CACHE_RESULTS,
  MAX_ROLE_LABELS,
  METRIC_NAMES,
  OVERFLOW_ROLE_LABEL,
  PrometheusMetrics,
  REFRESH_OUTCOMES,
  REQUEST_DURATION_BUCKETS,
  ROUTE_LABELS,
  TOKEN_REJECTION_REASONS,
  UPSTREAM_OUTCOMES,
  UPSTREAM_TOKEN_OUTCOMES,
} from '../../src/metrics/prometheus.js';
import type { MetricsRecorder, RouteLabel } from '../../src/metrics/recorder.js';

const HAS_PROMTOOL = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
const SKIP_PROMTOOL = 'promtool not installed (apt-get install prometheus); CI installs it';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`unparseable exposition line: ${line}`);
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

async function samplesOf(metrics: PrometheusMetrics, name: string): Promise<Sample[]> {
  return parseSamples((await metrics.exposition()).body).filter((s) => s.name === name);
}

function valueOf(samples: Sample[], labels: Record<string, string>): number | undefined {
  return samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

function bare(): PrometheusMetrics {
  return new PrometheusMetrics({ version: 'test', defaultMetrics: false });
}

describe('PrometheusMetrics labels', () => {
  it('folds method case, and counts unknown, hostile and huge methods as "other"', async () => {
    const m = bare();
    m.request('metadata', 'get', 200, 0);
    m.request('metadata', 'Get', 200, 0);
    m.request('metadata', 'GET', 200, 0);
    m.request('token', 'put', 200, 0);
    for (const method of ['BREW', 'other', 'OTHER', '', 'G\u0000T', 'x'.repeat(1_000_000), 'GET '.repeat(3)]) {
      m.request('metadata', method, 405, 0);
    }
    const requests = await samplesOf(m, METRIC_NAMES.requests);
    expect(valueOf(requests, { route: 'metadata', method: 'GET', status: '200' })).toBe(3);
    expect(valueOf(requests, { route: 'token', method: 'PUT', status: '200' })).toBe(1);
    expect(valueOf(requests, { route: 'metadata', method: 'other', status: '405' })).toBe(7);
    expect(requests).toHaveLength(3);
  });

  it('keeps every request series inside the fixed route × method set whatever arrives', async () => {
    const m = bare();
    for (let i = 0; i < 2_000; i++) {
      m.request(`/latest/${i}` as RouteLabel, `M${i}`, 200, 0);
      m.request(ROUTE_LABELS[i % ROUTE_LABELS.length]!, `m${i % 50}`, 404, 0);
    }
    const requests = await samplesOf(m, METRIC_NAMES.requests);
    for (const s of requests) {
      expect(ROUTE_LABELS).toContain(s.labels.route);
      expect(['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'PATCH', 'other']).toContain(s.labels.method);
    }
    expect(valueOf(requests, { route: 'other', method: 'other', status: '200' })).toBe(2_000);
    expect(requests.length).toBeLessThanOrEqual(ROUTE_LABELS.length + 1);
    const durations = await samplesOf(m, `${METRIC_NAMES.requestDuration}_count`);
    expect(durations.map((s) => s.labels.route).sort()).toEqual([...ROUTE_LABELS].sort());
  });

  it('labels statuses as their number, and anything outside 100–599 as "other"', async () => {
    const m = bare();
    m.request('credentials', 'GET', 200, 0);
    m.request('credentials', 'GET', 404, 0);
    for (const status of [0, 42, 600, 1e9, -1, 200.5, Number.NaN]) m.request('credentials', 'GET', status, 0);
    const requests = await samplesOf(m, METRIC_NAMES.requests);
    expect(requests.map((s) => s.labels.status).sort()).toEqual(['200', '404', 'other']);
    expect(valueOf(requests, { status: 'other' })).toBe(7);
  });

  it(`caps distinct role labels at ${MAX_ROLE_LABELS}, the rest sharing "${OVERFLOW_ROLE_LABEL}"`, async () => {
    const m = bare();
    for (let i = 0; i < 50; i++) {
      m.credentialsRefreshed(`role-${i}`, 'success');
      m.credentialsState(`role-${i}`, (2_000_000_000 + i) * 1000, (1_999_990_000 + i) * 1000);
    }
    const expirations = await samplesOf(m, METRIC_NAMES.credentialsExpiration);
    expect(expirations).toHaveLength(MAX_ROLE_LABELS + 1);
    expect(valueOf(expirations, { role: 'role-0' })).toBe(2_000_000_000);
    expect(valueOf(expirations, { role: `role-${MAX_ROLE_LABELS - 1}` })).toBe(2_000_000_000 + MAX_ROLE_LABELS - 1);
    expect(valueOf(expirations, { role: OVERFLOW_ROLE_LABEL })).toBe(2_000_000_049);
    const refreshes = await samplesOf(m, METRIC_NAMES.credentialsRefreshes);
    expect(valueOf(refreshes, { role: OVERFLOW_ROLE_LABEL, outcome: 'success' })).toBe(50 - MAX_ROLE_LABELS);
    expect(valueOf(refreshes, { role: 'role-3', outcome: 'success' })).toBe(1);
  });

  it('forgetRole drops a departed role and frees its place for a new one', async () => {
    const m = bare();
    for (let i = 0; i < MAX_ROLE_LABELS; i++) m.credentialsState(`role-${i}`, 3_000_000_000_000, 2_999_000_000_000);
    m.credentialsRefreshed('role-0', 'failure');
    m.forgetRole('role-0');
    m.forgetRole('never-seen');
    m.credentialsState('newcomer', 3_000_000_000_000, 2_999_000_000_000);
    const expirations = await samplesOf(m, METRIC_NAMES.credentialsExpiration);
    expect(expirations.map((s) => s.labels.role)).not.toContain('role-0');
    expect(expirations.map((s) => s.labels.role)).toContain('newcomer');
    expect(expirations.map((s) => s.labels.role)).not.toContain(OVERFLOW_ROLE_LABEL);
    expect(await samplesOf(m, METRIC_NAMES.credentialsRefreshes)).toEqual([]);
    expect(valueOf(await samplesOf(m, METRIC_NAMES.credentialsLastRefresh), { role: 'newcomer' })).toBe(2_999_000_000);
  });

  it('names each role\'s credentials by key id suffix in one series that follows rotations and leaves with the role', async () => {
    const m = bare();
    m.credentialsState('app-role', 3_000_000_000_000, 2_999_000_000_000, 'AAAA');
    m.credentialsState('app-role', 3_000_000_000_000, 2_999_000_100_000, 'AAAA');
    m.credentialsState('other-role', 3_000_000_000_000, 2_999_000_000_000, 'CCCC');
    m.credentialsState('app-role', 3_000_000_600_000, 2_999_000_600_000, 'BBBB');
    const info = await samplesOf(m, METRIC_NAMES.credentialsInfo);
    expect(info.map((s) => [s.labels.role, s.labels.access_key_id_suffix, s.value]).sort()).toEqual([
      ['app-role', 'BBBB', 1],
      ['other-role', 'CCCC', 1],
    ]);
    m.forgetRole('app-role');
    expect((await samplesOf(m, METRIC_NAMES.credentialsInfo)).map((s) => s.labels.role)).toEqual(['other-role']);
  });

  it('forgetRole of a role sharing the overflow label leaves the shared series alone', async () => {
    const m = bare();
    // Through the interface, as the cache calls it.
    const recorder: MetricsRecorder = m;
    for (let i = 0; i <= MAX_ROLE_LABELS; i++) recorder.credentialsRefreshed(`role-${i}`, 'success');
    recorder.forgetRole(`role-${MAX_ROLE_LABELS}`);
    const refreshes = await samplesOf(m, METRIC_NAMES.credentialsRefreshes);
    expect(valueOf(refreshes, { role: OVERFLOW_ROLE_LABEL, outcome: 'success' })).toBe(1);
    expect(refreshes).toHaveLength(MAX_ROLE_LABELS + 1);
  });

  it('ignores values outside the recorder types instead of inventing series', async () => {
    const m = bare();
    m.cache('sessions' as never, 'hit');
    m.cache('credentials', 'warm' as never);
    m.tokenRejected('rude' as never);
    m.upstreamTokenRefreshed('maybe' as never);
    m.upstreamRequest('credentials', 'lost' as never, 0.01);
    m.credentialsRefreshed('r', 'partial' as never);
    const body = (await m.exposition()).body;
    for (const value of ['sessions', 'warm', 'rude', 'maybe', 'lost', 'partial']) expect(body).not.toContain(`"${value}"`);
  });
});

describe('PrometheusMetrics values', () => {
  it('starts every known bounded label set at zero, so the first event shows in increase()', async () => {
    const samples = parseSamples((await bare().exposition()).body);
    for (const cache of CACHE_NAMES) {
      for (const result of CACHE_RESULTS) expect(valueOf(samples.filter((s) => s.name === METRIC_NAMES.cacheRequests), { cache, result })).toBe(0);
    }
    for (const reason of TOKEN_REJECTION_REASONS) {
      expect(valueOf(samples.filter((s) => s.name === METRIC_NAMES.tokenRejections), { reason })).toBe(0);
    }
    for (const outcome of UPSTREAM_TOKEN_OUTCOMES) {
      expect(valueOf(samples.filter((s) => s.name === METRIC_NAMES.upstreamTokenRefreshes), { outcome })).toBe(0);
    }
    for (const route of ['credentials_list', 'credentials']) {
      for (const outcome of UPSTREAM_OUTCOMES) {
        expect(valueOf(samples.filter((s) => s.name === METRIC_NAMES.upstreamRequests), { route, outcome })).toBe(0);
      }
    }
    expect(valueOf(samples.filter((s) => s.name === METRIC_NAMES.tokensIssued), {})).toBe(0);
  });

  it('reports running totals across scrapes, not what changed since the last one', async () => {
    const m = bare();
    m.tokenIssued();
    m.cache('metadata', 'miss');
    expect(valueOf(await samplesOf(m, METRIC_NAMES.tokensIssued), {})).toBe(1);
    m.tokenIssued();
    m.tokenIssued();
    expect(valueOf(await samplesOf(m, METRIC_NAMES.tokensIssued), {})).toBe(3);
    expect(valueOf(await samplesOf(m, METRIC_NAMES.tokensIssued), {})).toBe(3);
    expect(valueOf(await samplesOf(m, METRIC_NAMES.cacheRequests), { cache: 'metadata', result: 'miss' })).toBe(1);
  });

  it('puts each observation in the first bucket whose bound it does not exceed, cumulatively', async () => {
    const m = bare();
    m.request('credentials', 'GET', 200, 0.0005);
    m.request('credentials', 'GET', 200, 0.0006);
    m.request('credentials', 'GET', 200, 60);
    m.request('credentials', 'GET', 200, Number.NaN);
    const buckets = await samplesOf(m, `${METRIC_NAMES.requestDuration}_bucket`);
    const mine = buckets.filter((s) => s.labels.route === 'credentials');
    expect(mine.map((s) => s.labels.le)).toEqual([...REQUEST_DURATION_BUCKETS.map(String), '+Inf']);
    expect(valueOf(mine, { le: '0.00025' })).toBe(1);
    expect(valueOf(mine, { le: '0.0005' })).toBe(2);
    expect(valueOf(mine, { le: '0.001' })).toBe(3);
    expect(valueOf(mine, { le: '5' })).toBe(3);
    expect(valueOf(mine, { le: '+Inf' })).toBe(4);
    expect(valueOf(await samplesOf(m, `${METRIC_NAMES.requestDuration}_sum`), { route: 'credentials' })).toBeCloseTo(60.0011, 9);
    expect(valueOf(await samplesOf(m, `${METRIC_NAMES.requestDuration}_count`), { route: 'credentials' })).toBe(4);
  });

  it('records upstream attempts by route and outcome, with their duration', async () => {
    const m = bare();
    m.upstreamRequest('credentials', 'success', 0.004);
    m.upstreamRequest('credentials', 'timeout', 1);
    m.upstreamRequest('metadata', 'throttled', 0.002);
    const upstream = await samplesOf(m, METRIC_NAMES.upstreamRequests);
    expect(valueOf(upstream, { route: 'credentials', outcome: 'success' })).toBe(1);
    expect(valueOf(upstream, { route: 'credentials', outcome: 'timeout' })).toBe(1);
    expect(valueOf(upstream, { route: 'metadata', outcome: 'throttled' })).toBe(1);
    expect(valueOf(upstream, { route: 'metadata', outcome: 'success' })).toBeUndefined();
    const counts = await samplesOf(m, `${METRIC_NAMES.upstreamRequestDuration}_count`);
    expect(valueOf(counts, { route: 'credentials' })).toBe(2);
    expect(valueOf(counts, { route: 'metadata' })).toBe(1);
  });

  it('serves the Prometheus text format content type, and prom-client default metrics only when asked', async () => {
    const withDefaults = await new PrometheusMetrics({ version: '1' }).exposition();
    expect(withDefaults.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(withDefaults.body).toContain('# TYPE process_cpu_user_seconds_total counter');
    expect(withDefaults.body).toContain('# TYPE nodejs_heap_size_used_bytes gauge');
    expect((await bare().exposition()).body).not.toContain('process_cpu_user_seconds_total');
  });

  it('keeps instances apart, even with the same version and the same calls made on one', async () => {
    const a = bare();
    const b = bare();
    a.request('token', 'PUT', 200, 0.001);
    a.credentialsState('r', 1e12, 1e12);
    expect(await samplesOf(b, METRIC_NAMES.requests)).toEqual([]);
    expect(await samplesOf(b, METRIC_NAMES.credentialsExpiration)).toEqual([]);
    expect(await samplesOf(a, METRIC_NAMES.requests)).toHaveLength(1);
  });
});

describe('PrometheusMetrics exposition', () => {
  it.skipIf(!HAS_PROMTOOL)(
    `passes promtool check metrics with every label value in use${HAS_PROMTOOL ? '' : ` — skipped: ${SKIP_PROMTOOL}`}`,
    async () => {
      const m = new PrometheusMetrics({ version: '0.1.0-test+"quoted"' });
      for (const route of ROUTE_LABELS) {
        m.request(route, 'GET', 200, 0.0002);
        m.request(route, 'BREW', 999, 0.3);
        for (const outcome of UPSTREAM_OUTCOMES) m.upstreamRequest(route, outcome, 0.8);
      }
      for (const cache of CACHE_NAMES) for (const result of CACHE_RESULTS) m.cache(cache, result);
      for (let i = 0; i <= MAX_ROLE_LABELS; i++) {
        for (const outcome of REFRESH_OUTCOMES) m.credentialsRefreshed(`role-${i}`, outcome);
        m.credentialsState(`role-${i}`, Date.now() + 3_600_000, Date.now());
      }
      m.tokenIssued();
      for (const reason of TOKEN_REJECTION_REASONS) m.tokenRejected(reason);
      for (const outcome of UPSTREAM_TOKEN_OUTCOMES) m.upstreamTokenRefreshed(outcome);

      const body = (await m.exposition()).body;
      // prom-client's own nodejs_active_*_total gauges fail the lint; the issue holds only
      // the imds_proxy_ series to it.
      const ours = body.split('\n').filter((line) => line.includes('imds_proxy_')).join('\n') + '\n';
      expect(ours).toContain(OVERFLOW_ROLE_LABEL);
      const result = spawnSync('promtool', ['check', 'metrics'], { input: ours, encoding: 'utf8' });
      expect(`${result.stdout}${result.stderr}`.trim()).toBe('');
      expect(result.status).toBe(0);
    },
  );
});
