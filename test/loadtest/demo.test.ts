import { describe, expect, it } from 'vitest';
import { DEMO_PRESETS, formatDemoResult, runDemoScenario } from '../../src/demo.js';
import { runCli } from '../support/cliProcess.js';

describe('demo', () => {
  it('shows the seed problem directly and its absence through the proxy (quick preset)', async () => {
    const result = await runDemoScenario(DEMO_PRESETS.quick);
    expect(result.direct.load.failed).toBeGreaterThan(0);
    expect(result.direct.load.timeouts).toBeGreaterThan(0);
    expect(result.proxied.load.failed).toBe(0);
    expect(result.proxied.load.completed).toBeGreaterThan(result.direct.load.completed);
    expect(result.proxied.imds.byRoute.credentials?.ok ?? 0).toBeLessThanOrEqual(2);
    const text = formatDemoResult(result);
    expect(text).toContain('through the proxy');
    expect(text).not.toMatch(/SecretAccessKey|"Token"/);
  }, 60_000);

  it('the CLI prints the table and a JSON line with --json, and exits 0', async () => {
    const run = runCli(['demo', '--quick', '--json']);
    expect(await run.exited).toBe(0);
    const last = JSON.parse(run.stdout().trim().split('\n').at(-1)!) as { direct: { failed: number }; proxied: { failed: number } };
    expect(last.direct.failed).toBeGreaterThan(0);
    expect(last.proxied.failed).toBe(0);
  }, 60_000);
});
