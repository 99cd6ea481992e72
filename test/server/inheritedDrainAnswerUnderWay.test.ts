import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { closeGracefully, listen } from '../../src/server/httpServer.js';
import { rawHttpClientPool } from '../support/rawHttpClient.js';

/**
 * An inherited server's drain, in process: a listening socket's fd with no watcher on it, as a
 * supervisor would pass one (bound here, never listened on, so nothing else accepts on it).
 *
 * docs/restarts.md, The drain: an inherited server keeps accepting until every open connection
 * was answered `Connection: close` or is fresh, "none kept alive". A connection whose answer is
 * still being written when the drain begins, and that answer said keep-alive, stays open after
 * it (idle, up to the 3.5 s keep-alive timer): stopping then leaves new connections queued for
 * seconds while this process lives anyway. The drain used to see it (node's `_last`, recorded at
 * writeHead); reading only the keep-alive timer (`socket.timeout`), armed when the answer
 * finishes, it took such a connection, when fresh, for one about to end.
 */

type TcpHandle = { bind(host: string, port: number): number; getsockname(out: { port?: number }): number; fd: number };
const { TCP, constants } = (process as unknown as { binding(name: 'tcp_wrap'): { TCP: new (type: number) => TcpHandle; constants: { SERVER: number } } }).binding('tcp_wrap');
/** Kept referenced, never closed: the server owns (and closes) the fd. */
const handles: TcpHandle[] = [];
function supervisorSocket(): { fd: number; port: number } {
  const handle = new TCP(constants.SERVER);
  if (handle.bind('127.0.0.1', 0) !== 0) throw new Error('bind failed');
  const out: { port?: number } = {};
  handle.getsockname(out);
  handles.push(handle);
  return { fd: handle.fd, port: out.port! };
}

/** `/stream`: the head and half the body now, the rest 300 ms later; anything else at once. */
function app(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/stream') {
    res.writeHead(200, { 'content-length': 4 });
    res.write('ab');
    setTimeout(() => res.end('cd'), 300);
    return;
  }
  res.end('ok');
}

const pool = rawHttpClientPool();
afterEach(() => pool.destroyAll());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('an inherited server draining while a keep-alive answer is still being written', () => {
  it('keeps accepting: that connection stays open after its answer', async () => {
    const { fd, port } = supervisorSocket();
    const server = await listen(app, { host: '127.0.0.1', port }, { inherited: { fd, name: 'imds' } });
    const c = pool.open(port);
    await c.connected;
    c.send('GET', '/stream');
    while (!c.received().includes('\r\n\r\nab')) await sleep(2);
    expect(c.received()).toMatch(/\r\nConnection: keep-alive\r\n/i);

    // Within 100 ms of its accept: the connection is "fresh", but its answer promised keep-alive.
    const drained = closeGracefully(server, 4_000);
    await sleep(5);
    expect(server.listening).toBe(true);
    await c.answers(1);
    expect(c.ended()).toBeUndefined();
    expect(server.listening).toBe(true);

    // Its next request is answered Connection: close; then nothing is left to wait for.
    c.send('GET', '/x');
    await c.answers(2);
    expect(c.received().slice(c.received().lastIndexOf('HTTP/1.1 '))).toMatch(/\r\nConnection: close\r\n/i);
    await drained;
    expect(server.listening).toBe(false);
  });
});
