import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { startSimulator } from '../../src/simulator/simulator.js';
import { runCli } from '../support/cliProcess.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.log(`skipping the report's browser test: no ${CHROMIUM} (apt-get install chromium; .ci/run installs it)`);

/** The same launch everywhere: Debian's chromium, no sandbox (containers), nothing phoning home. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe.skipIf(!haveChromium)('the HTML report in a real browser', () => {
  it('draws every chart, shows the JSON\'s figures, and touches no network', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loadtest-report-'));
    const reportFile = join(dir, 'report.html');
    // A throttled IMDS, so the report has failures, steps and a knee to show.
    const sim = await startSimulator({ port: 0, throttleRps: 60, throttleBurst: 5, throttleMode: '429' });
    let json: Record<string, unknown> & { settings: Record<string, unknown>; machine: Record<string, unknown>; steps: Record<string, unknown>[] };
    try {
      const run = runCli(['loadtest', '--target', sim.url, '--ramp', '10:40', '--steps', '4', '--duration', '2', '--json', '--report', reportFile]);
      expect(await run.exited, run.stderr()).toBe(0);
      json = JSON.parse(run.stdout()) as typeof json;
    } finally {
      await sim.close();
    }
    expect(json.throttled).toBeGreaterThan(0);

    const fileUrl = pathToFileURL(reportFile).href;
    const context = await chromium.launchPersistentContext(mkdtempSync(join(dir, 'profile-')), { executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const problems: string[] = [];
      const requests: string[] = [];
      await context.route('**/*', (route) => {
        if (route.request().url() === fileUrl) return route.continue();
        problems.push(`request ${route.request().url()}`);
        return route.abort();
      });
      page.on('request', (request) => requests.push(request.url()));
      page.on('console', (message) => {
        if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${message.text()}`);
      });
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));

      await page.goto(fileUrl);
      await page.locator('[data-chart] canvas').nth(4).waitFor({ timeout: 10_000 });

      const charts = await page.$$eval('[data-chart]', (boxes) =>
        boxes.map((box) => {
          const canvas = box.querySelector('canvas');
          return { name: box.getAttribute('data-chart'), width: canvas?.width ?? 0, height: canvas?.height ?? 0 };
        }),
      );
      expect(charts.map((c) => c.name)).toEqual(['throughput', 'latency', 'ramp-failures', 'ramp-throughput', 'ramp-latency']);
      for (const c of charts) expect(c.width * c.height, c.name ?? '').toBeGreaterThan(0);

      // Every figure the page shows, against the JSON the same run printed.
      const shown = await page.$$eval('[data-section="0"] [data-field]', (cells) =>
        cells.filter((c) => c.closest('[data-step]') === null).map((c) => [c.getAttribute('data-field')!, c.textContent ?? ''] as const),
      );
      const expected = (field: string): string => {
        const [scope, key] = field.includes('.') ? (field.split('.') as [string, string]) : [undefined, field];
        const value = scope === 'settings' ? json.settings[key] : scope === 'machine' ? json.machine[key] : json[key];
        return value === null || value === undefined ? 'none' : String(value);
      };
      expect(shown.length).toBeGreaterThan(25);
      for (const field of ['completed', 'failed', 'throttled', 'timeouts', 'not_started', 'p99_ms', 'knee_fetches_per_s', 'sustained_fetches_per_s', 'settings.target', 'machine.cores']) {
        expect(shown.map(([f]) => f)).toContain(field);
      }
      for (const [field, text] of shown) expect(text, field).toBe(expected(field));

      const stepRows = await page.$$eval('[data-section="0"] [data-step]', (rows) =>
        rows.map((row) => Object.fromEntries([...row.querySelectorAll('[data-field]')].map((c) => [c.getAttribute('data-field')!, c.textContent ?? '']))),
      );
      expect(stepRows).toHaveLength(json.steps.length);
      stepRows.forEach((row, i) => {
        for (const [field, text] of Object.entries(row)) expect(text, `step ${i} ${field}`).toBe(String(json.steps[i]![field]));
      });

      const screenshot = join(dir, 'report.png');
      await page.screenshot({ path: screenshot, fullPage: true });
      expect(statSync(screenshot).size).toBeGreaterThan(10_000);
      console.log(`report screenshot: ${screenshot}`);

      expect(problems).toEqual([]);
      expect(requests.filter((url) => url !== fileUrl && !url.startsWith('data:'))).toEqual([]);
    } finally {
      await context.close();
    }
  }, 60_000);
});
