import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { startSocketActivator, type SocketActivator } from '../support/socketActivator.js';

/**
 * With the listening socket inherited from systemd, the drain stops accepting as
 * soon as no connection promised keep-alive is left, but the process then lives on until every
 * other connection has ended, up to the 4 s deadline. One connection that has not sent its
 * request yet (a slow client, a TCP health check) is enough: for those seconds new connections
 * wait in the queue of a socket nobody accepts on (systemd starts the next process only once
 * this one has exited), so a fresh SDK process with a 1 s timeout fails, though the draining
 * process is alive, warm, and could have answered it (docs/restarts.md: "connections are served
 * during the drain rather than queued for all of it").
 */
const ROLE = 'drain-role';
let dir: string;
let sim: RunningSimulator;
let activator: SocketActivator;
const sockets: Socket[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'review-inherited-drain-'));
  sim = await startSimulator({ port: 0, roles: [ROLE] });
  activator = await startSocketActivator(dir);
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await activator.close();
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

/** A token PUT on a new connection, Connection: close; resolves with the status and how long it took. */
function freshTokenRequest(port: number, timeoutMs: number): Promise<{ status: number | undefined; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    let data = '';
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      const match = /^HTTP\/1\.1 (\d{3})/.exec(data);
      resolve({ status: match ? Number(match[1]) : undefined, ms: Date.now() - started });
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on('data', (chunk) => (data += chunk));
    socket.on('close', done);
    socket.on('error', done);
    socket.write('PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nConnection: close\r\n\r\n');
  });
}

describe('a drain on an inherited socket', () => {
  it('answers a new connection within 1 s while one silent connection keeps the old process alive', { timeout: 40_000 }, async () => {
    const args = ['--listen', `127.0.0.1:${activator.port}`, '--upstream', sim.url, '--log-level', 'info'];
    const first = await activator.start(args);
    await first.event('ready', 15_000);
    expect((await freshTokenRequest(activator.port, 5_000)).status).toBe(200);

    // A client that has connected and not yet sent anything.
    const silent = connect(activator.port, '127.0.0.1');
    sockets.push(silent);
    await new Promise<void>((resolve) => silent.once('connect', () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 200));

    process.kill(first.pid, 'SIGTERM');
    // systemd's part: the next process starts once this one has exited.
    void first.exited.then(() => activator.start(args));
    await first.event('stopping', 5_000);
    await new Promise((resolve) => setTimeout(resolve, 200));

    const during = await freshTokenRequest(activator.port, 10_000);
    expect(during.status).toBe(200);
    expect(during.ms).toBeLessThan(1_000);
  });
});
