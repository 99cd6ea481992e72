import { request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { credentialsHitPath } from '../../src/server/hitPath.js';
import { boundPort, closeGracefully, listen } from '../../src/server/httpServer.js';
import { proxyAppWithFakes } from '../support/proxyServices.js';

/**
 * The hit path answers cached-credentials GETs before hono. It must answer exactly what the
 * hono route answers, record the same metrics, and leave every other request to hono.
 */

const CREDS = '/latest/meta-data/iam/security-credentials/app-role';
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => closeGracefully(s, 100)));
});

interface Raw {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function raw(port: number, method: string, path: string, headers: Record<string, string>): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The proxy's app behind a real socket, with the hit path on or off, counting what it took. */
async function serve(withHitPath: boolean) {
  const fakes = proxyAppWithFakes();
  const hitPath = credentialsHitPath(fakes.services);
  let taken = 0;
  const server = await listen(
    fakes.app,
    { host: '127.0.0.1', port: 0 },
    withHitPath
      ? {
          hitPath: (req, res) => {
            const answered = hitPath(req, res);
            if (answered) taken++;
            return answered;
          },
        }
      : {},
  );
  servers.push(server);
  const port = boundPort(server);
  await fakes.services.credentials.refreshIfDue();
  return { ...fakes, port, taken: () => taken };
}

/** What a client can tell apart: everything but the Date header. */
function comparable(r: Raw) {
  const { date: _date, ...headers } = r.headers;
  return { status: r.status, headers, bodyLength: r.body.length, body: r.body };
}

describe('credentials hit path', () => {
  it('answers a cached role byte for byte as the hono route does, with the same metrics', async () => {
    const fast = await serve(true);
    const routed = await serve(false);
    for (const path of [CREDS, `${CREDS}/`]) {
      const a = await raw(fast.port, 'GET', path, { 'x-aws-ec2-metadata-token': fast.token });
      const b = await raw(routed.port, 'GET', path, { 'x-aws-ec2-metadata-token': routed.token });
      expect(a.status).toBe(200);
      // Same document layout; the fakes' credentials differ, so compare with the key id swapped.
      const doc = JSON.parse(a.body) as { AccessKeyId: string };
      expect(doc.AccessKeyId).toBe(fast.source.credentials.accessKeyId);
      expect(comparable(a).headers).toEqual(comparable(b).headers);
      expect(a.body.length).toBe(b.body.length);
    }
    expect(fast.taken()).toBe(2);
    for (const key of ['request:credentials:GET:200', 'cache:credentials:hit']) {
      expect(fast.metrics.count(key)).toBe(2);
      expect(routed.metrics.count(key)).toBe(2);
    }
  });

  it('serves the same bytes the cache formatted, every time', async () => {
    const fast = await serve(true);
    const lookup = await fast.services.credentials.credentials('app-role');
    const expected = lookup.kind === 'found' ? lookup.entry.body : 'missing';
    for (let i = 0; i < 3; i++) {
      const r = await raw(fast.port, 'GET', CREDS, { 'x-aws-ec2-metadata-token': fast.token });
      expect(r.body === expected).toBe(true);
      expect(Number(r.headers['content-length'])).toBe(Buffer.byteLength(expected));
    }
  });

  it('leaves everything else to hono, which answers as before', async () => {
    const fast = await serve(true);
    const expired = fast.services.tokens.mint(1);
    fast.clock.advance(2_000);
    const cases: [string, string, Record<string, string>, number][] = [
      ['HEAD', CREDS, { 'x-aws-ec2-metadata-token': fast.token }, 200],
      ['GET', CREDS, {}, 401],
      ['GET', CREDS, { 'x-aws-ec2-metadata-token': 'forged' }, 401],
      ['GET', CREDS, { 'x-aws-ec2-metadata-token': expired }, 401],
      ['GET', `${CREDS}?x=1`, { 'x-aws-ec2-metadata-token': fast.token }, 200],
      // Not a credentials path: the metadata route forwards it upstream (the fake answers 200).
      ['GET', `${CREDS}/extra`, { 'x-aws-ec2-metadata-token': fast.token }, 200],
      ['GET', '/latest/meta-data/iam/security-credentials/app%2Drole', { 'x-aws-ec2-metadata-token': fast.token }, 200],
      ['GET', '/latest/meta-data/iam/security-credentials/other-role', { 'x-aws-ec2-metadata-token': fast.token }, 404],
      ['GET', '/latest/meta-data/iam/security-credentials/', { 'x-aws-ec2-metadata-token': fast.token }, 200],
      ['PUT', CREDS, { 'x-aws-ec2-metadata-token': fast.token }, 405],
    ];
    for (const [method, path, headers, status] of cases) {
      const r = await raw(fast.port, method, path, headers);
      expect([method, path, r.status]).toEqual([method, path, status]);
    }
    expect(fast.taken()).toBe(0);
    expect(fast.forwarded.some((p) => p.endsWith('/app-role/extra'))).toBe(true);
    expect(fast.metrics.count('tokenRejected:missing')).toBe(1);
    expect(fast.metrics.count('tokenRejected:invalid')).toBe(1);
    expect(fast.metrics.count('tokenRejected:expired')).toBe(1);
  });

  it('declines while nothing servable is cached, so the route waits for the fetch', async () => {
    const fakes = proxyAppWithFakes();
    const hitPath = credentialsHitPath(fakes.services);
    let declined = 0;
    const server = await listen(fakes.app, { host: '127.0.0.1', port: 0 }, {
      hitPath: (req, res) => {
        const answered = hitPath(req, res);
        if (!answered) declined++;
        return answered;
      },
    });
    servers.push(server);
    const r = await raw(boundPort(server), 'GET', CREDS, { 'x-aws-ec2-metadata-token': fakes.token });
    expect(r.status).toBe(200);
    expect(declined).toBe(1);
    expect(fakes.source.fetchCalls).toBe(1);
    expect(fakes.metrics.count('cache:credentials:miss')).toBe(1);
    expect(fakes.metrics.count('cache:credentials:hit')).toBe(0);
  });
});
