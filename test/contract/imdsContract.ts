import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

export interface ImdsUnderTest {
  baseUrl: string;
  role: string;
  close(): Promise<void>;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One raw HTTP exchange (node:http, so HEAD and odd headers go out exactly as written). */
function send(baseUrl: string, method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${baseUrl}${path}`, { method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${path}: no answer in 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

const TTL = 'x-aws-ec2-metadata-token-ttl-seconds';
const TOKEN = 'x-aws-ec2-metadata-token';
const CREDS = '/latest/meta-data/iam/security-credentials';
const IMDS_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const FIELD_ORDER = ['Code', 'LastUpdated', 'Type', 'AccessKeyId', 'SecretAccessKey', 'Token', 'Expiration'];

/**
 * The IMDS wire contract (docs/imds-contract.md), status by status, against any
 * implementation: the simulator and the proxy both run it, so they can never drift apart.
 */
export function describeImdsContract(name: string, setup: () => Promise<ImdsUnderTest>): void {
  describe(`IMDS contract: ${name}`, () => {
    let imds: ImdsUnderTest;
    let token: string;
    /** `t` null sends no token header at all. */
    const get = (path: string, t: string | null = token, method = 'GET') =>
      send(imds.baseUrl, method, path, t === null ? {} : { [TOKEN]: t });
    const putToken = (headers: Record<string, string>) => send(imds.baseUrl, 'PUT', '/latest/api/token', headers);

    beforeAll(async () => {
      imds = await setup();
      const answer = await putToken({ [TTL]: '21600' });
      token = answer.body;
    }, 30_000);
    afterAll(() => imds?.close());

    describe('token route', () => {
      for (const ttl of ['1', '300', '21600']) {
        it(`PUT with TTL ${ttl} → 200, a token, the TTL echoed`, async () => {
          const a = await putToken({ [TTL]: ttl });
          expect(a.status).toBe(200);
          expect(a.body.length).toBeGreaterThan(0);
          expect(a.headers[TTL]).toBe(ttl);
          expect(a.headers.server).toBe('EC2ws');
        });
      }
      for (const [what, headers] of [
        ['missing TTL', {}],
        ['TTL abc', { [TTL]: 'abc' }],
        ['TTL 1e3', { [TTL]: '1e3' }],
        ['TTL 1.5', { [TTL]: '1.5' }],
        ['empty TTL', { [TTL]: '' }],
        ['TTL 0', { [TTL]: '0' }],
        ['TTL 21601', { [TTL]: '21601' }],
        ['TTL -5', { [TTL]: '-5' }],
      ] as const) {
        it(`PUT with ${what} → 400`, async () => {
          expect((await putToken(headers)).status).toBe(400);
        });
      }
      for (const value of ['10.0.0.1', '127.0.0.1', '', 'anything']) {
        it(`PUT with X-Forwarded-For "${value}" → 403, even with a good TTL`, async () => {
          expect((await putToken({ [TTL]: '60', 'X-Forwarded-For': value })).status).toBe(403);
        });
      }
      for (const method of ['GET', 'POST', 'DELETE']) {
        it(`${method} on the token path → 405 with Allow: OPTIONS, PUT`, async () => {
          const a = await send(imds.baseUrl, method, '/latest/api/token', { [TTL]: '60' });
          expect(a.status).toBe(405);
          expect(a.headers.allow).toBe('OPTIONS, PUT');
        });
      }
    });

    describe('using tokens', () => {
      it('no token → 401 (tokens required)', async () => {
        expect((await get(`${CREDS}/`, null)).status).toBe(401);
      });
      for (const method of ['GET', 'HEAD']) {
        it(`${method} with an invalid token → 401`, async () => {
          expect((await get(`${CREDS}/`, 'not-a-token', method)).status).toBe(401);
          expect((await get('/latest/meta-data/instance-id', `${token}x`, method)).status).toBe(401);
        });
      }
      it('an expired token → 401 on GET and HEAD', async () => {
        const short = (await putToken({ [TTL]: '1' })).body;
        expect((await get(`${CREDS}/`, short)).status).toBe(200);
        await new Promise((r) => setTimeout(r, 1100));
        expect((await get(`${CREDS}/`, short)).status).toBe(401);
        expect((await get(`${CREDS}/`, short, 'HEAD')).status).toBe(401);
      });
      it('HEAD with a valid token → 200 and no body', async () => {
        const a = await get(`${CREDS}/`, token, 'HEAD');
        expect(a.status).toBe(200);
        expect(a.body).toBe('');
      });
    });

    describe('credentials', () => {
      for (const path of [`${CREDS}/`, CREDS]) {
        it(`GET ${path} → the role name, no trailing newline, text/plain, Server: EC2ws`, async () => {
          const a = await get(path);
          expect(a.status).toBe(200);
          expect(a.body).toBe(imds.role);
          expect(String(a.headers['content-type'])).toMatch(/^text\/plain/);
          expect(a.headers.server).toBe('EC2ws');
        });
      }
      for (const suffix of ['', '/']) {
        it(`GET ${CREDS}/<role>${suffix} → the credentials in IMDS's exact layout`, async () => {
          const a = await get(`${CREDS}/${imds.role}${suffix}`);
          expect(a.status).toBe(200);
          const doc = JSON.parse(a.body) as Record<string, string>;
          expect(Object.keys(doc)).toEqual(FIELD_ORDER);
          expect(doc.Code).toBe('Success');
          expect(doc.Type).toBe('AWS-HMAC');
          expect(doc.AccessKeyId).toMatch(/^ASIA[A-Z0-9]{12,}$/);
          expect(doc.LastUpdated).toMatch(IMDS_TIME);
          expect(doc.Expiration).toMatch(IMDS_TIME);
          expect(Date.parse(doc.Expiration!)).toBeGreaterThan(Date.now());
          expect(a.body.startsWith('{\n  "Code" : "Success",\n  "LastUpdated" : "')).toBe(true);
        });
      }
      it('the same credentials on every ask until rotation', async () => {
        const ids = await Promise.all([1, 2, 3].map(async () => JSON.parse((await get(`${CREDS}/${imds.role}`)).body).AccessKeyId as string));
        expect(new Set(ids).size).toBe(1);
      });
      it('an unknown role → 404', async () => {
        expect((await get(`${CREDS}/no-such-role`)).status).toBe(404);
      });
      it('iam/info → Success with the instance profile ARN', async () => {
        const a = await get('/latest/meta-data/iam/info');
        expect(a.status).toBe(200);
        const info = JSON.parse(a.body) as Record<string, string>;
        expect(info.Code).toBe('Success');
        expect(info.InstanceProfileArn).toMatch(/^arn:aws:iam::\d{12}:instance-profile\/.+/);
        expect(info.LastUpdated).toMatch(IMDS_TIME);
      });
    });

    describe('other paths', () => {
      it('the metadata SDKs read for the region and identity', async () => {
        const region = await get('/latest/meta-data/placement/region');
        expect(region.status).toBe(200);
        const az = await get('/latest/meta-data/placement/availability-zone');
        expect(az.body.startsWith(region.body)).toBe(true);
        expect((await get('/latest/meta-data/instance-id')).body).toMatch(/^i-[0-9a-f]+$/);
        const doc = JSON.parse((await get('/latest/dynamic/instance-identity/document')).body) as Record<string, string>;
        expect(doc.region).toBe(region.body);
        expect(doc.accountId).toMatch(/^\d{12}$/);
      });
      it('an unknown leaf → 404, never a 500', async () => {
        expect((await get('/latest/meta-data/no/such/leaf')).status).toBe(404);
        expect((await get('/latest/meta-data/%2e%2e/%2e%2e/etc/passwd')).status).toBe(404);
      });
    });
  });
}
