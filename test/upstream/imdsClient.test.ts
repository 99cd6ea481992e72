import nock from 'nock';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { createLogger, silentLogger } from '../../src/runtime/log.js';
import { ImdsClient } from '../../src/upstream/imdsClient.js';
import { UpstreamError } from '../../src/upstream/errors.js';
import { fetchRoleCredentials, fetchRoleNames } from '../../src/upstream/instanceProfile.js';
import { formatCredentialsDocument } from '../../src/imds/credentials.js';
import { makeCredentials } from '../support/credentials.js';
import { RecordingMetrics } from '../support/recordingMetrics.js';

// nock intercepts every request: nothing here leaves the process.
const UPSTREAM = 'http://127.0.0.1:1';
const CREDS = '/latest/meta-data/iam/security-credentials';

function client(clock = new ManualClock(), options: Partial<ConstructorParameters<typeof ImdsClient>[0]> = {}) {
  const metrics = new RecordingMetrics();
  const c = new ImdsClient({
    baseUrl: UPSTREAM,
    timeoutMs: 200,
    maxAttempts: 2,
    retryBaseMs: 1,
    retryMaxMs: 2,
    clock,
    metrics,
    logger: silentLogger,
    ...options,
  });
  return { client: c, metrics, clock };
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

describe('upstream session token', () => {
  it('asks for a 21600 s token once and reuses it for every GET', async () => {
    const { client: c, metrics } = client();
    nock(UPSTREAM)
      .put('/latest/api/token')
      .matchHeader('x-aws-ec2-metadata-token-ttl-seconds', '21600')
      .once()
      .reply(200, 'tok-1', { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' });
    nock(UPSTREAM).get('/latest/meta-data/instance-id').matchHeader('x-aws-ec2-metadata-token', 'tok-1').times(3).reply(200, 'i-123');
    for (let i = 0; i < 3; i++) expect((await c.get('/latest/meta-data/instance-id', 'metadata')).body).toBe('i-123');
    expect(metrics.count('upstreamToken:success')).toBe(1);
    expect(metrics.count('upstream:metadata:success')).toBe(3);
  });

  it('renews the token before it expires', async () => {
    const { client: c, clock } = client();
    nock(UPSTREAM).put('/latest/api/token').reply(200, 'tok-1', { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' });
    nock(UPSTREAM).get('/latest/meta-data/a').matchHeader('x-aws-ec2-metadata-token', 'tok-1').reply(200, 'x');
    await c.get('/latest/meta-data/a', 'metadata');
    clock.advance(21600 * 1000 * 0.95);
    nock(UPSTREAM).put('/latest/api/token').reply(200, 'tok-2', { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' });
    nock(UPSTREAM).get('/latest/meta-data/a').matchHeader('x-aws-ec2-metadata-token', 'tok-2').reply(200, 'y');
    expect((await c.get('/latest/meta-data/a', 'metadata')).body).toBe('y');
  });

  it('on a 401, fetches a new token and tries again', async () => {
    const { client: c } = client();
    nock(UPSTREAM).put('/latest/api/token').reply(200, 'old');
    nock(UPSTREAM).get('/latest/meta-data/a').matchHeader('x-aws-ec2-metadata-token', 'old').reply(401, '');
    nock(UPSTREAM).put('/latest/api/token').reply(200, 'new');
    nock(UPSTREAM).get('/latest/meta-data/a').matchHeader('x-aws-ec2-metadata-token', 'new').reply(200, 'ok');
    expect((await c.get('/latest/meta-data/a', 'metadata')).body).toBe('ok');
  });

  it('a 401 storm ends in a bounded number of requests, not a loop', async () => {
    const { client: c } = client();
    let puts = 0;
    let gets = 0;
    nock(UPSTREAM).put('/latest/api/token').times(10).reply(() => [200, `tok-${++puts}`]);
    nock(UPSTREAM).get('/latest/meta-data/a').times(10).reply(() => [401, String(++gets)]);
    const failure = await c.get('/latest/meta-data/a', 'metadata').catch((e: unknown) => e);
    // One fresh token and one more try per get(), then an upstream failure (never a 401 to relay).
    expect(failure).toBeInstanceOf(UpstreamError);
    expect([(failure as UpstreamError).kind, (failure as UpstreamError).status, (failure as UpstreamError).retryable]).toEqual(['http_error', 401, false]);
    expect([puts, gets]).toEqual([2, 2]);
    nock.cleanAll();
  });

  for (const status of [403, 404, 405]) {
    it(`falls back to tokenless IMDSv1 GETs when the token PUT answers ${status}`, async () => {
      const { client: c, metrics } = client();
      nock(UPSTREAM).put('/latest/api/token').once().reply(status, '');
      nock(UPSTREAM)
        .get('/latest/meta-data/a')
        .times(2)
        .reply(function () {
          return [this.req.headers['x-aws-ec2-metadata-token'] === undefined ? 200 : 400, 'v1'];
        });
      expect((await c.get('/latest/meta-data/a', 'metadata')).body).toBe('v1');
      expect((await c.get('/latest/meta-data/a', 'metadata')).body).toBe('v1');
      expect(c.session.mode).toBe('v1');
      expect(metrics.count('upstreamToken:v1_fallback')).toBe(1);
    });
  }

  for (const [what, reply] of [
    ['500', (s: nock.Interceptor) => s.reply(500, 'boom')],
    ['429', (s: nock.Interceptor) => s.reply(429, '')],
    ['connection reset', (s: nock.Interceptor) => s.replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))],
  ] as const) {
    it(`does not downgrade to IMDSv1 on a transient token failure (${what})`, async () => {
      const { client: c } = client(new ManualClock(), { maxAttempts: 1 });
      reply(nock(UPSTREAM).put('/latest/api/token'));
      await failure(c.get('/latest/meta-data/a', 'metadata'));
      expect(c.session.mode).toBe('none');
    });
  }
});

describe('failure classification and retries', () => {
  const tokenOk = () => nock(UPSTREAM).put('/latest/api/token').reply(200, 'tok');

  it('classifies a slow answer as a timeout, retries, then gives up', async () => {
    const { client: c, metrics } = client();
    tokenOk();
    nock(UPSTREAM).get('/latest/meta-data/a').times(2).delay(1000).reply(200, 'late');
    const error = await failure(c.get('/latest/meta-data/a', 'metadata'));
    expect(error.kind).toBe('timeout');
    expect(metrics.count('upstream:metadata:timeout')).toBe(2);
  });

  it('a slow body counts as a timeout too', async () => {
    const { client: c } = client(new ManualClock(), { maxAttempts: 1 });
    tokenOk();
    nock(UPSTREAM).get('/latest/meta-data/a').delayBody(1000).reply(200, 'late body');
    expect((await failure(c.get('/latest/meta-data/a', 'metadata'))).kind).toBe('timeout');
  });

  it('classifies 429 as throttled and recovers on the retry', async () => {
    const { client: c, metrics } = client();
    tokenOk();
    nock(UPSTREAM).get('/latest/meta-data/a').reply(429, '');
    nock(UPSTREAM).get('/latest/meta-data/a').reply(200, 'ok');
    expect((await c.get('/latest/meta-data/a', 'metadata')).body).toBe('ok');
    expect(metrics.count('upstream:metadata:throttled')).toBe(1);
    expect(metrics.count('upstream:metadata:success')).toBe(1);
  });

  it('classifies 5xx as http_error and a refused connection as network_error', async () => {
    const { client: c } = client(new ManualClock(), { maxAttempts: 1 });
    tokenOk();
    nock(UPSTREAM).get('/latest/meta-data/a').reply(503, '');
    const http = await failure(c.get('/latest/meta-data/a', 'metadata'));
    expect([http.kind, http.status]).toEqual(['http_error', 503]);
    nock(UPSTREAM).get('/latest/meta-data/b').replyWithError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    expect((await failure(c.get('/latest/meta-data/b', 'metadata'))).kind).toBe('network_error');
  });

  it('returns 404 as an answer, not a failure', async () => {
    const { client: c } = client();
    tokenOk();
    nock(UPSTREAM).get('/latest/meta-data/nope').reply(404, 'Not Found');
    expect((await c.get('/latest/meta-data/nope', 'metadata')).status).toBe(404);
  });
});

describe('instance profile', () => {
  const tokenOk = () => nock(UPSTREAM).put('/latest/api/token').reply(200, 'tok');

  it('reads the role list and the credentials document', async () => {
    const { client: c } = client();
    const creds = makeCredentials(Date.now() + 3600_000);
    tokenOk();
    nock(UPSTREAM).get(`${CREDS}/`).reply(200, 'app-role');
    nock(UPSTREAM).get(`${CREDS}/app-role`).reply(200, formatCredentialsDocument(creds));
    expect(await fetchRoleNames(c)).toEqual(['app-role']);
    const fetched = await fetchRoleCredentials(c, 'app-role');
    expect(fetched.accessKeyId).toBe(creds.accessKeyId);
    expect(fetched.secretAccessKey === creds.secretAccessKey).toBe(true);
    expect(fetched.expiration).toBe(creds.expiration);
  });

  it('an instance without a profile has no roles', async () => {
    const { client: c } = client();
    tokenOk();
    nock(UPSTREAM).get(`${CREDS}/`).reply(404, '');
    expect(await fetchRoleNames(c)).toEqual([]);
  });

  it('refuses an error document and malformed JSON as invalid responses, without echoing the body', async () => {
    const { client: c } = client();
    tokenOk();
    nock(UPSTREAM)
      .get(`${CREDS}/app-role`)
      .reply(200, '{"Code" : "AssumeRoleUnauthorizedAccess", "Message" : "EC2 cannot assume the role", "LastUpdated" : "2026-11-28T16:39:16Z"}');
    const errorDoc = await failure(fetchRoleCredentials(c, 'app-role'));
    expect(errorDoc.kind).toBe('invalid_response');
    expect(errorDoc.message).toContain('AssumeRoleUnauthorizedAccess');

    nock(UPSTREAM).get(`${CREDS}/app-role`).reply(200, '{"Code" : "Success", "SecretAccessKey" : "sekrit-value"');
    const malformed = await failure(fetchRoleCredentials(c, 'app-role'));
    expect(malformed.kind).toBe('invalid_response');
    expect(malformed.message).not.toContain('sekrit-value');
  });

  it('refuses a role listing that is not role names', async () => {
    const { client: c } = client();
    tokenOk();
    nock(UPSTREAM).get(`${CREDS}/`).reply(200, '<html>captive portal</html>');
    expect((await failure(fetchRoleNames(c))).kind).toBe('invalid_response');
  });
});

describe('upstream request log', () => {
  it('writes one line per exchange: credentials at info, failures at warn, no body', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const { client: c } = client(new ManualClock(), { logger, maxAttempts: 2 });
    nock(UPSTREAM).put('/latest/api/token').reply(200, 'tok-1');
    nock(UPSTREAM).get(`${CREDS}/`).reply(503).get(`${CREDS}/`).reply(200, 'app-role');
    nock(UPSTREAM).get('/latest/meta-data/instance-id').reply(200, 'i-123');
    expect((await c.get(`${CREDS}/`, 'credentials_list')).body).toBe('app-role');
    await c.get('/latest/meta-data/instance-id', 'metadata');
    const upstream = lines.filter((l) => l.event === 'upstream_request');
    expect(upstream.map((l) => [l.level, l.route, l.outcome, l.status])).toEqual([
      ['info', 'token', 'success', 200],
      ['warn', 'credentials_list', 'http_error', 503],
      ['info', 'credentials_list', 'success', 200],
    ]);
    expect(JSON.stringify(upstream)).not.toContain('app-role');
  });
});

/** A client whose log lines are kept, for the outcome tests below. */
function loggedClient(options: Partial<ConstructorParameters<typeof ImdsClient>[0]> = {}) {
  const metrics = new RecordingMetrics();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const clock = new ManualClock();
  const c = new ImdsClient({ baseUrl: UPSTREAM, timeoutMs: 100, maxAttempts: 1, retryBaseMs: 1, retryMaxMs: 2, clock, metrics, logger, ...options });
  const upstreamLines = () => lines.filter((l) => l.event === 'upstream_request').map((l) => [l.route, l.outcome, l.status]);
  return { client: c, metrics, clock, lines, upstreamLines };
}

describe('IMDSv1 mode notices that tokens became required (item 2)', () => {
  it('a 401 to a tokenless GET asks for a token at once and retries with it', async () => {
    const { client: c, metrics } = loggedClient();
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
    const { client: c, metrics, upstreamLines } = loggedClient();
    nock(UPSTREAM).put('/latest/api/token').reply(200, 'tok');
    nock(UPSTREAM).get('/latest/meta-data/a').reply(200, 'x');
    await c.get('/latest/meta-data/a', 'metadata');
    expect(metrics.count('upstream:token:success')).toBe(1);
    expect(upstreamLines()).toContainEqual(['token', 'success', 200]);
  });

  it('a token PUT that times out is an upstream timeout, counted and logged, and the GET never goes', async () => {
    const { client: c, metrics, upstreamLines } = loggedClient({ maxAttempts: 2 });
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
      const { client: c, metrics } = loggedClient();
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
      const { client: c, metrics, upstreamLines } = loggedClient();
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
    const { client: c, metrics } = loggedClient();
    tokenOk();
    nock(UPSTREAM).get(`${CREDS}/app-role`).reply(404, '');
    expect((await failure(fetchRoleCredentials(c, 'app-role'))).status).toBe(404);
    expect(metrics.count('upstream:credentials:http_error')).toBe(1);
  });
});

describe('role names go upstream raw (item 5)', () => {
  it('sends + = , @ as they are, as SDKs do and IMDS matches', async () => {
    const { client: c } = loggedClient();
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

describe('stopping', () => {
  it('a stop cuts a retry backoff short: get() ends at once, with no further attempt', async () => {
    const stop = new AbortController();
    let requests = 0;
    const metrics = new RecordingMetrics();
    const c = new ImdsClient({
      baseUrl: UPSTREAM,
      timeoutMs: 100,
      maxAttempts: 5,
      retryBaseMs: 60_000,
      retryMaxMs: 60_000,
      clock: new ManualClock(),
      metrics,
      logger: silentLogger,
      signal: stop.signal,
      request: async () => {
        requests++;
        throw new UpstreamError('timeout', 'scripted timeout');
      },
    });
    const started = performance.now();
    const pending = failure(c.get('/latest/meta-data/a', 'metadata'));
    await new Promise((r) => setTimeout(r, 50));
    stop.abort();
    const error = await pending;
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(error.message).toMatch(/stopping/);
    expect(requests).toBe(1);
    // The one attempt before the stop (its token PUT) is counted; the stop is no upstream outcome.
    expect([...metrics.counts].filter(([k]) => k.startsWith('upstream:'))).toEqual([['upstream:token:timeout', 1]]);
  });

  it('a stop aborts an exchange in flight over HTTP, whatever its timeout', async () => {
    const stop = new AbortController();
    nock(UPSTREAM).get('/latest/meta-data/slow').delay(30_000).reply(200, 'late');
    const { httpRequest } = await import('../../src/upstream/httpRequest.js');
    const pending = failure(httpRequest({ method: 'GET', url: `${UPSTREAM}/latest/meta-data/slow`, timeoutMs: 60_000, signal: stop.signal }));
    setTimeout(() => stop.abort(), 50);
    expect((await pending).message).toMatch(/stopping/);
    nock.cleanAll();
  });
});
