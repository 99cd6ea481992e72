import { afterAll, beforeAll, describe, expect, it } from 'vitest';

export interface ImdsUnderTest {
  baseUrl: string;
  role: string;
  close(): Promise<void>;
}

export interface ImdsContractOptions {
  /** The implementation serves requests without a token (IMDSv1 allowed). Default: tokens required. */
  tokenlessAllowed?: boolean;
}

interface Answer {
  status: number;
  headers: Headers;
  body: string;
}

const TTL = 'x-aws-ec2-metadata-token-ttl-seconds';
const TOKEN = 'x-aws-ec2-metadata-token';
const CREDS = '/latest/meta-data/iam/security-credentials';
const IMDS_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const FIELD_ORDER = ['Code', 'LastUpdated', 'Type', 'AccessKeyId', 'SecretAccessKey', 'Token', 'Expiration'];

/** Loopback only: this suite talks to servers its setup started, never to a real IMDS. */
function assertLoopback(baseUrl: string): void {
  const host = new URL(baseUrl).hostname;
  if (host !== '127.0.0.1' && host !== '[::1]' && host !== 'localhost') {
    throw new Error(`the IMDS contract runs against loopback only, got ${host}`);
  }
}

async function send(baseUrl: string, method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${baseUrl}${path}`, { method, headers, redirect: 'manual', signal: AbortSignal.timeout(5000) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

/** JSON.parse's own error quotes the body, which may hold secrets; this one does not. */
function parseQuietly(body: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // reported below without the body
  }
  throw new Error(`not a JSON object (${body.length} characters)`);
}

/**
 * Where a credentials body departs from IMDS's exact layout (`{`, one `  "Key" : "value"` line
 * per field in IMDS's order, commas, `}`). Names lines and keys, never values: they are secrets.
 */
function layoutProblems(body: string): string[] {
  const lines = body.split('\n');
  const problems: string[] = [];
  if (lines[0] !== '{') problems.push('first line is not "{"');
  if (lines.at(-1) !== '}') problems.push('last line is not "}"');
  const fields = lines.slice(1, -1);
  if (fields.length !== FIELD_ORDER.length) problems.push(`${fields.length} field lines, expected ${FIELD_ORDER.length}`);
  fields.forEach((line, i) => {
    const match = /^ {2}"(\w+)" : "[^"\\]*"(,?)$/.exec(line);
    if (match === null) return problems.push(`field line ${i + 1} is not '  "Key" : "value"'`);
    if (match[1] !== FIELD_ORDER[i]) problems.push(`field line ${i + 1} is ${match[1]}, expected ${FIELD_ORDER[i]}`);
    const last = i === fields.length - 1;
    if ((match[2] === ',') === last) problems.push(`field line ${i + 1} (${match[1]}) ${last ? 'has' : 'lacks'} a trailing comma`);
  });
  return problems;
}

/**
 * The IMDS wire contract (docs/imds-contract.md, shared/imds-contract.md), status by status,
 * against any implementation: the simulator and the proxy both run it, so they cannot drift
 * apart. Every status is asserted exactly, so a 500 for any of these client inputs fails.
 */
export function describeImdsContract(
  name: string,
  setup: () => Promise<ImdsUnderTest>,
  opts: ImdsContractOptions = {},
): void {
  describe(`IMDS contract: ${name}`, () => {
    let imds: ImdsUnderTest;
    let token: string;
    /** `t` null sends no token header at all. */
    const get = (path: string, t: string | null = token, method = 'GET') =>
      send(imds.baseUrl, method, path, t === null ? {} : { [TOKEN]: t });
    const putToken = (headers: Record<string, string>) => send(imds.baseUrl, 'PUT', '/latest/api/token', headers);

    beforeAll(async () => {
      imds = await setup();
      assertLoopback(imds.baseUrl);
      const answer = await putToken({ [TTL]: '21600' });
      if (answer.status !== 200) throw new Error(`token PUT answered ${answer.status}`);
      token = answer.body;
    }, 30_000);
    afterAll(() => imds?.close());

    describe('token route', () => {
      for (const ttl of ['1', '300', '21600']) {
        it(`PUT with TTL ${ttl} → 200, a token, the TTL echoed`, async () => {
          const a = await putToken({ [TTL]: ttl });
          expect(a.status).toBe(200);
          expect(a.body.length).toBeGreaterThan(0);
          expect(a.headers.get(TTL)).toBe(ttl);
          expect(a.headers.get('server')).toBe('EC2ws');
        });
      }
      it('two token PUTs give two working tokens', async () => {
        const [a, b] = await Promise.all([putToken({ [TTL]: '60' }), putToken({ [TTL]: '60' })]);
        expect((await get(`${CREDS}/`, a!.body)).status).toBe(200);
        expect((await get(`${CREDS}/`, b!.body)).status).toBe(200);
      });
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
          expect(a.headers.get('allow')).toBe('OPTIONS, PUT');
        });
      }
    });

    describe('using tokens', () => {
      if (opts.tokenlessAllowed) {
        it('no token → served (IMDSv1 allowed)', async () => {
          const a = await get(`${CREDS}/`, null);
          expect(a.status).toBe(200);
          expect(a.body).toBe(imds.role);
        });
      } else {
        it('no token → 401 (tokens required)', async () => {
          expect((await get(`${CREDS}/`, null)).status).toBe(401);
          expect((await get(`${CREDS}/${imds.role}`, null)).status).toBe(401);
        });
      }
      for (const method of ['GET', 'HEAD']) {
        it(`${method} with an invalid token → 401`, async () => {
          expect((await get(`${CREDS}/`, 'not-a-token', method)).status).toBe(401);
          expect((await get('/latest/meta-data/instance-id', `${token}x`, method)).status).toBe(401);
          expect((await get(`${CREDS}/${imds.role}`, '', method)).status).toBe(401);
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
          expect(a.headers.get('content-type') ?? '').toMatch(/^text\/plain/);
          expect(a.headers.get('server')).toBe('EC2ws');
        });
      }
      for (const suffix of ['', '/']) {
        it(`GET ${CREDS}/<role>${suffix} → the credentials in IMDS's exact layout`, async () => {
          const a = await get(`${CREDS}/${imds.role}${suffix}`);
          expect(a.status).toBe(200);
          expect(a.headers.get('server')).toBe('EC2ws');
          expect(layoutProblems(a.body)).toEqual([]);
          const doc = parseQuietly(a.body);
          expect(Object.keys(doc)).toEqual(FIELD_ORDER);
          expect(doc.Code).toBe('Success');
          expect(doc.Type).toBe('AWS-HMAC');
          expect(doc.AccessKeyId).toMatch(/^ASIA[A-Z0-9]{12,}$/);
          expect(typeof doc.SecretAccessKey === 'string' && doc.SecretAccessKey.length > 0).toBe(true);
          expect(typeof doc.Token === 'string' && doc.Token.length > 0).toBe(true);
          expect(doc.LastUpdated).toMatch(IMDS_TIME);
          expect(doc.Expiration).toMatch(IMDS_TIME);
          expect(Date.parse(doc.Expiration as string)).toBeGreaterThan(Date.now());
        });
      }
      it('the same credentials on every ask until rotation', async () => {
        const docs = await Promise.all([1, 2, 3].map(async () => parseQuietly((await get(`${CREDS}/${imds.role}`)).body)));
        expect(new Set(docs.map((d) => d.AccessKeyId)).size).toBe(1);
        expect(new Set(docs.map((d) => d.Token)).size === 1).toBe(true);
      });
      it('an unknown role → 404, with or without a trailing slash', async () => {
        expect((await get(`${CREDS}/no-such-role`)).status).toBe(404);
        expect((await get(`${CREDS}/no-such-role/`)).status).toBe(404);
      });
      it('iam/info → Success with the instance profile ARN and id', async () => {
        const a = await get('/latest/meta-data/iam/info');
        expect(a.status).toBe(200);
        const info = parseQuietly(a.body);
        expect(info.Code).toBe('Success');
        expect(info.InstanceProfileArn).toMatch(/^arn:aws:iam::\d{12}:instance-profile\/.+/);
        expect(info.InstanceProfileId).toMatch(/^AIPA[A-Z0-9]+$/);
        expect(info.LastUpdated).toMatch(IMDS_TIME);
      });
    });

    describe('other paths', () => {
      it('placement/region and placement/availability-zone, the latter with and without its slash', async () => {
        const region = await get('/latest/meta-data/placement/region');
        expect(region.status).toBe(200);
        expect(region.body).toMatch(/^[a-z]{2}(-[a-z]+)+-\d$/);
        for (const path of ['/latest/meta-data/placement/availability-zone', '/latest/meta-data/placement/availability-zone/']) {
          const az = await get(path);
          expect(az.status).toBe(200);
          expect(az.body).toMatch(new RegExp(`^${region.body}[a-z]$`));
        }
      });
      it('instance-id and the instance identity document', async () => {
        expect((await get('/latest/meta-data/instance-id')).body).toMatch(/^i-[0-9a-f]+$/);
        const region = (await get('/latest/meta-data/placement/region')).body;
        const a = await get('/latest/dynamic/instance-identity/document');
        expect(a.status).toBe(200);
        const doc = parseQuietly(a.body);
        expect(doc.region).toBe(region);
        expect(doc.accountId).toMatch(/^\d{12}$/);
        expect(doc.instanceId).toMatch(/^i-[0-9a-f]+$/);
      });
      it('an unknown leaf → 404', async () => {
        expect((await get('/latest/meta-data/no/such/leaf')).status).toBe(404);
        expect((await get('/latest/meta-data/iam/no-such-leaf')).status).toBe(404);
      });
      it('odd client input → a 4xx, never a 5xx', async () => {
        const paths = [
          `${CREDS}/%E0%A4%A`,
          `${CREDS}/%`,
          `${CREDS}/${'r'.repeat(2000)}`,
          `${CREDS}//`,
          `${CREDS}/${imds.role}?x=%ZZ`,
          '/latest/meta-data/%ZZ',
          '/latest/no-such-area/x',
          '/no-such-version/meta-data/',
        ];
        const statuses = await Promise.all(paths.map(async (p) => (await get(p)).status));
        expect(statuses.filter((s) => s >= 500)).toEqual([]);
      });
    });
  });
}
