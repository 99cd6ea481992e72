import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cliProcess.js';

describe('imds-cache-proxy command line', () => {
  it('prints its version', async () => {
    const run = runCli(['--version']);
    expect(await run.exited).toBe(0);
    expect(run.stdout().trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('answers a bad flag or value with one line naming it, and exit code 2', async () => {
    for (const [args, env, needle] of [
      [['serve', '--max-age', 'soon'], {}, '--max-age'],
      [['serve', '--listen', '127.0.0.1'], {}, '--listen'],
      [['serve', '--frobnicate'], {}, '--frobnicate'],
      [['serve'], { IMDS_PROXY_CLIENT_TOKENS: 'sometimes' }, 'IMDS_PROXY_CLIENT_TOKENS'],
      [['launch-missiles'], {}, 'launch-missiles'],
    ] as const) {
      const run = runCli([...args], { ...env });
      expect(await run.exited, args.join(' ')).toBe(2);
      const lines = run.stderr().trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(needle);
      expect(lines[0]).toContain('imds-cache-proxy:');
    }
  });

  it('serve: starts, answers, and on SIGTERM drains and exits 0 within 5 s', async () => {
    // Upstream on a closed loopback port: the proxy runs (not ready) without it.
    const run = runCli(['serve', '--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9', '--upstream-attempts', '1']);
    const started = await run.event('started');
    const url = String(started.listen);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(503);
    const t0 = Date.now();
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    await run.event('stopped', 100);
  });

  it('serve: SIGINT works the same', async () => {
    const run = runCli(['serve', '--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9']);
    await run.event('started');
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
  });
});
