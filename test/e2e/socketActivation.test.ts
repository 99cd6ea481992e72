import { spawn, spawnSync } from 'node:child_process';
import { existsSync, openSync, closeSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { CLI } from '../support/cliProcess.js';
import { rawHttpClientPool } from '../support/rawHttpClient.js';
import { startSocketActivator } from '../support/socketActivator.js';
import { freeLoopbackPort } from '../support/ports.js';

/**
 * `serve` on sockets passed the systemd way: by systemd's own systemd-socket-activate, and by
 * a test holding the socket across two lifetimes (test/support/socketActivator.ts). Bad
 * hand-overs are refused at start with one line; a good one drains into the next process.
 */

const ROLE = 'activated-role';
const CREDS = `/latest/meta-data/iam/security-credentials/${ROLE}`;
const HAS_SOCKET_ACTIVATE = spawnSync('systemd-socket-activate', ['--version'], { stdio: 'ignore' }).status === 0;
const SKIP_SOCKET_ACTIVATE = 'systemd-socket-activate not installed (apt-get install systemd); CI installs it';

let dir: string;
let sim: RunningSimulator;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'imds-activation-'));
  sim = await startSimulator({ port: 0, roles: [ROLE] });
});
afterAll(async () => {
  await sim?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


async function token(url: string): Promise<string> {
  const res = await fetch(`${url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } });
  expect(res.status).toBe(200);
  return res.text();
}

/**
 * Runs `serve ARGS` with `fd` as its fd 3 and LISTEN_FDS=1, LISTEN_PID set to its own pid (a
 * shell sets it, then execs node); resolves with its exit code and output.
 */
function serveWithFd(fd: number, names: string | undefined, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('sh', ['-c', 'LISTEN_PID=$$ exec "$@"', 'sh', process.execPath, CLI, 'serve', ...args], {
    env: { PATH: process.env.PATH ?? '', LISTEN_FDS: '1', ...(names ? { LISTEN_FDNAMES: names } : {}) },
    stdio: ['ignore', 'pipe', 'pipe', fd],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    }),
  );
}

/** A listening socket in this process, for tests in which no client connects. */
async function listeningSocket(): Promise<{ server: Server; fd: number; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  return { server, fd, port: (server.address() as AddressInfo).port };
}

describe('serve on inherited sockets', () => {
  it.skipIf(!HAS_SOCKET_ACTIVATE)(
    `systemd-socket-activate: the "imds" and "metrics" sockets by name; the connection that started it is answered${HAS_SOCKET_ACTIVATE ? '' : ` — skipped: ${SKIP_SOCKET_ACTIVATE}`}`,
    async () => {
      const [imdsPort, metricsPort] = [await freeLoopbackPort(), await freeLoopbackPort()];
      const child = spawn(
        'systemd-socket-activate',
        ['-l', `127.0.0.1:${imdsPort}`, '-l', `127.0.0.1:${metricsPort}`, '--fdname=imds:metrics', process.execPath, CLI, 'serve',
          '--listen', `127.0.0.1:${imdsPort}`, '--metrics-listen', `127.0.0.1:${metricsPort}`, '--upstream', sim.url],
        { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      try {
        // systemd-socket-activate starts the proxy when this first connection arrives; it waits meanwhile.
        let listening = false;
        for (let i = 0; i < 100 && !listening; i++) {
          listening = await new Promise<boolean>((resolve) => {
            const s = connect(imdsPort, '127.0.0.1', () => (s.destroy(), resolve(true)));
            s.on('error', () => resolve(false));
          });
          if (!listening) await sleep(50);
        }
        const url = `http://127.0.0.1:${imdsPort}`;
        const t = await token(url);
        const creds = await fetch(`${url}${CREDS}`, { headers: { 'x-aws-ec2-metadata-token': t } });
        expect(creds.status).toBe(200);
        expect(((await creds.json()) as { AccessKeyId: string }).AccessKeyId).toBe(sim.currentCredentials(ROLE)!.accessKeyId);
        const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
        expect(metrics.status).toBe(200);
        expect(await metrics.text()).toContain('imds_proxy_');
        const started = stdout.split('\n').find((l) => l.includes('"event":"started"'));
        expect(JSON.parse(started!)).toMatchObject({ listen: url, inheritedSockets: ['imds', 'metrics'] });
      } finally {
        child.kill('SIGTERM');
      }
      expect(await exited).toBe(0);
    },
    30_000,
  );

  it('an inherited socket bound elsewhere than --listen: refused at start, one line naming both, exit 2', async () => {
    const { server, fd, port } = await listeningSocket();
    try {
      const other = port === 65535 ? port - 1 : port + 1;
      const run = await serveWithFd(fd, 'imds', ['--listen', `127.0.0.1:${other}`, '--upstream', sim.url]);
      expect(run.code).toBe(2);
      expect(run.stderr).toBe(
        `imds-cache-proxy: the inherited socket "imds" (fd 3) listens on 127.0.0.1:${port}, but --listen is 127.0.0.1:${other}: make the socket unit's ListenStream= and --listen agree\n`,
      );
      expect(run.stdout).not.toContain('"event":"started"');
    } finally {
      server.close();
    }
  });

  it('a "metrics" socket with no metrics listener configured: refused, exit 2', async () => {
    const { server, fd } = await listeningSocket();
    try {
      const run = await serveWithFd(fd, 'metrics', ['--listen', '127.0.0.1:0', '--upstream', sim.url]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/^imds-cache-proxy: the inherited socket "metrics" \(fd 3\) is for metrics, but no metrics listener is configured: set --metrics-listen/);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      server.close();
    }
  });

  it('fd 3 that is not a listening TCP socket (a file): refused, exit 2', async () => {
    const file = join(dir, 'not-a-socket');
    writeFileSync(file, '');
    const fd = openSync(file, 'r');
    try {
      const run = await serveWithFd(fd, undefined, ['--listen', '127.0.0.1:8169', '--upstream', sim.url]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/^imds-cache-proxy: the inherited socket "imds" \(fd 3\): cannot listen on it \(\w+\): is it a TCP socket\?\n$/);
    } finally {
      closeSync(fd);
    }
  });

  it('a stopping process serves new connections until its keep-alive clients are gone; what comes next waits in the queue and the next process answers it, old token and all, from the warm-start file before any IMDS call', async () => {
    const activator = await startSocketActivator(dir);
    try {
      const cacheFile = join(dir, 'handover.json');
      const args = ['--listen', `127.0.0.1:${activator.port}`, '--upstream', sim.url, '--cache-file', cacheFile];
      const first = await activator.start(args);
      await first.event('ready');
      for (let i = 0; i < 300 && !existsSync(cacheFile); i++) await sleep(10);
      expect(existsSync(cacheFile)).toBe(true);

      // A raw keep-alive client: answered once, then idle (it ignores Keep-Alive: timeout=).
      const idle = rawClient(activator.port);
      idle.send('PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' });
      await idle.answers(1);

      process.kill(first.pid, 'SIGTERM');
      await first.event('stopping');
      // The old process still accepts: a new connection is answered, and told to close.
      const during = rawClient(activator.port);
      during.send('PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' });
      await during.answers(1);
      expect(during.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(during.received()).toMatch(/\r\nConnection: close\r\n/i);
      let exitedYet = false;
      void first.exited.then(() => (exitedYet = true));
      expect(exitedYet).toBe(false);

      // Once the idle connection has been closed by the keep-alive timer (cleanly), it exits.
      expect(await first.exited).toBe(0);
      expect(await idle.endedHow()).toBe('end');

      // No process now: a connection still succeeds (systemd's socket), and its request waits.
      // It uses the token the old process issued: the key beside the cache file carries it over.
      const oldToken = idle.bodies()[0]!;
      const upstreamBefore = sim.counters().total;
      const queued = rawClient(activator.port);
      await queued.connected;
      queued.send('GET', '/latest/meta-data/iam/security-credentials/', { 'x-aws-ec2-metadata-token': oldToken });
      await sleep(200);
      expect(queued.received()).toBe('');

      const second = await activator.start(args);
      await queued.answers(1);
      expect(queued.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(queued.bodies()[0]).toBe(ROLE);
      queued.send('GET', CREDS, { 'x-aws-ec2-metadata-token': oldToken });
      await queued.answers(2);
      expect(JSON.parse(queued.bodies()[1]!)).toMatchObject({ Code: 'Success', AccessKeyId: sim.currentCredentials(ROLE)!.accessKeyId });
      // Answered without the new process asking IMDS anything.
      expect(sim.counters().total).toBe(upstreamBefore);
      expect(await second.event('warm_start_loaded')).toMatchObject({ roles: [ROLE] });
      raw.destroyAll();
      process.kill(second.pid, 'SIGTERM');
      expect(await second.exited).toBe(0);
    } finally {
      await activator.close();
    }
  }, 30_000);
});

const raw = rawHttpClientPool();
afterEach(() => raw.destroyAll());
const rawClient = (port: number) => raw.open(port);
