import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultProxyConfig } from '../../src/config/proxyConfig.js';
import { silentLogger } from '../../src/runtime/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';

/**
 * `--max-connections` on a real socket: with the cap reached, a new connection is closed
 * without an answer, while a client already connected keeps getting its cached credentials
 * over its keep-alive connection. A connection flood cannot exhaust file descriptors, and
 * cannot lock out the SDKs already talking to the proxy.
 */

const ROLE = 'capped-role';
const CAP = 2;

interface Answer {
  status: number;
  body: string;
  reusedSocket: boolean;
}

function get(agent: Agent, url: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { agent, method, headers, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reusedSocket: req.reusedSocket }));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A fresh connection that sends a whole request; what came back before the close, or undefined if still open after `waitMs`. */
function tryFreshConnection(port: number, waitMs = 2_000): Promise<{ bytes: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let bytes = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ bytes, closed: false });
    }, waitMs);
    socket.on('data', (d) => (bytes += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ bytes, closed: true });
    });
    socket.on('connect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
  });
}

/** A connection held open after one answered request, as an idle keep-alive client would. */
function holdConnection(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
    socket.once('data', (d) => (d.toString('latin1').startsWith('HTTP/1.1 200') ? resolve(socket) : reject(new Error('held connection not served'))));
    socket.once('error', reject);
  });
}

describe(`--max-connections ${CAP} on a real socket`, () => {
  let sim: RunningSimulator;
  let proxy: RunningProxy;
  let port: number;

  beforeAll(async () => {
    sim = await startSimulator({ port: 0, roles: [ROLE] });
    proxy = await startProxy(
      { ...defaultProxyConfig(), listen: { host: '127.0.0.1', port: 0 }, upstream: sim.url, maxConnections: CAP },
      { logger: silentLogger },
    );
    port = Number(new URL(proxy.url).port);
    for (let i = 0; i < 200 && !proxy.isReady(); i++) await new Promise((r) => setTimeout(r, 25));
    expect(proxy.isReady()).toBe(true);
  });
  afterAll(async () => {
    await proxy?.close();
    await sim?.close();
  });

  it('closes connections past the cap unanswered; the keep-alive client already connected still gets its credentials', async () => {
    const expected = sim.currentCredentials(ROLE)!;
    // Client A: an SDK with one keep-alive connection, fetching a token and the credentials.
    const sdk = new Agent({ keepAlive: true, maxSockets: 1 });
    const token = await get(sdk, proxy.url, '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '300' }, 'PUT');
    expect(token.status).toBe(200);
    const first = await get(sdk, proxy.url, `/latest/meta-data/iam/security-credentials/${ROLE}`, { 'x-aws-ec2-metadata-token': token.body });
    expect(first.status).toBe(200);

    // Client B takes the last connection under the cap.
    const held = await holdConnection(port);
    try {
      // Past the cap: accepted by the kernel, closed by the proxy, not a byte of answer.
      for (let i = 0; i < 5; i++) {
        expect(await tryFreshConnection(port)).toEqual({ bytes: '', closed: true });
      }

      // A, on the connection it already had, is still served from the cache.
      const again = await get(sdk, proxy.url, `/latest/meta-data/iam/security-credentials/${ROLE}`, { 'x-aws-ec2-metadata-token': token.body });
      expect(again.reusedSocket).toBe(true);
      expect(again.status).toBe(200);
      const doc = JSON.parse(again.body) as { AccessKeyId: string; SecretAccessKey: string; Code: string };
      expect(doc.Code).toBe('Success');
      expect(doc.AccessKeyId).toBe(expected.accessKeyId);
      expect(doc.SecretAccessKey === expected.secretAccessKey).toBe(true);
    } finally {
      held.destroy();
      sdk.destroy();
    }

    // Below the cap again, a new connection is served: the refusals were the cap's doing.
    let served: { bytes: string; closed: boolean } | undefined;
    for (let i = 0; i < 40; i++) {
      served = await tryFreshConnection(port, 500);
      if (served.bytes !== '') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(served?.bytes).toMatch(/^HTTP\/1\.1 200 /);
  });
});
