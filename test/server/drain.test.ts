import { connect, type Socket } from 'node:net';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { boundPort, closeGracefully, KEEP_ALIVE_MS, listen } from '../../src/server/httpServer.js';

/**
 * The drain on a bound socket, on raw connections: it closes only what it told the client it
 * would close, or what stayed idle longer than the keep-alive it advertised. The inherited
 * socket's side (keep accepting, then hand the queue over) needs a second process:
 * test/e2e/socketActivation.test.ts.
 */

const app = new Hono();
app.get('/x', (c) => c.text('ok'));

const sockets: Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

/** A raw client connection that collects what the server sends, and notes when it closes. */
function client(port: number) {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  let received = '';
  let ended: string | undefined;
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (received += d));
  socket.on('end', () => (ended ??= 'end'));
  socket.on('error', (e: NodeJS.ErrnoException) => (ended ??= e.code ?? 'error'));
  socket.on('close', () => (ended ??= 'close'));
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return {
    connected,
    send: (path = '/x') => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`),
    received: () => received,
    ended: () => ended,
    /** Waits until `n` whole answers have arrived (each ends with the 2-byte body "ok"). */
    async answers(n: number, timeoutMs = 3_000) {
      const deadline = Date.now() + timeoutMs;
      while ((received.match(/\r\n\r\nok/g) ?? []).length < n) {
        if (Date.now() > deadline) throw new Error(`${n} answers expected, got: ${JSON.stringify(received)}; ended: ${ended}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('closeGracefully on a bound socket', () => {
  it('advertises a keep-alive its timer honours: Keep-Alive: timeout=2, idle connections kept longer than that', async () => {
    const server = await listen(app, { host: '127.0.0.1', port: 0 });
    try {
      const c = client(boundPort(server));
      await c.connected;
      c.send();
      await c.answers(1);
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
    const c = client(boundPort(server));
    await c.connected;
    c.send();
    await c.answers(1);

    const drained = closeGracefully(server, 4_000);
    // Longer than the old drain's 500 ms idle sweep, shorter than the advertised keep-alive.
    await sleep(700);
    expect(c.ended()).toBeUndefined();
    c.send();
    await c.answers(2);
    const second = c.received().slice(c.received().lastIndexOf('HTTP/1.1 '));
    expect(second).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(second).toMatch(/\r\nConnection: close\r\n/i);
    await drained;
    // The server closed it after the answer it had said so in: a clean end, no reset.
    expect(c.ended()).toBe('end');
  });

  it('a connection left idle is closed by the keep-alive timer, not before; the drain then ends well within its grace', async () => {
    const server = await listen(app, { host: '127.0.0.1', port: 0 });
    const c = client(boundPort(server));
    await c.connected;
    c.send();
    await c.answers(1);
    const answeredAt = Date.now();
    let drainedAt = 0;
    const drained = closeGracefully(server, 10_000).then(() => (drainedAt = Date.now()));
    await sleep(1_500);
    expect(c.ended()).toBeUndefined();
    await drained;
    for (let i = 0; i < 100 && c.ended() === undefined; i++) await sleep(5);
    expect(c.ended()).toBe('end');
    expect(drainedAt - answeredAt).toBeGreaterThanOrEqual(KEEP_ALIVE_MS - 100);
    expect(drainedAt - answeredAt).toBeLessThan(10_000);
  });

  it('stops accepting at once: a connection attempted during the drain is refused at connect, never reset', async () => {
    const server = await listen(app, { host: '127.0.0.1', port: 0 });
    const port = boundPort(server);
    const idle = client(port);
    await idle.connected;
    idle.send();
    await idle.answers(1);
    const drained = closeGracefully(server, 4_000);
    const late = client(port);
    await expect(late.connected).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    // The idle client leaves; nothing else holds the drain.
    for (const s of sockets) s.destroy();
    await drained;
  });

  it('a connection that never sends is cut at the grace, and only then', async () => {
    const server = await listen(app, { host: '127.0.0.1', port: 0 });
    const silent = client(boundPort(server));
    await silent.connected;
    // Let the server accept it before the drain begins.
    await sleep(50);
    const start = Date.now();
    await closeGracefully(server, 600);
    expect(Date.now() - start).toBeGreaterThanOrEqual(550);
    await sleep(50);
    expect(silent.ended()).toBeDefined();
    expect(silent.received()).toBe('');
  });
});
