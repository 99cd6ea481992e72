import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultProxyConfig } from '../../src/config/proxyConfig.js';
import { silentLogger } from '../../src/runtime/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';

/**
 * When IMDS keeps rejecting the proxy's own upstream token (the fault matrix's
 * "upstream token 401 storm"), a forwarded metadata GET made with a perfectly valid client token
 * is answered 401. To an SDK a 401 means "your token is invalid": it fetches a new token from the
 * proxy, retries, and gets 401 again. The proxy's upstream trouble must read as upstream trouble:
 * a 503 with Retry-After, as the credential routes already answer.
 */
let sim: RunningSimulator;
let proxy: RunningProxy;

beforeAll(async () => {
  sim = await startSimulator({ port: 0, roles: ['storm-role'] });
  proxy = await startProxy(
    { ...defaultProxyConfig(), listen: { host: '127.0.0.1', port: 0 }, upstream: sim.url, upstreamTimeoutMs: 500, upstreamAttempts: 1 },
    { logger: silentLogger },
  );
});
afterAll(async () => {
  await proxy.close();
  await sim.close();
});

describe('an upstream that rejects the proxy\'s token', () => {
  it('never answers a client holding a valid token with 401', { timeout: 15_000 }, async () => {
    const token = await (await fetch(`${proxy.url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '300' } })).text();
    sim.setFaults({ tokenRejectStorm: true });
    for (const path of ['/latest/meta-data/instance-id', '/latest/meta-data/iam/info', '/latest/dynamic/instance-identity/document']) {
      const res = await fetch(`${proxy.url}${path}`, { headers: { 'x-aws-ec2-metadata-token': token } });
      await res.arrayBuffer();
      expect(res.status, path).not.toBe(401);
      expect(res.status, path).toBe(503);
      expect(Number(res.headers.get('retry-after')), path).toBeGreaterThan(0);
    }
  });
});
