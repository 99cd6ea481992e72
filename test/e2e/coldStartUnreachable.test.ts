import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { defaultProxyConfig } from '../../src/config/proxyConfig.js';
import { silentLogger } from '../../src/runtime/log.js';
import { startProxy } from '../../src/server/proxy.js';
import { sampleValue } from '../support/exposition.js';

const UPSTREAM_REQUESTS = 'imds_proxy_upstream_requests_total';

/**
 * #11 item 3: on a cold start with IMDS unreachable, the first (and only) requests that go
 * out are the proxy's own token PUTs. They must show in imds_proxy_upstream_requests_total,
 * or the shipped failure-ratio and timeout alerts see 0/0 and never fire (their promtool test
 * "cold start against an unreachable IMDS" uses the series this test reads).
 */
describe('cold start against an IMDS that never answers', () => {
  it('counts the token PUTs as upstream timeouts, from series that existed at zero', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const proxy = await startProxy(
      {
        ...defaultProxyConfig(),
        listen: { host: '127.0.0.1', port: 0 },
        upstream: `http://127.0.0.1:${port}`,
        upstreamTimeoutMs: 100,
        upstreamAttempts: 2,
      },
      { logger: silentLogger },
    );
    try {
      const first = await (await fetch(`${proxy.url}/metrics`)).text();
      expect(sampleValue(first, UPSTREAM_REQUESTS, { route: 'token', outcome: 'timeout' })).toBe(0);
      let text = first;
      for (let i = 0; i < 100 && sampleValue(text, UPSTREAM_REQUESTS, { route: 'token', outcome: 'timeout' }) < 2; i++) {
        await new Promise((r) => setTimeout(r, 50));
        text = await (await fetch(`${proxy.url}/metrics`)).text();
      }
      expect(sampleValue(text, UPSTREAM_REQUESTS, { route: 'token', outcome: 'timeout' })).toBeGreaterThanOrEqual(2);
      expect(sampleValue(text, UPSTREAM_REQUESTS, { route: 'credentials_list', outcome: 'success' })).toBe(0);
      expect((await fetch(`${proxy.url}/readyz`)).status).toBe(503);
    } finally {
      await proxy.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
