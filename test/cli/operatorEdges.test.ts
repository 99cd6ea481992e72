import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { TOKEN_FILE_RECHECK_MS } from '../../src/tokens/containerAuthTokenFile.js';
import { runCli } from '../support/cliProcess.js';

// What an operator meets starting `serve` for real: the container token file under a
// running proxy, and the start-up refusals that name what to change.

let sim: RunningSimulator;
let dir: string;
beforeAll(async () => {
  sim = await startSimulator({ port: 0, controlPort: 0 });
  dir = mkdtempSync(join(tmpdir(), 'imds-operator-'));
});
afterAll(async () => {
  await sim.close();
  rmSync(dir, { recursive: true, force: true });
});

const containerCredentials = (url: string, authorization: string) =>
  fetch(`${url}/container-credentials`, { headers: { authorization } }).then((r) => r.status);

describe('serve with a container auth token file', () => {
  it('creates a missing file (0600, no newline) and serves behind it; a rotated file takes over within the recheck interval', async () => {
    const path = join(dir, 'token');
    const run = runCli(['serve', '--listen', '127.0.0.1:0', '--upstream', sim.url], { IMDS_PROXY_CONTAINER_AUTH_TOKEN_FILE: path });
    try {
      const url = String((await run.event('started')).listen);
      await run.event('container_auth_token_created', 100);
      const first = readFileSync(path, 'utf8');
      expect(first).toMatch(/^[0-9a-f]{64}$/);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(await containerCredentials(url, first)).toBe(200);
      expect(await containerCredentials(url, 'not-the-token-0123456789')).toBe(401);

      // Rotated by rename, and nobody presents the new token: the old one is refused at the
      // latest one recheck interval after the rotation.
      const second = 'rotated-token-0123456789abcdef';
      writeFileSync(`${path}.new`, second);
      renameSync(`${path}.new`, path);
      const rotatedAt = Date.now();
      let oldStatus = await containerCredentials(url, first);
      while (oldStatus === 200 && Date.now() - rotatedAt < TOKEN_FILE_RECHECK_MS + 2_000) {
        await new Promise((r) => setTimeout(r, 50));
        oldStatus = await containerCredentials(url, first);
      }
      expect(oldStatus).toBe(401);
      expect(Date.now() - rotatedAt).toBeLessThan(TOKEN_FILE_RECHECK_MS + 2_000);
      expect(await containerCredentials(url, second)).toBe(200);

      // Rewritten in place: the new token works on its first request.
      const third = 'third-token-0123456789abcdef';
      writeFileSync(path, third);
      expect(await containerCredentials(url, third)).toBe(200);
      expect(await containerCredentials(url, second)).toBe(401);
      for (const token of [first, second, third]) expect(run.stdout() + run.stderr()).not.toContain(token);
    } finally {
      run.child.kill('SIGTERM');
      expect(await run.exited).toBe(0);
    }
  });

  it('warns on stderr at start when the file ends in a newline, and names the fix', async () => {
    const path = join(dir, 'newline-token');
    writeFileSync(path, 'token-with-a-newline-0123456789\n');
    const run = runCli(['serve', '--listen', '127.0.0.1:0', '--upstream', sim.url, '--container-auth-token-file', path]);
    try {
      await run.event('container_auth_token_newline');
      // stdout and stderr are separate pipes: the log line may arrive before the warning.
      const warning = /WARNING: .*ends in a newline.*printf '%s'/;
      for (let waited = 0; !warning.test(run.stderr()) && waited < 5_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
      expect(run.stderr()).toMatch(warning);
    } finally {
      run.child.kill('SIGTERM');
      await run.exited;
    }
  });
});

it('serve --help says what the metrics listener serves, and that --metrics off refuses it', async () => {
  const run = runCli(['serve', '--help']);
  expect(await run.exited).toBe(0);
  const line = run.stdout().split('\n').find((l) => l.startsWith('  --metrics-listen '));
  expect(line).toContain('/metrics and /healthz (nothing else)');
  expect(line).toContain('refused with --metrics off');
});

describe('serve refuses at start, exit 2, naming what to change', () => {
  it.each([
    [[], { IMDS_PROXY_CONTAINER_AUTH_TOKEN_FILE: '/nonexistent-dir/token' }, /^imds-cache-proxy: IMDS_PROXY_CONTAINER_AUTH_TOKEN_FILE: cannot create "\/nonexistent-dir\/token"/],
    [['--container-auth-token-file', '/nonexistent-dir/token'], {}, /^imds-cache-proxy: --container-auth-token-file: cannot create/],
    [['--metrics-listen', '127.0.0.1:0', '--metrics', 'off'], {}, /^imds-cache-proxy: --metrics-listen: a metrics listener with --metrics off would serve nothing/],
    [[], { IMDS_PROXY_METRICS_LISTEN: '127.0.0.1:0', IMDS_PROXY_METRICS: 'off' }, /^imds-cache-proxy: IMDS_PROXY_METRICS_LISTEN: a metrics listener with IMDS_PROXY_METRICS off/],
  ] as const)('%j %j', async (args, env, message) => {
    const run = runCli(['serve', '--listen', '127.0.0.1:0', '--upstream', sim.url, ...args], { ...env });
    expect(await run.exited).toBe(2);
    const lines = run.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
  });
});
