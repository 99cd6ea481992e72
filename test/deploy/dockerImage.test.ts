import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { freeLoopbackPort } from '../support/ports.js';

// deploy/docker/Dockerfile built and run for real, where a container engine answers: a Docker
// daemon, or podman (which needs none). Elsewhere the suite is skipped and its name says why.
// The containers use the host network and talk only to a simulator this test starts on
// 127.0.0.1; they are removed at the end whatever happens.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string }).version;

function detectEngine(): { engine?: 'docker' | 'podman'; why: string } {
  const docker = spawnSync('docker', ['version', '--format', '{{.Server.Version}}'], { encoding: 'utf8', timeout: 15_000 });
  if (docker.status === 0) return { engine: 'docker', why: '' };
  const podman = spawnSync('podman', ['version'], { encoding: 'utf8', timeout: 15_000 });
  if (podman.status === 0) return { engine: 'podman', why: '' };
  const dockerWhy = docker.error ? 'no docker CLI' : `docker: ${(docker.stderr || docker.stdout).trim().split('\n')[0]}`;
  return { why: `no container engine here (${dockerWhy}; ${podman.error ? 'no podman' : 'podman failed'})` };
}
const { engine, why } = detectEngine();
if (engine === undefined) process.stderr.write(`test/deploy/dockerImage.test.ts skipped: ${why}\n`);

const TAG = `imds-cache-proxy:test-${process.pid}`;
const REDIRECT_TAG = `imds-cache-proxy-redirect:test-${process.pid}`;
const CONTAINER = `imds-cache-proxy-test-${process.pid}`;

function run(args: string[], timeout = 60_000) {
  const r = spawnSync(engine!, args, { cwd: ROOT, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}
function build(extra: string[]) {
  // podman's default OCI format has no HEALTHCHECK; --format docker keeps it.
  const format = engine === 'podman' ? ['--format', 'docker'] : [];
  const r = run(['build', ...format, '-f', 'deploy/docker/Dockerfile', ...extra, '.'], 900_000);
  expect(r.status, r.stderr.slice(-3000)).toBe(0);
}
async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await Promise.resolve().then(probe).catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe.skipIf(engine === undefined)(`the container image, built and run${engine ? ` with ${engine}` : ` — skipped: ${why}`}`, () => {
  let sim: RunningSimulator;
  beforeAll(async () => {
    build(['-t', TAG]);
    build(['--target', 'redirect', '-t', REDIRECT_TAG]);
    sim = await startSimulator({ port: 0, controlPort: 0 });
  }, 1_800_000);
  afterAll(async () => {
    run(['rm', '-f', CONTAINER]);
    run(['rmi', '-f', TAG, REDIRECT_TAG]);
    await sim?.close();
  }, 120_000);

  it('runs the CLI as uid 1000, with production dependencies only and no sources', () => {
    expect(run(['run', '--rm', TAG, '--version']).stdout.trim()).toBe(VERSION);
    const inside = run(['run', '--rm', '--entrypoint', 'sh', TAG, '-c', 'id -u; for p in node_modules/vitest node_modules/typescript src test; do test ! -e "/app/$p" || echo "found $p"; done']);
    expect(inside.status, inside.stderr).toBe(0);
    expect(inside.stdout.trim().split('\n')).toEqual(['1000']);
  });

  it('keeps its HEALTHCHECK in the built image', () => {
    const inspected = run(['image', 'inspect', TAG]);
    expect(inspected.status, inspected.stderr).toBe(0);
    expect(inspected.stdout).toContain('"status"');
  });

  it('the redirect image run bare prints its usage and exits 0', () => {
    const r = run(['run', '--rm', REDIRECT_TAG]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('imds-redirect.sh install|remove|print');
  });

  it('read-only, no capabilities: serves credentials, turns healthy, and stops cleanly on SIGTERM', async () => {
    const port = await freeLoopbackPort();
    const started = run([
      'run', '-d', '--name', CONTAINER, '--network', 'host',
      '--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
      '--health-interval', '1s', '--health-start-period', '0s',
      '-e', `IMDS_PROXY_LISTEN=127.0.0.1:${port}`, '-e', `IMDS_PROXY_UPSTREAM=${sim.url}`,
      TAG,
    ]);
    expect(started.status, started.stderr).toBe(0);
    const url = `http://127.0.0.1:${port}`;
    await until('/readyz 200', async () => ((await fetch(`${url}/readyz`)).status === 200 ? true : undefined), 30_000);
    if (engine === 'podman') {
      // podman runs health checks from systemd timers, absent in many CI containers: run one.
      expect(run(['healthcheck', 'run', CONTAINER]).status).toBe(0);
    } else {
      await until('healthy', () => (/"Status":"healthy"/.test(run(['inspect', '--format', '{{json .State.Health}}', CONTAINER]).stdout) ? true : undefined), 30_000);
    }
    expect(run(['stop', '-t', '10', CONTAINER]).status).toBe(0);
    expect(run(['inspect', '--format', '{{.State.ExitCode}}', CONTAINER]).stdout.trim()).toBe('0');
  }, 120_000);
});
