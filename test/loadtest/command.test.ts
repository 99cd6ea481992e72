import { afterEach, describe, expect, it, vi } from 'vitest';
import { runLoadtestCommand } from '../../src/loadtest/command.js';
import { startSimulator } from '../../src/simulator/simulator.js';

describe('imds-cache-proxy loadtest', () => {
  afterEach(() => vi.restoreAllMocks());

  const captureStdout = () => {
    let out = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out += chunk.toString();
      return true;
    });
    return () => out;
  };

  it('prints a table, then one JSON object on the last line with --json', async () => {
    const sim = await startSimulator({ port: 0 });
    try {
      const stdout = captureStdout();
      const code = await runLoadtestCommand(['--target', sim.url, '--clients', '4', '--requests', '10', '--json']);
      vi.restoreAllMocks();
      expect(code).toBe(0);
      const lines = stdout().trim().split('\n');
      expect(lines.some((l) => l.startsWith('credential fetches completed'))).toBe(true);
      const last = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
      for (const field of ['requests', 'completed', 'failed', 'timeouts', 'throttled', 'p50_ms', 'p99_ms']) {
        expect(typeof last[field], field).toBe('number');
      }
      expect(last).toMatchObject({ requests: 30, completed: 10, failed: 0 });
      expect(sim.counters().total).toBe(30);
      expect(stdout()).not.toMatch(/SecretAccessKey|fake|ASIA/);
    } finally {
      await sim.close();
    }
  });

  it('without --json, no JSON line', async () => {
    const sim = await startSimulator({ port: 0 });
    try {
      const stdout = captureStdout();
      await runLoadtestCommand(['--target', sim.url, '--clients', '1', '--requests', '1']);
      vi.restoreAllMocks();
      expect(stdout()).not.toMatch(/^\{/m);
    } finally {
      await sim.close();
    }
  });
});
