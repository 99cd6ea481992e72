import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { proxyAppWithFakes } from '../support/proxyServices.js';

/**
 * Property tests over the client surface: whatever method, path, headers and body a client
 * sends, the answer is a well-formed IMDS-style status, never a 500 from a throw, and never
 * carries a secret unless it is the credentials document itself.
 */

const segment = fc.oneof(
  fc.constantFrom('latest', 'meta-data', 'iam', 'security-credentials', 'security-credentials-extended', 'app-role', 'api', 'token', 'info', 'dynamic', 'user-data', 'instance-id'),
  fc.constantFrom('..', '.', '%2e%2e', '%2E%2e', '%2f', '%00', '', '%ff', 'ü', '☃', '%20', 'a'.repeat(300), '%zz', '\\'),
  fc.string({ maxLength: 12 }).map(encodeURIComponent),
);
const path = fc.array(segment, { maxLength: 8 }).map((parts) => `/${parts.join('/')}`);
const method = fc.constantFrom('GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'PATCH', 'PROPFIND', 'get');
const headerName = fc.constantFrom(
  'x-aws-ec2-metadata-token',
  'X-AWS-EC2-METADATA-TOKEN',
  'x-aws-ec2-metadata-token-ttl-seconds',
  'X-Forwarded-For',
  'authorization',
  'content-type',
  'x-anything',
);
const headerValue = fc.oneof(
  fc.constantFrom('21600', '0', '-1', '1e3', '', ' 5', '99999999999999999999', 'abc'),
  fc.string({ maxLength: 40 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
  fc.constant('x'.repeat(8000)),
);
const headers = fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 });
const body = fc.option(fc.string({ maxLength: 200 }), { nil: undefined });

const ALLOWED = new Set([200, 400, 401, 403, 404, 405, 503]);

describe('hostile client input (property-based)', () => {
  it('always answers a well-formed IMDS-style status without leaking secrets', async () => {
    const harness = proxyAppWithFakes();
    const { app, source, token } = harness;
    await harness.services.credentials.refreshIfDue();
    const secret = source.credentials.secretAccessKey;
    const sessionToken = source.credentials.token;

    await fc.assert(
      fc.asyncProperty(method, path, headers, body, fc.boolean(), async (m, p, hs, b, withValidToken) => {
        const h = new Headers();
        for (const [name, value] of hs) h.append(name, value);
        if (withValidToken) h.set('x-aws-ec2-metadata-token', token);
        const canHaveBody = m !== 'GET' && m !== 'HEAD' && m !== 'get';
        const res = await app.request(p, { method: m.toUpperCase(), headers: h, ...(canHaveBody && b !== undefined ? { body: b } : {}) });
        expect(ALLOWED.has(res.status), `${m} ${p} -> ${res.status}`).toBe(true);
        expect(res.headers.get('server')).toBe('EC2ws');
        const text = await res.text();
        const isCredentialsDocument = res.status === 200 && text.startsWith('{\n  "Code" : "Success"');
        if (!isCredentialsDocument) {
          expect(text.includes(secret)).toBe(false);
          expect(text.includes(sessionToken)).toBe(false);
        }
      }),
      { numRuns: 400 },
    );
    // Nothing a client sent cost the cached credentials.
    expect(harness.services.credentials.isReady()).toBe(true);
    expect(source.fetchCalls).toBe(1);
  });

  it('duplicate token headers are one invalid token: 401, never a pass', async () => {
    const { app, token } = proxyAppWithFakes();
    const h = new Headers();
    h.append('x-aws-ec2-metadata-token', token);
    h.append('x-aws-ec2-metadata-token', token);
    const res = await app.request('/latest/meta-data/iam/security-credentials/', { headers: h });
    expect(res.status).toBe(401);
  });
});
