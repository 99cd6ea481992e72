import { describe, expect, it } from 'vitest';
import { proxyAppWithFakes } from '../support/proxyServices.js';

describe('forwarded redirects (item 6)', () => {
  it('relay the Location IMDS sent, unchanged', async () => {
    const h = proxyAppWithFakes();
    h.setMetadataAnswer((path) => ({
      status: 301,
      body: '',
      contentType: 'text/plain',
      tokenTtl: undefined,
      location: `http://169.254.169.254${path}/`,
    }));
    const res = await h.get('/latest/meta-data/placement');
    expect(res.status).toBe(301);
    expect(res.headers.get('location')).toBe('http://169.254.169.254/latest/meta-data/placement/');
  });
});

describe('forwarded metadata lifetimes', () => {
  it('run on the monotonic clock: a wall step back of an hour does not keep iam/info an hour longer', async () => {
    const h = proxyAppWithFakes();
    await h.get('/latest/meta-data/iam/info');
    h.clock.stepWall(-3600_000);
    h.clock.advance(61_000);
    await h.get('/latest/meta-data/iam/info');
    expect(h.forwarded).toEqual(['/latest/meta-data/iam/info', '/latest/meta-data/iam/info']);
  });
});
