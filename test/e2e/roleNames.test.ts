import { afterAll, describe, expect, it } from 'vitest';
import { defaultProxyConfig } from '../../src/config/proxyConfig.js';
import { silentLogger } from '../../src/runtime/log.js';
import { startProxy } from '../../src/server/proxy.js';
import { startSimulator } from '../../src/simulator/simulator.js';

const ROLE = 'ops+deploy=eu,west@team';
const CREDS = '/latest/meta-data/iam/security-credentials';
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('role names with + = , @ (item 5)', () => {
  it('the simulator matches the raw path as IMDS does', async () => {
    const sim = await startSimulator({ port: 0, roles: [ROLE] });
    cleanups.push(() => sim.close());
    const token = await (await fetch(`${sim.url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } })).text();
    const headers = { 'x-aws-ec2-metadata-token': token };
    const raw = await fetch(`${sim.url}${CREDS}/${ROLE}`, { headers });
    expect(raw.status).toBe(200);
    const encoded = await fetch(`${sim.url}${CREDS}/${encodeURIComponent(ROLE)}`, { headers });
    expect(encoded.status).toBe(404);
  });

  it('end to end: the proxy fetches, caches and serves such a role', async () => {
    const sim = await startSimulator({ port: 0, roles: [ROLE] });
    const proxy = await startProxy(
      { ...defaultProxyConfig(), listen: { host: '127.0.0.1', port: 0 }, upstream: sim.url, upstreamAttempts: 1 },
      { logger: silentLogger },
    );
    cleanups.push(() => sim.close(), () => proxy.close());
    const token = await (await fetch(`${proxy.url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } })).text();
    const headers = { 'x-aws-ec2-metadata-token': token };
    expect(await (await fetch(`${proxy.url}${CREDS}/`, { headers })).text()).toBe(ROLE);
    const res = await fetch(`${proxy.url}${CREDS}/${ROLE}`, { headers });
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { AccessKeyId: string };
    expect(doc.AccessKeyId).toBe(sim.currentCredentials(ROLE)?.accessKeyId);
    expect(proxy.isReady()).toBe(true);
  });
});
