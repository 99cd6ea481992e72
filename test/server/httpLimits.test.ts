import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultProxyConfig } from '../../src/config/proxyConfig.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { silentLogger } from '../../src/runtime/log.js';

/** Sends raw bytes on a fresh connection and returns whatever comes back before close. */
function raw(port: number, request: string | Buffer, { waitMs = 2000 } = {}): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d) => (answer += d.toString('latin1')));
    const done = () => resolve(answer);
    socket.on('close', done);
    socket.on('error', done);
    socket.write(request);
    setTimeout(() => socket.destroy(), waitMs).unref();
  });
}

describe('HTTP limits on a real socket', () => {
  let proxy: RunningProxy;
  let port: number;
  beforeAll(async () => {
    // Upstream on a closed loopback port: these tests never need it.
    proxy = await startProxy(
      { ...defaultProxyConfig(), listen: { host: '127.0.0.1', port: 0 }, upstream: 'http://127.0.0.1:9', upstreamAttempts: 1 },
      { logger: silentLogger },
    );
    port = Number(new URL(proxy.url).port);
  });
  afterAll(() => proxy.close());

  it('refuses oversized headers with 431', async () => {
    const answer = await raw(port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('refuses a token PUT with a large body with 413', async () => {
    const body = 'x'.repeat(100_000);
    const answer = await raw(
      port,
      `PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
  });

  it('answers garbage with 400, not a crash, and keeps serving', async () => {
    expect(await raw(port, 'NOT-HTTP\u0000\u0001\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
    expect(await raw(port, `GET /latest/meta-data/\u00ff\u0000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)).toMatch(/^HTTP\/1\.1 400 /);
    const res = await fetch(`${proxy.url}/healthz`);
    expect(res.status).toBe(200);
  });

  it('serves other clients while a slow-loris client dribbles its headers', async () => {
    const loris = connect(port, '127.0.0.1');
    loris.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const token = await fetch(`${proxy.url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } });
    expect(token.status).toBe(200);
    loris.destroy();
  });
});
