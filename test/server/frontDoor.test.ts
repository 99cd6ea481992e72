import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createHostGuard } from '../../src/server/hostGuard.js';
import { parseRequestTarget } from '../../src/server/requestTarget.js';
import { proxyAppWithFakes } from '../support/proxyServices.js';

const TTL = { 'x-aws-ec2-metadata-token-ttl-seconds': '60' };

describe('request target: IMDS path rules', () => {
  it('collapses leading slashes, resolves dot segments, decodes escapes but %2F, keeps the query for hono only', () => {
    const cases: [string, { path: string; url: string } | undefined][] = [
      ['/latest/api/token', { path: '/latest/api/token', url: '/latest/api/token' }],
      ['//latest/api/token', { path: '/latest/api/token', url: '/latest/api/token' }],
      ['////latest/api/token?x=1', { path: '/latest/api/token', url: '/latest/api/token?x=1' }],
      ['/latest/meta-data/../api/token', { path: '/latest/api/token', url: '/latest/api/token' }],
      ['/..//latest/api/token', { path: '/latest/api/token', url: '/latest/api/token' }],
      ['/latest/%2e%2e/latest/api/token', { path: '/latest/api/token', url: '/latest/api/token' }],
      ['/latest/meta-data/iam/security-credentials/app%2Drole', { path: '/latest/meta-data/iam/security-credentials/app-role', url: '/latest/meta-data/iam/security-credentials/app%2Drole' }],
      ['/a%2Fb', { path: '/a%2Fb', url: '/a%2Fb' }],
      ['/bad%escape', { path: '/bad%escape', url: '/bad%escape' }],
      ['/latest\\api', undefined],
      ['http://127.0.0.1/latest/api/token', undefined],
      ['*', undefined],
      ['', undefined],
    ];
    for (const [raw, expected] of cases) expect([raw, parseRequestTarget(raw)]).toEqual([raw, expected]);
  });
});

describe('host guard (DNS rebinding)', () => {
  const guard = createHostGuard(['proxy.internal']);
  it('passes IP literals, localhost, allowed names and no Host; refuses other DNS names and browser headers', () => {
    const cases: [Record<string, string>, string][] = [
      [{}, 'pass'],
      [{ host: '' }, 'pass'],
      [{ host: '127.0.0.1' }, 'pass'],
      [{ host: '127.0.0.1:8169' }, 'pass'],
      [{ host: '169.254.169.254' }, 'pass'],
      [{ host: '[::1]' }, 'pass'],
      [{ host: '[::1]:8169' }, 'pass'],
      [{ host: '[fd00:ec2::254]:80' }, 'pass'],
      [{ host: '::1' }, 'pass'],
      [{ host: 'localhost' }, 'pass'],
      [{ host: 'LocalHost:8169' }, 'pass'],
      [{ host: 'proxy.internal:8169' }, 'pass'],
      [{ host: 'PROXY.internal' }, 'pass'],
      [{ host: 'attacker.example' }, 'rebinding'],
      [{ host: 'attacker.example:8169' }, 'rebinding'],
      [{ host: 'localhost.attacker.example' }, 'rebinding'],
      [{ host: '127.0.0.1.nip.io' }, 'rebinding'],
      [{ host: 'proxy.internal.' }, 'rebinding'],
      [{ host: '2130706433' }, 'rebinding'],
      [{ host: '127.0.0.1', origin: 'http://127.0.0.1' }, 'rebinding'],
      [{ host: '127.0.0.1', origin: 'null' }, 'rebinding'],
      [{ 'sec-fetch-site': 'same-origin' }, 'rebinding'],
      // Node's own fetch sends Sec-Fetch-Mode: cors on every request; browsers add Sec-Fetch-Site.
      [{ host: '127.0.0.1', 'sec-fetch-mode': 'cors' }, 'pass'],
      [{ host: '[::1' }, 'malformed'],
      [{ host: '[nope]' }, 'malformed'],
      [{ host: '[::1]x' }, 'malformed'],
      [{ host: '127.0.0.1:http' }, 'malformed'],
      [{ host: 'a:b:c' }, 'malformed'],
    ];
    for (const [headers, verdict] of cases) expect([headers, guard(headers)]).toEqual([headers, verdict]);
  });
});

