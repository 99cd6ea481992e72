import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamError } from '../../src/upstream/errors.js';
import { httpRequest } from '../../src/upstream/httpRequest.js';

/** One exchange on node:http over real loopback sockets, each way it can end. */
const servers: (NetServer | HttpServer)[] = [];
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function listen<T extends NetServer | HttpServer>(server: T): Promise<string> {
  servers.push(server);
  server.on('connection', (s: Socket) => sockets.add(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function failure(promise: Promise<unknown>): Promise<UpstreamError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UpstreamError);
  return error as UpstreamError;
}

describe('httpRequest', () => {
  it('returns status, body and the headers the proxy relays', async () => {
    const url = await listen(
      createHttpServer((_req, res) => res.writeHead(301, { location: '/latest/meta-data/', 'x-aws-ec2-metadata-token-ttl-seconds': '21600', 'content-type': 'text/plain' }).end('moved')),
    );
    expect(await httpRequest({ method: 'GET', url: `${url}/latest/meta-data`, timeoutMs: 1000 })).toEqual({
      status: 301,
      body: 'moved',
      contentType: 'text/plain',
      tokenTtl: '21600',
      location: '/latest/meta-data/',
    });
  });

  it('a refused connection is a network_error that keeps node\'s code', async () => {
    const url = await listen(createNetServer());
    await new Promise((resolve) => servers.pop()!.close(resolve));
    const error = await failure(httpRequest({ method: 'PUT', url: `${url}/latest/api/token`, timeoutMs: 1000 }));
    expect([error.kind, (error.cause as NodeJS.ErrnoException).code]).toEqual(['network_error', 'ECONNREFUSED']);
  });

  it('headers then a dribbled body: a timeout, since the timeout covers the body', async () => {
    const url = await listen(createHttpServer((_req, res) => res.writeHead(200, { 'content-length': '100' }).write('x')));
    expect((await failure(httpRequest({ method: 'GET', url, timeoutMs: 150 }))).kind).toBe('timeout');
  });

  it('a connection closed mid-body is a network_error at once, not a timeout', async () => {
    const url = await listen(
      createHttpServer((_req, res) => {
        res.writeHead(200, { 'content-length': '100' }).write('x', () => res.socket?.destroy());
      }),
    );
    const started = Date.now();
    expect((await failure(httpRequest({ method: 'GET', url, timeoutMs: 5000 }))).kind).toBe('network_error');
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('an answer over maxBodyBytes is an invalid_response', async () => {
    const url = await listen(createHttpServer((_req, res) => res.end('y'.repeat(5000))));
    const error = await failure(httpRequest({ method: 'GET', url, timeoutMs: 1000, maxBodyBytes: 1000 }));
    expect([error.kind, error.message]).toEqual(['invalid_response', 'response body larger than 1000 bytes']);
  });

  it('the stop signal ends an exchange in flight with stoppedError and closes its connection', async () => {
    let closed!: () => void;
    const connectionClosed = new Promise<void>((resolve) => (closed = resolve));
    const url = await listen(createNetServer((s) => s.resume().on('close', closed)));
    const stop = new AbortController();
    const pending = failure(httpRequest({ method: 'GET', url, timeoutMs: 5000, signal: stop.signal }));
    await new Promise((r) => setTimeout(r, 50));
    stop.abort();
    expect((await pending).message).toBe('aborted: the proxy is stopping');
    await connectionClosed;
    expect((await failure(httpRequest({ method: 'GET', url, timeoutMs: 5000, signal: stop.signal }))).message).toBe('aborted: the proxy is stopping');
  });
});
