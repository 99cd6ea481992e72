import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runLoadtestCommand } from '../../src/commands/loadtest.js';
import { LiveProgress } from '../../src/loadtest/progress.js';
import { startSimulator } from '../../src/simulator/simulator.js';

/** A stream that keeps what is written; `isTTY` as a terminal or a pipe would say. */
const stream = (isTTY: boolean) => {
  let text = '';
  return { isTTY, write: (chunk: string) => ((text += chunk), true), text: () => text };
};

describe('imds-cache-proxy loadtest', () => {
  it('with --json, stdout is the JSON alone (for jq) and the table goes to stderr', async () => {
    const sim = await startSimulator({ port: 0 });
    try {
      const [stdout, stderr] = [stream(false), stream(false)];
      const code = await runLoadtestCommand(['--target', sim.url, '--clients', '4', '--requests', '10', '--json'], { stdout, stderr });
      expect(code).toBe(0);
      expect(stdout.text().endsWith('\n')).toBe(true);
      const json = JSON.parse(stdout.text()) as Record<string, unknown>;
      for (const field of ['requests', 'completed', 'failed', 'timeouts', 'throttled', 'not_started', 'p50_ms', 'p99_ms']) {
        expect(typeof json[field], field).toBe('number');
      }
      expect(json).toMatchObject({ requests: 30, completed: 10, failed: 0, mode: 'closed', interrupted: false });
      expect(json.settings).toMatchObject({ clients: 4, requests: 10, target: sim.url });
      expect(Array.isArray(json.series)).toBe(true);
      expect(sim.counters().total).toBe(30);
      expect(stderr.text()).toMatch(/^credential fetches completed +10$/m);
      expect(stdout.text() + stderr.text()).not.toMatch(/SecretAccessKey|fake|ASIA/);
    } finally {
      await sim.close();
    }
  });

  it('without --json, the table on stdout and no JSON', async () => {
    const sim = await startSimulator({ port: 0 });
    try {
      const [stdout, stderr] = [stream(false), stream(false)];
      await runLoadtestCommand(['--target', sim.url, '--clients', '1', '--requests', '1'], { stdout, stderr });
      expect(stdout.text()).toMatch(/^credential fetches completed +1$/m);
      expect(stdout.text()).not.toMatch(/^\{/m);
      expect(stderr.text()).toBe('');
    } finally {
      await sim.close();
    }
  });

  it('a ramp: steps, the knee in words and in the JSON, and a report file', async () => {
    const sim = await startSimulator({ port: 0, throttleRps: 60, throttleBurst: 5, throttleMode: '429' });
    try {
      const [stdout, stderr] = [stream(false), stream(false)];
      const report = join(mkdtempSync(join(tmpdir(), 'loadtest-')), 'r.html');
      const code = await runLoadtestCommand(
        ['--target', sim.url, '--ramp', '10:40', '--steps', '4', '--duration', '1.2', '--json', '--report', report],
        { stdout, stderr },
      );
      expect(code).toBe(0);
      const json = JSON.parse(stdout.text()) as { steps: { offered_per_s: number }[]; knee_fetches_per_s: number | null; sustained_fetches_per_s: unknown; mode: string };
      expect(json.mode).toBe('ramp');
      expect(json.steps.map((s) => s.offered_per_s)).toEqual([10, 20, 30, 40]);
      expect('knee_fetches_per_s' in json && 'sustained_fetches_per_s' in json).toBe(true);
      expect(stderr.text()).toMatch(/^knee: /m);
      expect(stderr.text()).toContain(`report: ${report}`);
      const html = readFileSync(report, 'utf8');
      expect(html).toContain('Permission is hereby granted'); // uPlot's licence kept
      expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)="(?!data:)/);
    } finally {
      await sim.close();
    }
  });
});

describe('loadtest --report that cannot be written', () => {
  it('still prints the run (JSON included), names the file and exits 1', async () => {
    const sim = await startSimulator({ port: 0 });
    try {
      const [stdout, stderr] = [stream(false), stream(false)];
      const dir = mkdtempSync(join(tmpdir(), 'loadtest-'));
      const code = await runLoadtestCommand(['--target', sim.url, '--clients', '1', '--requests', '2', '--json', '--report', dir], { stdout, stderr });
      expect(code).toBe(1);
      expect(JSON.parse(stdout.text())).toMatchObject({ completed: 2 });
      expect(stderr.text()).toContain(`--report: could not write "${dir}"`);
    } finally {
      await sim.close();
    }
  });
});

describe('live progress', () => {
  it('draws a status line a tick on a terminal, and clears it at the end', async () => {
    const tty = stream(true);
    const progress = new LiveProgress(tty, 2, () => 'rate 5/s', 50);
    progress.start();
    progress.record({ requests: 3, failure: undefined, latencyMs: 12 });
    progress.record({ requests: 1, failure: 'timeout', latencyMs: 1000 });
    progress.record({ requests: 2, failure: 'throttled', latencyMs: 3 });
    progress.record({ requests: 0, failure: 'not_started', latencyMs: 0 });
    const lines = () => tty.text().split('\r\x1b[2K').filter(Boolean);
    for (let waited = 0; lines().length < 2 && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    progress.stop();
    expect(lines().length).toBeGreaterThanOrEqual(2);
    expect(lines()[0]).toMatch(/^0\/2 s {3}rate 5\/s {3}completed 20\/s {3}failed 3 \(timeouts 1, throttled 1, other 1\) {3}p99 ~1\d{3} ms$/);
    expect(tty.text().endsWith('\r\x1b[2K')).toBe(true);
  });

  it('writes nothing when the stream is not a terminal', async () => {
    const pipe = stream(false);
    const progress = new LiveProgress(pipe, 2, () => 'rate 5/s', 20);
    progress.start();
    progress.record({ requests: 3, failure: undefined, latencyMs: 12 });
    await new Promise((r) => setTimeout(r, 80));
    progress.stop();
    expect(pipe.text()).toBe('');
  });

  it('the loadtest command draws it on a terminal (stderr with --json), never on the JSON stream', async () => {
    const sim = await startSimulator({ port: 0 });
    try {
      const [stdout, stderr] = [stream(true), stream(true)];
      await runLoadtestCommand(['--target', sim.url, '--rate', '20', '--duration', '1.3', '--json'], { stdout, stderr });
      expect(stderr.text()).toMatch(/\r\x1b\[2K1\/1\.3 s {3}rate 20\/s {3}completed \d+\/s/);
      expect(() => JSON.parse(stdout.text())).not.toThrow();
    } finally {
      await sim.close();
    }
  });
});
