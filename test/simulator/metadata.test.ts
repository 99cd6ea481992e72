import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { bodyOf, call, fetchToken, statusOf, TOKEN_HEADER } from './rawCall.js';

describe('simulated metadata', () => {
  let sim: RunningSimulator;
  let token: string;
  const get = (path: string, method = 'GET') => call(`${sim.url}${path}`, method, { [TOKEN_HEADER]: token });

  beforeAll(async () => {
    sim = await startSimulator({ port: 0, roles: ['role-a'], accountId: '210987654321', region: 'ap-southeast-2' });
    token = await fetchToken(sim.url);
  });
  afterAll(() => sim.close());

  it('region, availability zone and identity document follow the options', async () => {
    expect(bodyOf(await get('/latest/meta-data/placement/region'))).toBe('ap-southeast-2');
    expect(bodyOf(await get('/latest/meta-data/placement/availability-zone/'))).toBe('ap-southeast-2a');
    const doc = JSON.parse(bodyOf(await get('/latest/dynamic/instance-identity/document'))) as Record<string, string>;
    expect(doc).toMatchObject({ accountId: '210987654321', region: 'ap-southeast-2', availabilityZone: 'ap-southeast-2a' });
    expect(doc.instanceId).toBe(bodyOf(await get('/latest/meta-data/instance-id')));
  });

  it('iam/info names the instance profile in the configured account', async () => {
    const info = JSON.parse(bodyOf(await get('/latest/meta-data/iam/info'))) as Record<string, string>;
    expect(info.InstanceProfileArn).toMatch(/^arn:aws:iam::210987654321:instance-profile\/[\w+=,.@-]+$/);
    expect(info.InstanceProfileId).toMatch(/^AIPA[A-Z0-9]{17}$/);
  });

  it('the other leaves SDKs and scripts read', async () => {
    expect(bodyOf(await get('/latest/meta-data/ami-id'))).toMatch(/^ami-[0-9a-f]{17}$/);
    expect(bodyOf(await get('/latest/meta-data/instance-type'))).toMatch(/^[a-z0-9]+\.[a-z0-9]+$/);
    expect(bodyOf(await get('/latest/meta-data/local-ipv4'))).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(bodyOf(await get('/latest/meta-data/mac'))).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(statusOf(await get('/latest/user-data'))).toBe(200);
  });

  it('listings: names separated by \\n, with or without the slash', async () => {
    for (const path of ['/latest/meta-data/', '/latest/meta-data']) {
      const names = bodyOf(await get(path)).split('\n');
      expect(names).toEqual(expect.arrayContaining(['ami-id', 'iam/', 'instance-id', 'placement/']));
    }
    expect(bodyOf(await get('/latest/meta-data/iam/')).split('\n')).toEqual(['info', 'security-credentials/']);
  });

  it('Server: EC2ws and text/plain on metadata, also on a 404', async () => {
    const leaf = await get('/latest/meta-data/instance-id');
    expect('headers' in leaf && leaf.headers.server).toBe('EC2ws');
    expect('headers' in leaf && leaf.headers['content-type']).toBe('text/plain');
    const missing = await get('/latest/meta-data/nothing-here');
    expect(statusOf(missing)).toBe(404);
    expect('headers' in missing && missing.headers.server).toBe('EC2ws');
  });

  it('security-credentials-extended answers 404 unless enabled', async () => {
    expect(statusOf(await get('/latest/meta-data/iam/security-credentials-extended/'))).toBe(404);
    expect(statusOf(await get('/latest/meta-data/iam/security-credentials-extended/role-a'))).toBe(404);
  });

  it('paths outside /latest/ and methods other than GET/HEAD', async () => {
    expect(statusOf(await get('/'))).toBe(404);
    expect(statusOf(await get('/2021-01-03/meta-data/instance-id'))).toBe(404);
    expect(statusOf(await get('/latest/meta-data/instance-id', 'POST'))).toBe(405);
  });

  it('OPTIONS on the token path: 200 with Allow', async () => {
    const r = await call(`${sim.url}/latest/api/token`, 'OPTIONS');
    expect(statusOf(r)).toBe(200);
    expect('headers' in r && r.headers.allow).toBe('OPTIONS, PUT');
  });
});

describe('simulated extended credentials', () => {
  it('when enabled: list and document, AccountId last, same keys as the legacy route', async () => {
    const sim = await startSimulator({ port: 0, roles: ['role-x'], extendedCredentials: true, accountId: '111122223333' });
    try {
      const token = await fetchToken(sim.url);
      const get = (path: string) => call(`${sim.url}/latest/meta-data/iam/${path}`, 'GET', { [TOKEN_HEADER]: token });
      expect(bodyOf(await get('security-credentials-extended/'))).toBe('role-x');
      const extended = JSON.parse(bodyOf(await get('security-credentials-extended/role-x'))) as Record<string, string>;
      const legacy = JSON.parse(bodyOf(await get('security-credentials/role-x'))) as Record<string, string>;
      expect(Object.keys(extended).at(-1)).toBe('AccountId');
      expect(extended.AccountId).toBe('111122223333');
      expect(extended.AccessKeyId).toBe(legacy.AccessKeyId);
      expect(extended.Token === legacy.Token).toBe(true);
    } finally {
      await sim.close();
    }
  });

  it('several roles are listed one a line, no trailing newline, each served', async () => {
    const sim = await startSimulator({ port: 0, roles: ['first', 'second'] });
    try {
      const token = await fetchToken(sim.url);
      const base = `${sim.url}/latest/meta-data/iam/security-credentials`;
      expect(bodyOf(await call(`${base}/`, 'GET', { [TOKEN_HEADER]: token }))).toBe('first\nsecond');
      expect(statusOf(await call(`${base}/second/`, 'GET', { [TOKEN_HEADER]: token }))).toBe(200);
      const a = sim.currentCredentials('first')!;
      const b = sim.currentCredentials('second')!;
      expect(a.accessKeyId).not.toBe(b.accessKeyId);
      expect(sim.currentCredentials('third')).toBeUndefined();
    } finally {
      await sim.close();
    }
  });
});
