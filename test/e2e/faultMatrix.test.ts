import { afterAll, describe, expect, it } from 'vitest';
import { defaultProxyConfig, type ProxyConfig } from '../../src/config/proxyConfig.js';
import { silentLogger } from '../../src/runtime/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { startSimulator, type Faults, type RunningSimulator, type SimulatorOptions } from '../../src/simulator/simulator.js';

/**
 * The fault matrix (docs/fault-matrix.md): for each way IMDS fails, what clients see with
 * credentials cached (the cached ones, while valid), with nothing cached (a clean 503 with
 * Retry-After, never expired credentials), what IMDS sees meanwhile (no hammering, however
 * many clients ask), and recovery once the fault clears.
 */

const ROLE = 'matrix-role';
const CREDS = `/latest/meta-data/iam/security-credentials/${ROLE}`;
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
});

async function eventually(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function harness(simOptions: SimulatorOptions = {}, config: Partial<ProxyConfig> = {}) {
  const sim = await startSimulator({ port: 0, roles: [ROLE], ...simOptions });
  const proxy = await startProxy(
    {
      ...defaultProxyConfig(),
      listen: { host: '127.0.0.1', port: 0 },
      upstream: sim.url,
      maxAgeSeconds: 1,
      upstreamTimeoutMs: 200,
      upstreamAttempts: 1,
      ...config,
    },
    { logger: silentLogger },
  );
  cleanups.push(async () => {
    await proxy.close();
    await sim.close();
  });
  return { sim, proxy, ...clientOf(proxy) };
}

function clientOf(proxy: RunningProxy) {
  let token: string | undefined;
  const credentials = async (): Promise<{ status: number; keyId?: string; expiration?: number; retryAfter?: string | null }> => {
    token ??= await (await fetch(`${proxy.url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '300' } })).text();
    const res = await fetch(`${proxy.url}${CREDS}`, { headers: { 'x-aws-ec2-metadata-token': token } });
    const body = await res.text();
    if (res.status !== 200) return { status: res.status, retryAfter: res.headers.get('retry-after') };
    const doc = JSON.parse(body) as { AccessKeyId: string; Expiration: string };
    return { status: 200, keyId: doc.AccessKeyId, expiration: Date.parse(doc.Expiration) };
  };
  return { credentials };
}

interface FaultCase {
  name: string;
  /** Faults switched on in the simulator. */
  faults?: Partial<Faults>;
  /** Or: simulator options that make it fail from the start (after `warmBurst` requests). */
  simOptions?: SimulatorOptions;
}

const MATRIX: FaultCase[] = [
  { name: 'timeout (no answer in time)', faults: { latencyMs: 2_000 } },
  { name: 'connection reset (IMDS down)', faults: { down: true } },
  { name: '500 Internal Server Error', faults: { errorRate: 1 } },
  { name: 'reset mid-body', faults: { resetMidBody: true } },
  { name: 'slow body', faults: { slowBodyMs: 100 } },
  { name: 'malformed JSON', faults: { malformedJson: true } },
  { name: 'error document (Code not Success)', faults: { errorDocument: true } },
  { name: 'already-expired credentials', faults: { expiredCredentials: true } },
  { name: 'role removed (404)', faults: { roleRemoved: true } },
  { name: 'upstream token 401 storm', faults: { tokenRejectStorm: true } },
];

describe('fault matrix', () => {
  for (const fault of MATRIX) {
    it.concurrent(`${fault.name}: cached credentials served while valid, no hammering, recovery`, async () => {
      const { sim, proxy, credentials } = await harness();
      await eventually(() => proxy.isReady(), 'ready');
      const before = await credentials();
      expect(before.status).toBe(200);

      sim.setFaults(fault.faults ?? {});
      await eventually(() => proxy.services.credentials.failuresInARow > 0, 'a failed refresh');
      const countAtOutage = sim.counters().total;
      // 200 clients during the outage: all served the cached credentials, never expired ones.
      const during = await Promise.all(Array.from({ length: 200 }, () => credentials()));
      for (const answer of during) {
        expect(answer.status).toBe(200);
        expect(answer.keyId).toBe(before.keyId);
        expect(answer.expiration!).toBeGreaterThan(Date.now());
      }
      await new Promise((r) => setTimeout(r, 2_000));
      // Backoff, not per-client retries: a handful of upstream requests, whatever the clients did.
      expect(sim.counters().total - countAtOutage).toBeLessThanOrEqual(8);

      sim.resetFaults();
      sim.rotate();
      await eventually(async () => (await credentials()).keyId !== before.keyId, 'the rotated credentials after recovery', 70_000);
      expect(proxy.services.credentials.failuresInARow).toBe(0);
    }, 90_000);

    it.concurrent(`${fault.name}, with nothing cached: a clean 503 with Retry-After, then recovery`, async () => {
      const { sim, proxy, credentials } = await harness({ faults: fault.faults ?? {} });
      await eventually(() => proxy.services.credentials.failuresInARow > 0, 'a failed warm-up');
      const answers = await Promise.all(Array.from({ length: 50 }, () => credentials()));
      for (const a of answers) {
        expect(a.status).toBe(503);
        expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);
      }
      expect(proxy.isReady()).toBe(false);
      sim.resetFaults();
      await eventually(async () => (await credentials()).status === 200, 'served after the fault clears', 70_000);
    }, 90_000);
  }

  it.concurrent('429 throttling: cached credentials served; IMDS not hammered', async () => {
    // A bucket that admits the warm-up (token, list, credentials) and little after.
    const { sim, proxy, credentials } = await harness({ throttleRps: 0.2 as number, throttleBurst: 3, throttleMode: '429' });
    await eventually(() => proxy.isReady(), 'ready');
    const before = await credentials();
    await eventually(() => proxy.services.credentials.failuresInARow > 0, 'a throttled refresh', 20_000);
    const during = await Promise.all(Array.from({ length: 200 }, () => credentials()));
    expect(during.every((a) => a.status === 200 && a.keyId === before.keyId)).toBe(true);
    expect(sim.counters().byRoute.credentials_list?.throttled ?? 0).toBeGreaterThan(0);
  }, 60_000);

  it.concurrent('dropped connections (throttle drop): cached credentials served; the proxy times out upstream, clients do not', async () => {
    const { proxy, credentials } = await harness({ throttleRps: 0.2 as number, throttleBurst: 3, throttleMode: 'drop' });
    await eventually(() => proxy.isReady(), 'ready');
    const before = await credentials();
    await eventually(() => proxy.services.credentials.failuresInARow > 0, 'a dropped refresh', 20_000);
    const during = await Promise.all(Array.from({ length: 200 }, () => credentials()));
    expect(during.every((a) => a.status === 200 && a.keyId === before.keyId)).toBe(true);
  }, 60_000);

  it.concurrent('connection refused at start-up: 503, then served once IMDS is up', async () => {
    // Reserve a free port by starting and stopping a simulator, then point the proxy at it.
    const probe = await startSimulator({ port: 0 });
    const port = probe.port;
    await probe.close();
    const proxy = await startProxy(
      { ...defaultProxyConfig(), listen: { host: '127.0.0.1', port: 0 }, upstream: `http://127.0.0.1:${port}`, upstreamTimeoutMs: 200, upstreamAttempts: 1 },
      { logger: silentLogger },
    );
    const { credentials } = clientOf(proxy);
    await eventually(() => proxy.services.credentials.failuresInARow > 0, 'a refused warm-up');
    expect((await credentials()).status).toBe(503);
    const sim = await startSimulator({ port, roles: [ROLE] });
    cleanups.push(async () => {
      await proxy.close();
      await sim.close();
    });
    await eventually(async () => (await credentials()).status === 200, 'served once IMDS answers', 70_000);
  }, 90_000);

  for (const status of [403, 404, 405] as const) {
    it.concurrent(`IMDSv1-only upstream (token PUT ${status}): served through tokenless requests`, async () => {
      const { sim, proxy, credentials } = await harness({ faults: { imdsV1Only: status } });
      await eventually(() => proxy.isReady(), 'ready via IMDSv1');
      expect((await credentials()).status).toBe(200);
      expect(proxy.services.credentials.failuresInARow).toBe(0);
      expect(sim.counters().byRoute.token?.[status === 403 ? 'forbidden' : status === 404 ? 'not_found' : 'method_not_allowed']).toBe(1);
    }, 30_000);
  }
});