describe('the front door', () => {
  it('--allow-host lets a named proxy be used; any other name is refused with IMDS 403 and counted, before the route', async () => {
    const h = proxyAppWithFakes({ frontDoor: { allowHosts: ['proxy.internal'] } });
    const ok = await h.app.request('/latest/api/token', { method: 'PUT', headers: { ...TTL, host: 'proxy.internal:8169' } });
    expect(ok.status).toBe(200);
    const refused = await h.app.request('/latest/api/token', { method: 'PUT', headers: { ...TTL, host: 'attacker.example:8169' } });
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain('<title>403 - Forbidden</title>');
    expect(h.metrics.count('tokenIssued')).toBe(1);
    expect(h.metrics.count('request:token:PUT:200')).toBe(1);
    expect(h.metrics.count('request:token:PUT:403')).toBe(1);
  });

  it('answers the token PUT 200 whatever path spelling a client makes of the endpoint, never 403/404/405', async () => {
    const h = proxyAppWithFakes();
    const spelling = fc
      .tuple(fc.integer({ min: 1, max: 4 }), fc.constantFrom('', 'latest/../', './', 'latest/meta-data/../../', '%2e/'), fc.constantFrom('', '?', '?a=1'))
      .map(([slashes, detour, query]) => `${'/'.repeat(slashes)}${detour}latest/api/token${query}`);
    const sdkHeader = fc.constantFrom<Record<string, string>>({}, { 'user-agent': 'aws-sdk-php/3' }, { 'sec-fetch-mode': 'cors' }, { host: '[::1]:8169' }, { host: 'localhost' });
    await fc.assert(
      fc.asyncProperty(spelling, sdkHeader, async (path, extra) => {
        const res = await h.app.request(path, { method: 'PUT', headers: { ...TTL, ...extra } });
        expect([path, res.status]).toEqual([path, 200]);
      }),
      { numRuns: 100 },
    );
  });

  it('serves the credentials routes from the front door and forwards the rest to hono, each counted once', async () => {
    const h = proxyAppWithFakes();
    await h.services.credentials.refreshIfDue();
    expect((await h.get('/latest/meta-data/iam/security-credentials/app-role')).status).toBe(200);
    expect((await h.get('//latest/meta-data/iam/security-credentials/')).status).toBe(200);
    expect((await h.get('/latest/meta-data/iam/security-credentials/app-role/extra')).status).toBe(200);
    expect((await h.get('/latest/meta-data/iam/security-credentials//')).status).toBe(200);
    expect(h.forwarded).toEqual(['/latest/meta-data/iam/security-credentials/app-role/extra', '/latest/meta-data/iam/security-credentials//']);
    // Labels go by path shape (routeLabel.ts), whoever answers.
    expect(h.metrics.count('request:credentials:GET:200')).toBe(3);
    expect(h.metrics.count('request:credentials_list:GET:200')).toBe(1);
    expect([...h.metrics.counts.keys()].filter((k) => k.startsWith('request:')).reduce((n, k) => n + h.metrics.count(k), 0)).toBe(4);
  });

  it('answers a bug in a route with IMDS-style 500, logged, the secret nowhere', async () => {
    const h = proxyAppWithFakes();
    // A bug on the waiting path (a rejected promise) and on the cached one (a throw).
    h.services.credentials.serveCachedRoleList = () => undefined;
    h.services.credentials.roleList = () => Promise.reject(new Error('boom'));
    const res = await h.get('/latest/meta-data/iam/security-credentials/');
    expect(res.status).toBe(500);
    expect(res.headers.get('server')).toBe('EC2ws');
    expect(await res.text()).toBe('500 - Internal Server Error\n');
    h.services.credentials.serveCachedRoleList = () => {
      throw new Error('boom');
    };
    expect((await h.get('/latest/meta-data/iam/security-credentials/')).status).toBe(500);
    expect(h.metrics.count('request:credentials_list:GET:500')).toBe(2);
  });
});
