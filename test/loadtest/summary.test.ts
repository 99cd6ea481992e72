import { describe, expect, it } from 'vitest';
import { LoadRecorder, percentile } from '../../src/loadtest/summary.js';
import { formatTable } from '../../src/loadtest/report.js';
import { parseLoadtestArgs } from '../../src/commands/loadtest.js';
import { UsageError } from '../../src/config/usageError.js';

describe('load summary', () => {
  it('an empty run summarizes to zeros, not NaN', () => {
    const s = new LoadRecorder().summarize(0);
    expect(Object.values(s).every((v) => v === 0)).toBe(true);
  });

  it('percentiles from unsorted arrivals, numerically ordered', () => {
    const r = new LoadRecorder();
    for (const ms of [900, 5, 80, 1000, 7, 60, 3, 2, 40, 10]) r.record({ requests: 1, failure: undefined, latencyMs: ms });
    expect(r.summarize(1)).toMatchObject({ p50_ms: 10, p90_ms: 900, p99_ms: 1000, max_ms: 1000 });
  });

  it('nearest-rank percentiles', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([percentile(sorted, 50), percentile(sorted, 90), percentile(sorted, 99), percentile(sorted, 100)]).toEqual([50, 90, 99, 100]);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBe(0);
  });

  it('counts every fetch once, by outcome, and every request', () => {
    const r = new LoadRecorder();
    for (let i = 0; i < 2000; i++) r.record({ requests: 3, failure: undefined, latencyMs: i % 10 });
    r.record({ requests: 1, failure: 'timeout', latencyMs: 1000 });
    r.record({ requests: 2, failure: 'throttled', latencyMs: 5 });
    r.record({ requests: 3, failure: 'http_error', latencyMs: 5 });
    r.record({ requests: 1, failure: 'connection_error', latencyMs: 1 });
    r.record({ requests: 3, failure: 'bad_document', latencyMs: 2 });
    const s = r.summarize(2);
    expect(s).toMatchObject({
      fetches: 2005,
      completed: 2000,
      failed: 5,
      timeouts: 1,
      throttled: 1,
      http_errors: 1,
      connection_errors: 1,
      bad_documents: 1,
      requests: 6010,
      max_ms: 1000,
      rate_per_s: 1000,
    });
  });

  it('an arrival that never started is a failed fetch with no latency and no request', () => {
    const r = new LoadRecorder();
    r.record({ requests: 3, failure: undefined, latencyMs: 40 });
    r.record({ requests: 0, failure: 'not_started', latencyMs: 0 });
    r.record({ requests: 0, failure: 'not_started', latencyMs: 0 });
    expect(r.summarize(1)).toMatchObject({ fetches: 3, completed: 1, failed: 2, not_started: 2, requests: 3, p50_ms: 40, max_ms: 40 });
  });

  it('formats an aligned table', () => {
    expect(formatTable(['', 'a', 'bb'], [['x', 1, 22], ['longer', 333, 4]]).split('\n')).toEqual([
      '           a   bb',
      '------   ---   --',
      'x          1   22',
      'longer   333    4',
    ]);
  });
});

