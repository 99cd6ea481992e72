import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PrometheusMetrics } from '../../src/metrics/prometheus.js';
import { PUBLIC_SERIES, sampleValue } from '../support/exposition.js';

const run = promisify(execFile);
const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p));
const SKIP_PROMTOOL = 'promtool not installed (apt-get install prometheus); CI installs it';


function exercised(): PrometheusMetrics {
  const m = new PrometheusMetrics({ version: '9.9.9' });
  m.request('credentials', 'GET', 200, 0.0004);
  m.cache('credentials', 'hit');
  m.upstreamRequest('credentials', 'success', 0.02);
  m.credentialsRefreshed('app-role', 'success');
  m.credentialsState('app-role', Date.UTC(2026, 10, 28, 18), Date.UTC(2026, 10, 28, 12), 'WXYZ');
  m.tokenIssued();
  m.tokenRejected('missing');
  m.upstreamTokenRefreshed('success');
  return m;
}

describe('PrometheusMetrics', () => {
  it('moves each series exactly as called', async () => {
    const m = new PrometheusMetrics({ version: '1.2.3', defaultMetrics: false });
    for (let i = 0; i < 3; i++) m.request('credentials', 'GET', 200, 0.001);
    m.request('token', 'PUT', 400, 0.001);
    m.cache('credentials', 'coalesced');
    m.cache('credentials', 'coalesced');
    m.upstreamRequest('credentials', 'timeout', 1);
    m.credentialsState('r', 1_800_000_000_000, 1_799_999_000_000);
    m.tokenRejected('expired');
    const text = (await m.exposition()).body;
    expect(sampleValue(text, 'imds_proxy_requests_total', { route: 'credentials', method: 'GET', status: '200' })).toBe(3);
    expect(sampleValue(text, 'imds_proxy_requests_total', { route: 'token', method: 'PUT', status: '400' })).toBe(1);
    expect(sampleValue(text, 'imds_proxy_request_duration_seconds_count', { route: 'credentials' })).toBe(3);
    expect(sampleValue(text, 'imds_proxy_cache_requests_total', { cache: 'credentials', result: 'coalesced' })).toBe(2);
    expect(sampleValue(text, 'imds_proxy_upstream_requests_total', { route: 'credentials', outcome: 'timeout' })).toBe(1);
    expect(sampleValue(text, 'imds_proxy_credentials_expiration_timestamp_seconds', { role: 'r' })).toBe(1_800_000_000);
    expect(sampleValue(text, 'imds_proxy_token_rejections_total', { reason: 'expired' })).toBe(1);
    expect(sampleValue(text, 'imds_proxy_build_info', { version: '1.2.3' })).toBe(1);
  });

  it('keeps label cardinality bounded whatever methods arrive', async () => {
    const m = new PrometheusMetrics({ version: '1', defaultMetrics: false });
    for (let i = 0; i < 500; i++) m.request('other', `X-${i}`, 405, 0);
    for (let i = 0; i < 100; i++) m.credentialsRefreshed(`role-${i}`, 'success');
    const text = (await m.exposition()).body;
    const requestSeries = text.split('\n').filter((l) => l.startsWith('imds_proxy_requests_total{'));
    expect(requestSeries).toHaveLength(1);
    expect(sampleValue(text, 'imds_proxy_requests_total', { method: 'other' })).toBe(500);
    expect(text.split('\n').filter((l) => l.startsWith('imds_proxy_credentials_refreshes_total{')).length).toBeLessThanOrEqual(17);
  });

  it('two instances share nothing', async () => {
    const a = new PrometheusMetrics({ version: '1' });
    const b = new PrometheusMetrics({ version: '1' });
    a.tokenIssued();
    expect(sampleValue((await a.exposition()).body, 'imds_proxy_tokens_issued_total')).toBe(1);
    expect(sampleValue((await b.exposition()).body, 'imds_proxy_tokens_issued_total')).toBe(0);
  });

  it('exposes every public series with HELP and TYPE, and the process and Node.js metrics', async () => {
    const text = (await exercised().exposition()).body;
    for (const name of PUBLIC_SERIES) {
      expect(text, name).toContain(`# HELP ${name} `);
      expect(text, name).toContain(`# TYPE ${name} `);
    }
    expect(text).toContain('process_resident_memory_bytes');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
  });

  it.skipIf(PROMTOOL === undefined)(`passes promtool check metrics${PROMTOOL ? '' : ` — skipped: ${SKIP_PROMTOOL}`}`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'promtool-'));
    try {
      const file = join(dir, 'scrape.txt');
      const body = (await exercised().exposition()).body;
      await writeFile(file, body.split('\n').filter((l) => l.includes('imds_proxy_')).join('\n') + '\n');
      const result = await run('sh', ['-c', `${PROMTOOL} check metrics < ${file}`]).then(
        (r) => ({ code: 0, out: r.stdout + r.stderr }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
      );
      expect(result.out.trim()).toBe('');
      expect(result.code).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
