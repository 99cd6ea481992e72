import { describe, expect, it } from 'vitest';
import { proxyAppWithFakes } from '../support/proxyServices.js';

const EXT = '/latest/meta-data/iam/security-credentials-extended/';
const IAM_INFO = JSON.stringify({
  Code: 'Success',
  LastUpdated: '2026-11-28T16:39:16Z',
  InstanceProfileArn: 'arn:aws:iam::123456789012:instance-profile/app-profile',
  InstanceProfileId: 'AIPAEXAMPLE',
});

function withIamInfo(mode: 'synthesize' | 'passthrough' | 'off' = 'synthesize') {
  const h = proxyAppWithFakes({ extendedCredentials: mode });
  h.setMetadataAnswer((path) =>
    path === '/latest/meta-data/iam/info'
      ? { status: 200, body: IAM_INFO, contentType: 'text/plain', tokenTtl: undefined }
      : { status: 404, body: 'not here', contentType: 'text/html', tokenTtl: undefined },
  );
  return h;
}

describe('security-credentials-extended', () => {
  it('synthesize: serves the cached credentials plus AccountId from iam/info, with one upstream credentials fetch', async () => {
    const { get, source, forwarded } = withIamInfo();
    const legacy = JSON.parse(await (await get('/latest/meta-data/iam/security-credentials/app-role')).text()) as Record<string, string>;
    for (let i = 0; i < 3; i++) {
      const res = await get(`${EXT}app-role`);
      expect(res.status).toBe(200);
      const doc = JSON.parse(await res.text()) as Record<string, string>;
      expect(Object.keys(doc)).toEqual(['Code', 'LastUpdated', 'Type', 'AccessKeyId', 'SecretAccessKey', 'Token', 'Expiration', 'AccountId']);
      expect(doc.AccountId).toBe('123456789012');
      expect(doc.AccessKeyId).toBe(legacy.AccessKeyId);
      expect(doc.Expiration).toBe(legacy.Expiration);
    }
    expect(await (await get(EXT)).text()).toBe('app-role');
    expect(source.fetchCalls).toBe(1);
    expect(forwarded).toEqual(['/latest/meta-data/iam/info']);
  });

  it('synthesize: answers 404 when the account cannot be learned, so SDKs use the legacy route', async () => {
    const h = proxyAppWithFakes();
    h.setMetadataAnswer(() => ({ status: 404, body: '', contentType: 'text/html', tokenTtl: undefined }));
    expect((await h.get(`${EXT}app-role`)).status).toBe(404);
    expect((await h.get(`${EXT}other-role`)).status).toBe(404);
  });

  it('passthrough forwards to upstream and does not cache credentials', async () => {
    const { get, forwarded } = withIamInfo('passthrough');
    expect((await get(`${EXT}app-role`)).status).toBe(404);
    await get(`${EXT}app-role`);
    // 404s are kept briefly: the second ask did not reach upstream.
    expect(forwarded).toEqual([`${EXT}app-role`]);
  });

  it('off answers 404 without asking upstream', async () => {
    const { get, forwarded, source } = withIamInfo('off');
    expect((await get(`${EXT}app-role`)).status).toBe(404);
    expect((await get(EXT)).status).toBe(404);
    expect(forwarded).toEqual([]);
    expect(source.fetchCalls).toBe(0);
  });
});

describe('container credentials endpoint', () => {
  const TOKEN = 'container-token-0123456789abcdef';

  it('serves the container-credentials JSON to a caller with the right Authorization', async () => {
    const { app, source } = proxyAppWithFakes({ containerAuthToken: TOKEN });
    const res = await app.request('/container-credentials', { headers: { authorization: TOKEN } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const doc = JSON.parse(await res.text()) as Record<string, string>;
    expect(Object.keys(doc).sort()).toEqual(['AccessKeyId', 'Expiration', 'SecretAccessKey', 'Token']);
    expect(doc.AccessKeyId).toBe(source.credentials.accessKeyId);
    expect(doc.Expiration).toMatch(/Z$/);
  });

  it('refuses a missing or wrong token with 401 and no credentials', async () => {
    const { app, source } = proxyAppWithFakes({ containerAuthToken: TOKEN });
    for (const headers of [{}, { authorization: 'wrong' }, { authorization: `${TOKEN}x` }] as Record<string, string>[]) {
      const res = await app.request('/container-credentials', { headers });
      expect(res.status).toBe(401);
      expect(await res.text()).not.toContain(source.credentials.accessKeyId);
    }
  });

  it('does not exist unless a token file is configured', async () => {
    const { app } = proxyAppWithFakes();
    expect((await app.request('/container-credentials', { headers: { authorization: TOKEN } })).status).toBe(404);
  });
});
