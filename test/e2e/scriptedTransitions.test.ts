import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { defaultProxyConfig } from '../../src/config/proxyConfig.js';
import { silentLogger } from '../../src/runtime/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { sampleValue } from '../support/exposition.js';
import { ScriptedImds } from '../support/scriptedImds.js';

/**
 * The model test's transitions again, over real sockets: the proxy as `serve` runs it, against
 * the same scripted IMDS on loopback HTTP, on the real clock.
 */
const ROLE = 'app-role';
const CREDS = '/latest/meta-data/iam/security-credentials';
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function eventually(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function harness() {
  const imds = new ScriptedImds(new ManualClock(Date.now()), [ROLE], 60_000);
  const upstream = await imds.listen();
  const proxy: RunningProxy = await startProxy(
    { ...defaultProxyConfig(), listen: { host: '127.0.0.1', port: 0 }, upstream: upstream.url, maxAgeSeconds: 1, upstreamTimeoutMs: 200, upstreamAttempts: 1 },
    { logger: silentLogger },
  );
  cleanups.push(() => upstream.close(), () => proxy.close());
  await eventually(() => proxy.isReady(), 'ready');
  const token = await (await fetch(`${proxy.url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } })).text();
  const get = (path: string) => fetch(`${proxy.url}${path}`, { headers: { 'x-aws-ec2-metadata-token': token } });
  return { imds, proxy, get };
}

describe('credential transitions over HTTP', () => {
  it('one listing 404 keeps the credentials in service and /readyz 200; metrics match what IMDS received', { timeout: 15_000 }, async () => {
    const { imds, proxy, get } = await harness();
    const before = (await (await get(`${CREDS}/${ROLE}`)).json()) as { AccessKeyId: string };
    imds.fault('listing_404', 'credentials_list', 1);
    await eventually(() => imds.exchanges.some((e) => e.faulted), 'the listing 404 answered');
    const during = await get(`${CREDS}/${ROLE}`);
    expect(during.status).toBe(200);
    expect(((await during.json()) as { AccessKeyId: string }).AccessKeyId).toBe(before.AccessKeyId);
    expect(await (await get(`${CREDS}/`)).text()).toBe(ROLE);
    expect((await fetch(`${proxy.url}/readyz`)).status).toBe(200);
    // The re-check comes within seconds, and succeeds.
    const faultedAt = imds.exchanges.findIndex((e) => e.faulted);
    await eventually(() => imds.exchanges.slice(faultedAt + 1).some((e) => e.route === 'credentials' && e.outcome === 'success'), 're-checked');

    const text = await (await fetch(`${proxy.url}/metrics`)).text();
    const seen = [...imds.exchanges];
    for (const route of ['token', 'credentials_list', 'credentials'] as const) {
      for (const outcome of ['success', 'timeout', 'http_error', 'invalid_response'] as const) {
        const received = seen.filter((e) => e.route === route && e.outcome === outcome).length;
        // A refresh may be in flight between the scrape and our copy: never fewer counted than
        // received before the scrape, never more than received by now.
        const counted = sampleValue(text, 'imds_proxy_upstream_requests_total', { route, outcome });
        expect(counted, `${route} ${outcome}`).toBeLessThanOrEqual(received);
        expect(counted, `${route} ${outcome}`).toBeGreaterThanOrEqual(received - 2);
      }
    }
  });

  it('IMDSv1 mode, then tokens required: the proxy takes a token at once and keeps serving', { timeout: 15_000 }, async () => {
    const { imds, get } = await harness();
    const start = imds.exchanges.length;
    imds.v1Only = 405;
    imds.restart();
    const v1Fetch = () => {
      const since = imds.exchanges.slice(start);
      const put = since.findIndex((e) => e.route === 'token');
      return put >= 0 && since.slice(put).some((e) => e.route === 'credentials' && e.outcome === 'success');
    };
    await eventually(v1Fetch, 'a refresh in IMDSv1 mode');
    const inV1 = imds.exchanges.length;
    imds.v1Only = 0;
    imds.tokensRequired = true;
    await eventually(() => imds.exchanges.slice(inV1).some((e) => e.route === 'credentials' && e.outcome === 'success'), 'a refresh through the new token');
    expect(imds.exchanges.slice(inV1).filter((e) => e.route === 'token').length).toBeGreaterThanOrEqual(1);
    expect((await get(`${CREDS}/${ROLE}`)).status).toBe(200);
  });
});
