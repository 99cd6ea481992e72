import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultProxyConfig } from '../../src/config/proxyConfig.js';
import { createLogger } from '../../src/runtime/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';

/** Polls until `condition` holds; bounded, so a broken proxy fails the test instead of hanging it. */
async function eventually(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A full run at trace level — cold start, hits, rotation, an outage served stale, an error
 * document, recovery, forwarded paths, extended credentials — with every log line captured,
 * then scanned for every secret the simulator handed out.
 */
describe('logs never carry secrets', () => {
  const lines: string[] = [];
  const secrets = new Set<string>();
  let sim: RunningSimulator;
  let proxy: RunningProxy;

  const remember = () => {
    const c = sim.currentCredentials('log-role');
    if (c) {
      secrets.add(c.secretAccessKey);
      secrets.add(c.token);
    }
  };
  const token = async () =>
    (await fetch(`${proxy.url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } })).text();
  const get = async (path: string, t: string) => fetch(`${proxy.url}${path}`, { headers: { 'x-aws-ec2-metadata-token': t } });
  const servedKeyId = async (t: string) => (JSON.parse(await (await get('/latest/meta-data/iam/security-credentials/log-role', t)).text()) as { AccessKeyId: string }).AccessKeyId;
  const events = () => new Set(lines.map((l) => (JSON.parse(l) as { event?: string }).event));

  beforeAll(async () => {
    sim = await startSimulator({ port: 0, roles: ['log-role'] });
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    proxy = await startProxy(
      { ...defaultProxyConfig(), listen: { host: '127.0.0.1', port: 0 }, upstream: sim.url, logLevel: 'trace', maxAgeSeconds: 1, upstreamAttempts: 1 },
      { logger: createLogger('trace', sink) },
    );
  });
  afterAll(async () => {
    await proxy?.close();
    await sim?.close();
  });

  it('through a scripted life of hits, rotation, outage and recovery', async () => {
    const t = await token();
    remember();
    const first = await servedKeyId(t);
    remember();
    expect((await get('/latest/meta-data/iam/security-credentials-extended/log-role', t)).status).toBe(200);
    expect((await get('/latest/meta-data/instance-id', t)).status).toBe(200);
    expect((await get('/latest/meta-data/iam/security-credentials/log-role', 'forged')).status).toBe(401);

    sim.rotate();
    remember();
    await eventually(async () => (await servedKeyId(t)) !== first, 'the rotated credentials served');

    sim.setFaults({ errorRate: 1 });
    await eventually(() => proxy.services.credentials.failuresInARow > 0, 'a failed refresh');
    expect((await get('/latest/meta-data/iam/security-credentials/log-role', t)).status).toBe(200); // stale
    sim.setFaults({ errorRate: 0, errorDocument: true });
    await eventually(() => events().has('credential_refresh_failed'), 'a second failed refresh');
    sim.resetFaults();
    await eventually(() => events().has('upstream_recovered'), 'recovery', 70_000);
    expect((await get('/latest/meta-data/iam/security-credentials/log-role', t)).status).toBe(200);
    remember();

    expect(secrets.size).toBeGreaterThanOrEqual(4);
    for (const e of ['started', 'ready', 'credentials_cached', 'credentials_rotated', 'upstream_degraded', 'upstream_recovered', 'request']) {
      expect(events().has(e), `event ${e}`).toBe(true);
    }
    const leaks = lines.filter((l) => [...secrets].some((s) => l.includes(s)));
    expect(leaks.length).toBe(0);
  }, 90_000);
});
