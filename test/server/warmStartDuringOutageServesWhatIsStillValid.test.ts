import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatWarmStartDocument } from '../../src/cache/warmStartFile.js';
import { defaultProxyConfig } from '../../src/config/proxyConfig.js';
import { silentLogger } from '../../src/runtime/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { makeCredentials } from '../support/credentials.js';

/**
 * Review finding: the warm-start file is ignored whole when its credentials have less than the
 * refresh window (--refresh-before, 30 min) left, "since they would be refreshed at once". That
 * is exactly the state during an IMDS outage: the running proxy serves them (stale-if-error,
 * until Expiration less the 60 s margin), but a restart (an upgrade, a crash and systemd's
 * restart) throws them away and answers 503 to every client for the rest of their life.
 * Credentials that are still servable must be seeded and served; the refresh runs behind them.
 */
const ROLE = 'outage-role';
let dir: string;
let proxy: RunningProxy | undefined;

/** A loopback port with nothing listening: IMDS is down. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'review-warm-outage-'));
});
afterAll(async () => {
  await proxy?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('a restart while IMDS is down', () => {
  it('serves credentials from the warm-start file that are still valid for 20 minutes', { timeout: 20_000 }, async () => {
    const cacheFile = join(dir, 'credentials.json');
    const now = Date.now();
    const credentials = makeCredentials(now + 20 * 60_000, now - 5 * 3600_000);
    await writeFile(cacheFile, formatWarmStartDocument([{ role: ROLE, credentials, fetchedAt: now - 60_000 }]), { mode: 0o600 });

    proxy = await startProxy(
      { ...defaultProxyConfig(), listen: { host: '127.0.0.1', port: 0 }, upstream: `http://127.0.0.1:${await closedPort()}`, cacheFile, upstreamTimeoutMs: 200, upstreamAttempts: 1 },
      { logger: silentLogger },
    );
    expect(proxy.isReady()).toBe(true);
    const token = await (await fetch(`${proxy.url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } })).text();
    const res = await fetch(`${proxy.url}/latest/meta-data/iam/security-credentials/${ROLE}`, { headers: { 'x-aws-ec2-metadata-token': token } });
    const body = await res.text();
    expect(res.status).toBe(200);
    expect((JSON.parse(body) as { AccessKeyId: string }).AccessKeyId).toBe(credentials.accessKeyId);
  });
});
