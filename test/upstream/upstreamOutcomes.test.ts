import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createLogger } from '../../src/log.js';
import { formatCredentialsDocument } from '../../src/imds/credentials.js';
import { ImdsClient } from '../../src/upstream/imdsClient.js';
import { UpstreamError } from '../../src/upstream/errors.js';
import { fetchRoleCredentials } from '../../src/upstream/instanceProfile.js';
import { makeCredentials } from '../support/credentials.js';
import { RecordingMetrics } from '../support/recordingMetrics.js';

// nock intercepts every request: nothing here leaves the process.
const UPSTREAM = 'http://127.0.0.1:1';
const CREDS = '/latest/meta-data/iam/security-credentials';

function client(options: Partial<ConstructorParameters<typeof ImdsClient>[0]> = {}) {
  const metrics = new RecordingMetrics();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const clock = new ManualClock();
  const c = new ImdsClient({ baseUrl: UPSTREAM, timeoutMs: 100, maxAttempts: 1, retryBaseMs: 1, retryMaxMs: 2, clock, metrics, logger, ...options });
  const upstreamLines = () => lines.filter((l) => l.event === 'upstream_request').map((l) => [l.route, l.outcome, l.status]);
  return { client: c, metrics, clock, lines, upstreamLines };
}

async function failure(promise: Promise<unknown>): Promise<UpstreamError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof UpstreamError) return error;
    throw error;
  }
  throw new Error('expected an UpstreamError');
}

beforeAll(() => nock.disableNetConnect());
afterAll(() => nock.enableNetConnect());
afterEach(() => {
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending).toEqual([]);
});

describe('IMDSv1 mode notices that tokens became required (item 2)', () => {
  it('a 401 to a tokenless GET asks for a token at once and retries with it', async () => {
    const { client: c, metrics } = client();
    nock(UPSTREAM).put('/latest/api/token').reply(403, '');
    nock(UPSTREAM).get('/latest/meta-data/a').reply(200, 'v1');
    expect((await c.get('/latest/meta-data/a', 'metadata')).body).toBe('v1');
    expect(c.session.mode).toBe('v1');

    nock(UPSTREAM).get('/latest/meta-data/a').matchHeader('x-aws-ec2-metadata-token', (v) => v === undefined).reply(401, '');
    nock(UPSTREAM).put('/latest/api/token').reply(200, 'tok-v2', { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' });
    nock(UPSTREAM).get('/latest/meta-data/a').matchHeader('x-aws-ec2-metadata-token', 'tok-v2').reply(200, 'v2');
    expect((await c.get('/latest/meta-data/a', 'metadata')).body).toBe('v2');
    expect(c.session.mode).toBe('v2');
    expect(metrics.count('upstreamToken:success')).toBe(1);
  });
});

describe('every request that reaches IMDS is counted under the outcome concluded (item 3)', () => {
  it('the token PUT is counted and logged under route "token": success', async () => {
    const { client: c, metrics, upstreamLines } = client();
    nock(UPSTREAM).put('/latest/api/token').reply(200, 'tok');
    nock(UPSTREAM).get('/latest/meta-data/a').reply(200, 'x');
    await c.get('/latest/meta-data/a', 'metadata');
    expect(metrics.count('upstream:token:success')).toBe(1);
    expect(upstreamLines()).toContainEqual(['token', 'success', 200]);
  });

  it('a token PUT that times out is an upstream timeout, counted and logged, and the GET never goes', async () => {
    const { client: c, metrics, upstreamLines } = client({ maxAttempts: 2 });
    nock(UPSTREAM).put('/latest/api/token').times(2).delay(500).reply(200, 'tok');
    expect((await failure(c.get(`${CREDS}/`, 'credentials_list'))).kind).toBe('timeout');
    expect(metrics.count('upstream:token:timeout')).toBe(2);
    expect(metrics.count('upstream:credentials_list:timeout')).toBe(0);
    expect(upstreamLines()).toEqual([
      ['token', 'timeout', undefined],
      ['token', 'timeout', undefined],
    ]);
  });

  for (const [status, outcome] of [
    [429, 'throttled'],
    [500, 'http_error'],
    [403, 'success'],
  ] as const) {
    it(`a token PUT answered ${status} counts as ${outcome}`, async () => {
      const { client: c, metrics } = client();
      nock(UPSTREAM).put('/latest/api/token').reply(status, '');
      if (status === 403) nock(UPSTREAM).get('/latest/meta-data/a').reply(200, 'v1');
      await c.get('/latest/meta-data/a', 'metadata').catch(() => undefined);
      expect(metrics.count(`upstream:token:${outcome}`)).toBe(1);
    });
  }

  const tokenOk = () => nock(UPSTREAM).put('/latest/api/token').reply(200, 'tok');
  for (const [what, body, usable] of [
    ['an error document', '{"Code" : "AssumeRoleUnauthorizedAccess", "Message" : "no", "LastUpdated" : "2026-11-28T12:00:00Z"}', undefined],
    ['malformed JSON', '{"Code" : "Success", "AccessKeyId"', undefined],
    ['already-expired credentials', formatCredentialsDocument(makeCredentials(Date.UTC(2026, 10, 28, 11, 0, 0))), () => false],
  ] as const) {
    it(`${what} is invalid_response, counted and logged so, never success`, async () => {
      const { client: c, metrics, upstreamLines } = client();
      tokenOk();
      nock(UPSTREAM).get(`${CREDS}/app-role`).reply(200, body);
      const error = await failure(fetchRoleCredentials(c, 'app-role', usable));
      expect(error.kind).toBe('invalid_response');
      expect(metrics.count('upstream:credentials:invalid_response')).toBe(1);
      expect(metrics.count('upstream:credentials:success')).toBe(0);
      expect(upstreamLines()).toContainEqual(['credentials', 'invalid_response', 200]);
    });
  }

  it('a 404 for the role is the failure it is, not a success', async () => {
    const { client: c, metrics } = client();
    tokenOk();
    nock(UPSTREAM).get(`${CREDS}/app-role`).reply(404, '');
    expect((await failure(fetchRoleCredentials(c, 'app-role'))).status).toBe(404);
    expect(metrics.count('upstream:credentials:http_error')).toBe(1);
  });
});

describe('role names go upstream raw (item 5)', () => {
  it('sends + = , @ as they are, as SDKs do and IMDS matches', async () => {
    const { client: c } = client();
    const role = 'ops+deploy=a,b@c.d_e-f';
    const doc = formatCredentialsDocument(makeCredentials(Date.UTC(2026, 10, 28, 18, 0, 0)));
    let seen = '';
    nock(UPSTREAM).put('/latest/api/token').reply(200, 'tok');
    nock(UPSTREAM)
      .get((uri) => ((seen = uri), true))
      .reply(200, doc);
    await fetchRoleCredentials(c, role);
    expect(seen).toBe(`${CREDS}/${role}`);
  });
});
