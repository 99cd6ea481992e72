import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { boundPort, closeGracefully, KEEP_ALIVE_MS, listen } from '../../src/server/httpServer.js';
import { rawHttpClientPool, type RawHttpClient } from '../support/rawHttpClient.js';

/**
 * The drain on a bound socket, on raw connections: it closes only what it told the client it
 * would close, or what stayed idle longer than the keep-alive it advertised. The inherited
 * socket's side (keep accepting, then hand the queue over) needs a second process:
 * test/e2e/socketActivation.test.ts.
 */

const hono = new Hono();
hono.get('/x', (c) => c.text('ok'));
const app = getRequestListener(hono.fetch);

const pool = rawHttpClientPool();
afterEach(() => pool.destroyAll());

/** A keep-alive connection answered once, then idle. */
async function answeredOnce(port: number): Promise<RawHttpClient> {
  const c = pool.open(port);
  await c.connected;
  c.send('GET', '/x');
  await c.answers(1);
  return c;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('closeGracefully on a bound socket', () => {
  it('advertises a keep-alive its timer honours: Keep-Alive: timeout=2, idle connections kept longer than that', async () => {
    const server = await listen(app, { host: '127.0.0.1', port: 0 });
    try {
      const c = await answeredOnce(boundPort(server));
      expect(c.received()).toMatch(/\r\nConnection: keep-alive\r\n/i);
      expect(c.received()).toMatch(/\r\nKeep-Alive: timeout=2\r\n/i);
      // node's agent keeps an idle socket until (timeout - 1) s: the server must wait longer.
      expect(KEEP_ALIVE_MS).toBeGreaterThan(2_000);
      expect(server.keepAliveTimeout).toBe(KEEP_ALIVE_MS);
    } finally {
      await closeGracefully(server, 100);
    }
  });

  it('does not close an idle keep-alive connection under its client: a request sent 700 ms into the drain is answered, with Connection: close', async () => {
    const server = await listen(app, { host: '127.0.0.1', port: 0 });
    const c = await answeredOnce(boundPort(server));

    const drained = closeGracefully(server, 4_000);
    // Longer than the old drain's 500 ms idle sweep, shorter than the advertised keep-alive.
    await sleep(700);
    expect(c.ended()).toBeUndefined();
    c.send('GET', '/x');
    await c.answers(2);
    expect(c.bodies()[1]).toBe('ok');
    const second = c.received().slice(c.received().lastIndexOf('HTTP/1.1 '));
    expect(second).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(second).toMatch(/\r\nConnection: close\r\n/i);
    await drained;
    // The server closed it after the answer it had said so in: a clean end, no reset.
    expect(await c.endedHow()).toBe('end');
  });

  it('a connection left idle is closed by the keep-alive timer, not before; the drain then ends well within its grace', async () => {
    const server = await listen(app, { host: '127.0.0.1', port: 0 });
    const c = await answeredOnce(boundPort(server));
    const answeredAt = Date.now();
    let drainedAt = 0;
    const drained = closeGracefully(server, 10_000).then(() => (drainedAt = Date.now()));
    await sleep(1_500);
    expect(c.ended()).toBeUndefined();
    await drained;
    expect(await c.endedHow()).toBe('end');
    expect(drainedAt - answeredAt).toBeGreaterThanOrEqual(KEEP_ALIVE_MS - 100);
    expect(drainedAt - answeredAt).toBeLessThan(10_000);
  });

  it('stops accepting at once: a connection attempted during the drain is refused at connect, never reset', async () => {
    const server = await listen(app, { host: '127.0.0.1', port: 0 });
    const port = boundPort(server);
    const idle = await answeredOnce(port);
    const drained = closeGracefully(server, 4_000);
    const late = pool.open(port);
    await expect(late.connected).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    // The idle client leaves; nothing else holds the drain.
    idle.socket.destroy();
    await drained;
  });

  it('a connection that never sends is cut at the grace, and only then', async () => {
    const server = await listen(app, { host: '127.0.0.1', port: 0 });
    const silent = pool.open(boundPort(server));
    await silent.connected;
    // Let the server accept it before the drain begins.
    await sleep(50);
    const start = Date.now();
    await closeGracefully(server, 600);
    expect(Date.now() - start).toBeGreaterThanOrEqual(550);
    expect(await silent.endedHow()).toBeDefined();
    expect(silent.received()).toBe('');
  });
});