describe('loadtest flags', () => {
  const bad = (argv: string[]) => {
    try {
      parseLoadtestArgs(argv);
    } catch (error) {
      if (error instanceof UsageError) return error.message;
      throw error;
    }
    throw new Error('expected a UsageError');
  };
  it('refuses targets that are not loopback, naming why', () => {
    expect(bad(['--target', 'http://169.254.169.254'])).toMatch(/^--target: .*not a loopback address/);
    expect(bad(['--target', 'http://10.1.2.3:8169'])).toMatch(/not a loopback/);
  });
  it('names bad flags and values', () => {
    expect(bad([])).toMatch(/^--target: required/);
    expect(bad(['--target', 'http://127.0.0.1:1', '--clients', '0'])).toMatch(/^--clients: .*"0"$/);
    expect(bad(['--target', 'http://127.0.0.1:1', '--duration', 'ten'])).toMatch(/^--duration: .*"ten"$/);
    expect(bad(['--target', 'nonsense'])).toMatch(/^--target: /);
    expect(bad(['--target', 'https://127.0.0.1:1'])).toMatch(/^--target: .*http:\/\//);
    expect(bad(['--target', 'http://127.0.0.1:1', '--timeout-ms', '1.5'])).toMatch(/^--timeout-ms: .*"1.5"$/);
    expect(bad(['--target', 'http://127.0.0.1:1', '--requests', '-3'])).toMatch(/--requests/);
    expect(bad(['--target', 'http://127.0.0.1:1', '--bogus'])).toMatch(/--bogus/);
  });
  it('names conflicting or bad load shapes', () => {
    const t = ['--target', 'http://127.0.0.1:1'];
    expect(bad([...t, '--rate', '10', '--clients', '5'])).toMatch(/^--clients: /);
    expect(bad([...t, '--rate', '10', '--ramp', '1:2'])).toMatch(/^--ramp: .*not both/);
    expect(bad([...t, '--steps', '5'])).toMatch(/^--steps: goes with --ramp/);
    expect(bad([...t, '--max-clients', '5'])).toMatch(/^--max-clients: /);
    expect(bad([...t, '--rate', '0'])).toMatch(/^--rate: .*"0"$/);
    expect(bad([...t, '--rate', 'fast'])).toMatch(/^--rate: .*"fast"$/);
    expect(bad([...t, '--rate', '1e3'])).toMatch(/^--rate: /);
    expect(bad([...t, '--ramp', '50'])).toMatch(/^--ramp: expected FROM:TO/);
    expect(bad([...t, '--ramp', '50:10'])).toMatch(/^--ramp: FROM must be below TO/);
    expect(bad([...t, '--ramp', '10:x'])).toMatch(/^--ramp: .*"10:x"$/);
    expect(bad([...t, '--ramp', '10:20', '--steps', '1'])).toMatch(/^--steps: .*"1"$/);
    expect(bad([...t, '--ramp', '10:20', '--steps', '50', '--duration', '2'])).toMatch(/^--steps: 50 steps over 2 s/);
    expect(bad([...t, '--rate', '5', '--max-clients', '0'])).toMatch(/^--max-clients: .*"0"$/);
    expect(bad([...t, '--duration', '0'])).toMatch(/^--duration: /);
    expect(bad([...t, '--report', '/no/such/dir/r.html'])).toMatch(/^--report: no such directory/);
  });
  it('turns --rate and --ramp into open-loop arrivals', () => {
    const t = ['--target', 'http://127.0.0.1:1'];
    expect(parseLoadtestArgs([...t, '--rate', '12.5']).options.arrivals).toEqual({ ratesPerS: [12.5], maxClients: 1000 });
    const ramp = parseLoadtestArgs([...t, '--ramp', '10:50', '--steps', '5', '--max-clients', '7', '--duration', '2.5']).options;
    expect(ramp).toMatchObject({ arrivals: { ratesPerS: [10, 20, 30, 40, 50], maxClients: 7 }, durationSeconds: 2.5 });
    expect(parseLoadtestArgs([...t, '--ramp', '1:10']).options.arrivals?.ratesPerS).toHaveLength(10);
    expect(parseLoadtestArgs(t).options).toMatchObject({ clients: 50, durationSeconds: 10 });
    expect(parseLoadtestArgs(t).options.arrivals).toBeUndefined();
  });
  it('lets --allow-remote-target through, and nothing else does', () => {
    expect(bad(['--target', 'http://0.0.0.0:8169'])).toMatch(/not a loopback/);
    expect(bad(['--target', 'http://[fd00:ec2::254]'])).toMatch(/not a loopback/);
    expect(parseLoadtestArgs(['--target', 'http://10.1.2.3:8169', '--allow-remote-target']).options.target).toBe('http://10.1.2.3:8169');
  });
  it('accepts loopback in every spelling', () => {
    for (const target of ['http://127.0.0.1:8169', 'http://localhost:8169', 'http://[::1]:8169']) {
      expect(parseLoadtestArgs(['--target', target]).options.target).toBe(target);
    }
  });
});
