import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const DIR = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));
const HAS_PROMTOOL = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
const SKIP_PROMTOOL = 'promtool not installed (apt-get install prometheus); CI installs it';
const skipNote = HAS_PROMTOOL ? '' : ` — skipped: ${SKIP_PROMTOOL}`;

const EXPECTED_ALERTS = [
  'ImdsProxyDown',
  'ImdsProxyUpstreamFailureRatioHigh',
  'ImdsProxyUpstreamTimeoutsRising',
  'ImdsProxyCredentialsExpiringSoon',
  'ImdsProxyNoSuccessfulRefresh',
];

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface AlertTest {
  alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[];
}

function promtool(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const rules = (parse(readFileSync(`${DIR}alerts.yml`, 'utf8')) as { groups: { rules: AlertRule[] }[] }).groups.flatMap(
  (g) => g.rules,
);
const tests = (parse(readFileSync(`${DIR}alerts.test.yml`, 'utf8')) as { tests: AlertTest[] }).tests;

describe('deploy/prometheus alerts', () => {
  it('defines the five alerts, each with for:, a severity, and summary, description and runbook', () => {
    expect(rules.map((r) => r.alert).sort()).toEqual([...EXPECTED_ALERTS].sort());
    for (const rule of rules) {
      expect(rule.for, rule.alert).toMatch(/^\d+[smh]$/);
      expect(['critical', 'warning'], rule.alert).toContain(rule.labels?.severity);
      for (const key of ['summary', 'description', 'runbook']) expect(rule.annotations?.[key], `${rule.alert} ${key}`).toBeTruthy();
      expect(rule.annotations?.runbook, rule.alert).toContain(`docs/metrics.md#${rule.alert.toLowerCase()}`);
    }
  });

  it('has a unit test in which each alert fires and one in which it stays silent', () => {
    for (const alert of EXPECTED_ALERTS) {
      const evaluations = tests.flatMap((t) => t.alert_rule_test ?? []).filter((e) => e.alertname === alert);
      expect(evaluations.some((e) => (e.exp_alerts ?? []).length > 0), `${alert} fires somewhere`).toBe(true);
      expect(evaluations.some((e) => (e.exp_alerts ?? []).length === 0), `${alert} is silent somewhere`).toBe(true);
    }
  });

  it.skipIf(!HAS_PROMTOOL)(`pass promtool check rules${skipNote}`, () => {
    const { status, output } = promtool('check', 'rules', 'alerts.yml');
    expect(output).toContain(`SUCCESS: ${EXPECTED_ALERTS.length} rules found`);
    expect(status).toBe(0);
  });

  it.skipIf(!HAS_PROMTOOL)(`pass their promtool unit tests (alerts.test.yml)${skipNote}`, () => {
    const { status, output } = promtool('test', 'rules', 'alerts.test.yml');
    expect(output).toContain('SUCCESS');
    expect(output).not.toContain('FAILED');
    expect(status).toBe(0);
  });

  it.skipIf(!HAS_PROMTOOL)(`ship a scrape example that promtool accepts, for job imds-cache-proxy${skipNote}`, () => {
    const { status, output } = promtool('check', 'config', 'scrape.yml');
    expect(output).toContain('SUCCESS');
    expect(status).toBe(0);
    const scrape = parse(readFileSync(`${DIR}scrape.yml`, 'utf8')) as { scrape_configs: { job_name: string }[] };
    expect(scrape.scrape_configs.map((c) => c.job_name)).toContain('imds-cache-proxy');
  });
});
