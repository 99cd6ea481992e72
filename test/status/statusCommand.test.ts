import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnServe, type ServeProcess } from '../../src/child/serveProcess.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { ROUTE_LABELS } from '../../src/metrics/names.js';
import { CLI, runCli } from '../support/cliProcess.js';
import { sampleValue } from '../support/exposition.js';
import { freeLoopbackPort } from '../support/ports.js';

/**
 * `status` against real `serve` processes on loopback: a ready one, one whose IMDS is down
 * from the start, and a port nobody listens on. Exit codes are the contract a health check
 * relies on: 0 ready, 1 not ready, 2 bad usage, 3 not reachable.
 */

const ROLE = 'status-role';
let sim: RunningSimulator;
let downSim: RunningSimulator;
let ready: ServeProcess;
let notReady: ServeProcess;

beforeAll(async () => {
  sim = await startSimulator({ port: 0, roles: [ROLE] });
  downSim = await startSimulator({ port: 0, roles: [ROLE], faults: { down: true } });
  [ready, notReady] = await Promise.all([
    spawnServe(sim.url, [], 'ready'),
    spawnServe(downSim.url, ['--upstream-timeout-ms', '200', '--upstream-attempts', '1'], 'started'),
  ]);
}, 20_000);

afterAll(async () => {
  await Promise.all([ready?.close(), notReady?.close()]);
  await Promise.all([sim?.close(), downSim?.close()]);
});

