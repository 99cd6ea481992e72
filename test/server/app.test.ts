import { describe, expect, it } from 'vitest';
import { proxyAppWithFakes } from '../support/proxyServices.js';

const LIST = '/latest/meta-data/iam/security-credentials/';

describe('proxy routes', () => {
  it('answers the token PUT locally, echoing the TTL', async () => {
    const { app, source, metrics } = proxyAppWithFakes();
    const res = await app.request('/latest/api/token', { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '300' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-aws-ec2-metadata-token-ttl-seconds')).toBe('300');
    expect(res.headers.get('server')).toBe('EC2ws');
    expect((await res.text()).length).toBeGreaterThan(40);
    expect(source.listCalls + source.fetchCalls).toBe(0);
    expect(metrics.count('tokenIssued')).toBe(1);
  });

  it('counts token rejections by reason', async () => {
    const { app, metrics, get } = proxyAppWithFakes();
    await app.request('/latest/api/token', { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '0' } });
    await app.request('/latest/api/token', { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60', 'x-forwarded-for': '10.0.0.1' } });
    await get(LIST, {});
    await get(LIST, { 'x-aws-ec2-metadata-token': 'garbage' });
    expect(['bad_ttl', 'forwarded', 'missing', 'invalid'].map((r) => metrics.count(`tokenRejected:${r}`))).toEqual([1, 1, 1, 1]);
  });

  it('rejects an expired token with 401', async () => {
    const { clock, get } = proxyAppWithFakes();
    clock.advance(21600 * 1000);
    expect((await get(LIST)).status).toBe(401);
  });

  it('serves tokenless requests only when client tokens are optional; bad tokens are 401 either way', async () => {
    const optional = proxyAppWithFakes({ clientTokens: 'optional' });
    expect((await optional.get(LIST, {})).status).toBe(200);
    expect((await optional.get(LIST, { 'x-aws-ec2-metadata-token': 'nope' })).status).toBe(401);
    const required = proxyAppWithFakes();
    expect((await required.get(LIST, {})).status).toBe(401);
  });

  it('serves the role list without a trailing newline, with and without the slash', async () => {
    const { get } = proxyAppWithFakes();
    for (const path of [LIST, LIST.slice(0, -1)]) {
      const res = await get(path);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('app-role');
      expect(res.headers.get('content-type')).toBe('text/plain');
    }
  });

  it('serves credentials in the IMDS layout, with and without a trailing slash, from one upstream fetch', async () => {
    const { get, source } = proxyAppWithFakes();
    const bodies = await Promise.all([get(`${LIST}app-role`), get(`${LIST}app-role/`)].map(async (p) => (await p).text()));
    expect(bodies[0]).toBe(bodies[1]);
    const doc = JSON.parse(bodies[0]!) as Record<string, string>;
    expect(Object.keys(doc)).toEqual(['Code', 'LastUpdated', 'Type', 'AccessKeyId', 'SecretAccessKey', 'Token', 'Expiration']);
    expect(doc.AccessKeyId).toBe(source.credentials.accessKeyId);
    expect(bodies[0]).toMatch(/^\{\n {2}"Code" : "Success",\n/);
    expect(doc.Expiration).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(source.fetchCalls).toBe(1);
  });

  it('answers 404 for an unknown role and 503 with Retry-After when nothing is cached and upstream fails', async () => {
    const { get, source } = proxyAppWithFakes();
    expect((await get(`${LIST}someone-else`)).status).toBe(404);
    const cold = proxyAppWithFakes();
    cold.source.failWith('timeout');
    const res = await cold.get(`${LIST}app-role`);
    expect(res.status).toBe(503);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const body = await res.text();
    expect(body).toContain('upstream');
    expect(body).not.toContain(source.credentials.secretAccessKey);
  });

  it('forwards other paths and relays status, body and content type; caches by path policy', async () => {
    const { get, forwarded, setMetadataAnswer } = proxyAppWithFakes();
    setMetadataAnswer((path) =>
      path.endsWith('document')
        ? { status: 200, body: '{"region":"eu-west-1"}', contentType: 'application/json', tokenTtl: undefined }
        : { status: 404, body: 'missing', contentType: 'text/html', tokenTtl: undefined },
    );
    const doc = await get('/latest/dynamic/instance-identity/document');
    expect([doc.status, doc.headers.get('content-type'), await doc.text()]).toEqual([200, 'application/json', '{"region":"eu-west-1"}']);
    const missing = await get('/latest/meta-data/nothing-here');
    expect([missing.status, await missing.text()]).toEqual([404, 'missing']);
    await get('/latest/dynamic/instance-identity/document');
    expect(forwarded).toEqual(['/latest/dynamic/instance-identity/document', '/latest/meta-data/nothing-here']);
  });

  it('never caches user-data', async () => {
    const { get, forwarded } = proxyAppWithFakes();
    await get('/latest/user-data');
    await get('/latest/user-data');
    expect(forwarded).toEqual(['/latest/user-data', '/latest/user-data']);
  });

  it('answers methods other than GET/HEAD under /latest/ with 405, and unknown paths with 404', async () => {
    const { app, token } = proxyAppWithFakes();
    const post = await app.request(LIST, { method: 'POST', headers: { 'x-aws-ec2-metadata-token': token } });
    expect(post.status).toBe(405);
    expect((await app.request('/nope')).status).toBe(404);
    expect((await app.request('/latest/api/token', { method: 'DELETE' })).headers.get('allow')).toBe('OPTIONS, PUT');
  });

  it('HEAD answers like GET without a body', async () => {
    const { app, token } = proxyAppWithFakes();
    const res = await app.request(LIST, { method: 'HEAD', headers: { 'x-aws-ec2-metadata-token': token } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
  });

  it('health needs no token; ready only once credentials are cached', async () => {
    const { app, services } = proxyAppWithFakes();
    expect((await app.request('/healthz')).status).toBe(200);
    expect((await app.request('/readyz')).status).toBe(503);
    await services.credentials.refreshIfDue();
    expect((await app.request('/readyz')).status).toBe(200);
  });

  it('records every request under a bounded route label', async () => {
    const { get, metrics } = proxyAppWithFakes();
    await get(`${LIST}app-role`);
    await get('/latest/meta-data/' + 'x'.repeat(300));
    await get('/totally/unknown');
    expect(metrics.count('request:credentials:GET:200')).toBe(1);
    expect(metrics.count('request:metadata:GET:200')).toBe(1);
    expect(metrics.count('request:other:GET:404')).toBe(1);
  });
});
