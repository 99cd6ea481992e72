import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  CACHE_NAMES,
  CACHE_RESULTS,
  PrometheusMetrics,
  REFRESH_OUTCOMES,
  ROUTE_LABELS,
  TOKEN_REJECTION_REASONS,
  UPSTREAM_OUTCOMES,
  UPSTREAM_TOKEN_OUTCOMES,
} from '../../src/metrics/prometheus.js';

const DASHBOARD_PATH = new URL('../../deploy/grafana/imds-cache-proxy.json', import.meta.url);
const HAS_PROMTOOL = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
const SKIP_PROMTOOL = 'promtool not installed (apt-get install prometheus); CI installs it';

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  title?: string;
  type?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown }[] };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as Dashboard;
const panels = dashboard.panels.filter((p) => p.type !== 'row');
const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));

/** Every word in PromQL that is not a metric name, in the exprs the dashboard uses. */
const PROMQL_WORDS = new Set([
  'sum', 'min', 'max', 'avg', 'count', 'by', 'without', 'rate', 'irate', 'increase', 'histogram_quantile', 'time',
  'and', 'or', 'unless', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'clamp_min', 'clamp_max', 'abs',
]);

/** Metric names in a PromQL expression: label matchers, ranges, groupings and strings removed. */
function metricNamesIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, '');
  return [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]).filter((w) => !PROMQL_WORDS.has(w));
}

/** Sample names (histograms as _bucket, _sum, _count) from a proxy that has done everything once. */
async function exposedSampleNames(): Promise<Set<string>> {
  const m = new PrometheusMetrics({ version: 'dashboard-test' });
  for (const route of ROUTE_LABELS) {
    m.request(route, 'GET', 200, 0.001);
    for (const outcome of UPSTREAM_OUTCOMES) m.upstreamRequest(route, outcome, 0.01);
  }
  for (const cache of CACHE_NAMES) for (const result of CACHE_RESULTS) m.cache(cache, result);
  for (const outcome of REFRESH_OUTCOMES) m.credentialsRefreshed('role', outcome);
  m.credentialsState('role', Date.now() + 3_600_000, Date.now());
  m.tokenIssued();
  for (const reason of TOKEN_REJECTION_REASONS) m.tokenRejected(reason);
  for (const outcome of UPSTREAM_TOKEN_OUTCOMES) m.upstreamTokenRefreshed(outcome);
  const body = (await m.exposition()).body;
  return new Set(body.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0]));
}

describe('deploy/grafana/imds-cache-proxy.json', () => {
  it('is a Grafana dashboard with a Prometheus datasource variable and an instance variable', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.uid).toBe('imds-cache-proxy');
    const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(variables.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(variables.get('instance')?.type).toBe('query');
    expect(panels.length).toBeGreaterThanOrEqual(6);
  });

  it('queries through ${datasource} and filters by $instance in every panel', () => {
    for (const panel of panels) {
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect(target.expr, panel.title).toBeTruthy();
        expect(target.expr, panel.title).toContain('instance=~"$instance"');
        expect(target.datasource?.uid ?? '${datasource}', panel.title).toBe('${datasource}');
      }
    }
  });

  it('has the panels the issue asks for', () => {
    const all = exprs.join('\n');
    expect(all).toMatch(/sum by \(route\) \(rate\(imds_proxy_requests_total/);
    expect(all).toMatch(/imds_proxy_cache_requests_total\{[^}]*result="hit"/);
    expect(all).toMatch(/sum by \(outcome\) \(rate\(imds_proxy_upstream_requests_total/);
    expect(all).toMatch(/histogram_quantile\(0\.99, [^\n]*imds_proxy_upstream_request_duration_seconds_bucket/);
    expect(all).toMatch(/imds_proxy_credentials_expiration_timestamp_seconds\{[^}]*\}\) - time\(\)/);
    expect(all).toContain('imds_proxy_tokens_issued_total');
    expect(all).toContain('imds_proxy_token_rejections_total');
  });

  it('references only metric names a real PrometheusMetrics exposes', async () => {
    const exposed = await exposedSampleNames();
    for (const expr of exprs) {
      const names = metricNamesIn(expr);
      expect(names.length, expr).toBeGreaterThan(0);
      for (const name of names) expect(exposed.has(name), `${name} in ${expr}`).toBe(true);
    }
  });

  it('finds a misspelt metric name, so the check above can fail', async () => {
    const exposed = await exposedSampleNames();
    const names = metricNamesIn('sum by (route) (rate(imds_proxy_request_total{instance=~"$instance"}[5m]))');
    expect(names).toEqual(['imds_proxy_request_total']);
    expect(exposed.has(names[0]!)).toBe(false);
  });

  it.skipIf(!HAS_PROMTOOL)(
    `has panel queries that are valid PromQL${HAS_PROMTOOL ? '' : ` — skipped: ${SKIP_PROMTOOL}`}`,
    () => {
      // promtool parses PromQL only inside rule files, with Grafana's macros filled in.
      const rules = exprs.map((expr, i) => ({
        record: `dashboard:panel_query:${i}`,
        expr: expr.replaceAll('$__rate_interval', '5m').replaceAll('$__range', '1h').replaceAll('$instance', '.*'),
      }));
      const dir = mkdtempSync(join(tmpdir(), 'dashboard-promql-'));
      try {
        const file = join(dir, 'rules.yml');
        writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
        const result = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
        expect(`${result.stdout}${result.stderr}`).toContain(`SUCCESS: ${rules.length} rules found`);
        expect(result.status).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