async function status(args: string[], env: Record<string, string> = {}) {
  const run = runCli(['status', ...args], env);
  const code = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

describe('imds-cache-proxy status', () => {
  it('shows a ready proxy: its role, key id suffix, expiry, rates; exit 0; no secret printed', async () => {
    const token = await fetch(`${ready.url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } });
    expect(token.status).toBe(200);
    const result = await status(['--endpoint', ready.url]);
    const credentials = sim.currentCredentials(ROLE)!;
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^imds-cache-proxy \\S+ at ${ready.url.replaceAll('.', '\\.')}: READY\\n`));
    expect(result.stdout).toMatch(new RegExp(`${ROLE}\\s+${credentials.accessKeyId.slice(-4)}\\s+5h 5\\dm\\s+\\d+s ago`));
    // Since start: what the proxy's own /metrics says, summed over routes (no refresh is due meanwhile).
    const scrape = await (await fetch(`${ready.url}/metrics`)).text();
    const successes = ROUTE_LABELS.reduce((sum, route) => sum + sampleValue(scrape, 'imds_proxy_upstream_requests_total', { route, outcome: 'success' }), 0);
    expect(successes).toBeGreaterThanOrEqual(2);
    expect(result.stdout).toMatch(new RegExp(`success\\s+\\d+\\.\\d\\d/s\\s+\\(${successes}\\)`));
    expect(result.stdout).toMatch(/tokens issued\s+\S+\s+\(1 since start\)/);
    expect(result.stdout).not.toContain(credentials.secretAccessKey);
    expect(result.stdout).not.toContain(credentials.token);
    expect(result.stdout).not.toContain(credentials.accessKeyId);
  });

  it('--json gives scripts the same view, read from IMDS_PROXY_LISTEN as serve reads it', async () => {
    const port = new URL(ready.url).port;
    const result = await status(['--json'], { IMDS_PROXY_LISTEN: `0.0.0.0:${port}` });
    expect(result.code).toBe(0);
    const view = JSON.parse(result.stdout) as Record<string, unknown> & { roles: { role: string; accessKeyIdSuffix: string; expiresInSeconds: number }[] };
    expect(view).toMatchObject({ endpoint: `http://127.0.0.1:${port}`, reachable: true, ready: true, readiness: 'ready', problems: [], exitCode: 0 });
    expect(view.roles).toHaveLength(1);
    expect(view.roles[0]).toMatchObject({ role: ROLE, accessKeyIdSuffix: sim.currentCredentials(ROLE)!.accessKeyId.slice(-4) });
    expect(view.roles[0]!.expiresInSeconds).toBeGreaterThan(5 * 3600);
  });

  it('a proxy whose IMDS is down is not ready, says why, and exits 1', async () => {
    const result = await status(['--endpoint', notReady.url]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('NOT READY: no valid credentials cached yet');
    expect(result.stdout).toContain('(no credentials cached)');
    const json = await status(['--endpoint', notReady.url, '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ready: false, exitCode: 1 });
  });

  it('nothing listening: exit 3 with the reason, in text and JSON', async () => {
    const endpoint = `http://127.0.0.1:${await freeLoopbackPort()}`;
    const text = await status(['--endpoint', endpoint]);
    expect(text.code).toBe(3);
    expect(text.stdout).toBe(`imds-cache-proxy at ${endpoint}: NOT REACHABLE: GET /readyz: connection failed (ECONNREFUSED)\n`);
    const json = await status(['--endpoint', endpoint, '--json']);
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toEqual({ endpoint, reachable: false, error: 'GET /readyz: connection failed (ECONNREFUSED)', exitCode: 3 });
  });

  it('a port that accepts and never answers, or a server that is not the proxy: exit 3, saying which', async () => {
    const sockets = new Set<Socket>();
    const silent = createNetServer((socket) => sockets.add(socket));
    const other = createHttpServer((_req, res) => res.writeHead(404).end('not here'));
    await Promise.all([silent, other].map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))));
    try {
      const hung = await status(['--endpoint', `http://127.0.0.1:${(silent.address() as AddressInfo).port}`]);
      expect(hung.code).toBe(3);
      expect(hung.stdout).toContain('NOT REACHABLE: GET /readyz: no complete answer within 2000 ms');
      const notProxy = await status(['--endpoint', `http://127.0.0.1:${(other.address() as AddressInfo).port}`]);
      expect(notProxy.code).toBe(3);
      expect(notProxy.stdout).toContain('GET /readyz answered 404, not 200 or 503');
    } finally {
      for (const socket of sockets) socket.destroy();
      other.closeAllConnections();
      await Promise.all([silent, other].map((server) => new Promise((resolve) => server.close(resolve))));
    }
  });

  it('bad flags and values: one line naming them, exit 2', async () => {
    for (const [args, env, message] of [
      [['--bogus'], {}, "Unknown option '--bogus'"],
      [['--endpoint', 'ftp://127.0.0.1:1'], {}, '--endpoint: expected http://HOST:PORT, got "ftp://127.0.0.1:1"'],
      [['--endpoint', 'http://127.0.0.1:1/metrics'], {}, '--endpoint: expected http://HOST:PORT'],
      [['extra'], {}, 'Unexpected argument'],
      [[], { IMDS_PROXY_LISTEN: 'nowhere' }, 'IMDS_PROXY_LISTEN: expected HOST:PORT or [IPv6]:PORT, got "nowhere"'],
    ] as const) {
      const result = await status([...args], { ...env });
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(result.stderr).toContain(message);
    }
  });

  it('--watch redraws every second until Ctrl-C, without ANSI codes when stdout is not a terminal', async () => {
    const run = runCli(['status', '--watch', '--endpoint', ready.url]);
    const deadline = Date.now() + 10_000;
    while ((run.stdout().match(/: READY\n/g) ?? []).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    expect((run.stdout().match(/: READY\n/g) ?? []).length).toBeGreaterThanOrEqual(2);
    expect(run.stdout()).not.toContain('\x1b');

    const json = runCli(['status', '--watch', '--json', '--endpoint', notReady.url]);
    while (json.stdout().split('\n').filter(Boolean).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    json.child.kill('SIGTERM');
    expect(await json.exited).toBe(1);
    const lines = json.stdout().trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ ready: false });
  }, 15_000);

  it.skipIf(!existsSync('/usr/bin/script'))('--watch on a terminal clears the screen before each frame', async () => {
    // script(1) gives the CLI a pseudo-terminal; timeout(1) sends the Ctrl-C.
    const command = `timeout -s INT 2.6 ${process.execPath} ${CLI} status --watch --endpoint ${ready.url}`;
    const run = spawnSync('/usr/bin/script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 10_000, env: { PATH: process.env.PATH ?? '' } });
    const frames = run.stdout.split('\x1b[H\x1b[2J').slice(1);
    expect(frames.length).toBeGreaterThanOrEqual(1);
    for (const frame of frames) expect(frame).toMatch(/^imds-cache-proxy \S+ at .*: READY\r?\n/);
  }, 15_000);
});
