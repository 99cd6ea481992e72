import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultProxyConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';

/**
 * A full run at trace level — cold start, hits, rotation, an outage served stale, recovery,
 * a cold 503, forwarded paths, extended credentials — with every log line captured, then
 * scanned for every secret the simulator ever handed out.
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
  const get = async (path: string, t: string) => (await fetch(`${proxy.url}${path}`, { headers: { 'x-aws-ec2-metadata-token': t } })).status;

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
    expect(await get('/latest/meta-data/iam/security-credentials/log-role', t)).toBe(200);
    remember();
    expect(await get('/latest/meta-data/iam/security-credentials-extended/log-role', t)).toBe(200);
    expect(await get('/latest/meta-data/instance-id', t)).toBe(200);
    expect(await get('/latest/meta-data/iam/security-credentials/log-role', 'forged')).toBe(401);
    sim.rotate();
    remember();
    await new Promise((r) => setTimeout(r, 1300)); // max-age 1 s: a refresh picks up the rotation
    expect(await get('/latest/meta-data/iam/security-credentials/log-role', t)).toBe(200);
    sim.setFaults({ errorRate: 1 });
    await new Promise((r) => setTimeout(r, 1300));
    expect(await get('/latest/meta-data/iam/security-credentials/log-role', t)).toBe(200); // stale
    sim.setFaults({ errorDocument: true, errorRate: 0 });
    await new Promise((r) => setTimeout(r, 1300));
    sim.resetFaults();
    remember();
    await new Promise((r) => setTimeout(r, 2500));
    expect(await get('/latest/meta-data/iam/security-credentials/log-role', t)).toBe(200);
    remember();

    expect(secrets.size).toBeGreaterThanOrEqual(4);
    expect(lines.length).toBeGreaterThan(10);
    const events = new Set(lines.map((l) => (JSON.parse(l) as { event?: string }).event));
    for (const e of ['started', 'ready', 'credentials_cached', 'credentials_rotated', 'upstream_degraded', 'upstream_recovered']) {
      expect(events.has(e), `event ${e}`).toBe(true);
    }
    const leaks = lines.filter((l) => [...secrets].some((s) => l.includes(s)));
    expect(leaks.length).toBe(0);
  }, 30_000);
});
