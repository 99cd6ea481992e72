import { request } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';

type Result = { status: number; body: string; headers: Record<string, unknown> } | { error: string };

/** One request on a fresh connection, giving up `timeoutMs` after it started, like an SDK. */
function call(url: string, method = 'GET', headers: Record<string, string> = {}, timeoutMs = 1000): Promise<Result> {
  return new Promise((resolve) => {
    const deadline = setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })), timeoutMs);
    const done = (r: Result) => {
      clearTimeout(deadline);
      resolve(r);
    };
    const req = request(url, { method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => done({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', (e) => done({ error: (e as NodeJS.ErrnoException).code ?? e.message }));
    });
    req.on('error', (e) => done({ error: (e as NodeJS.ErrnoException).code ?? e.message }));
    req.end();
  });
}
const status = (r: Result) => ('status' in r ? r.status : r.error);

describe('simulator faults, as a client sees them', () => {
  let sim: RunningSimulator;
  let token: string;
  const creds = () => call(`${sim.url}/latest/meta-data/iam/security-credentials/demo-role`, 'GET', { 'x-aws-ec2-metadata-token': token });

  beforeAll(async () => {
    sim = await startSimulator({ port: 0 });
  });
  afterAll(() => sim.close());
  beforeEach(async () => {
    sim.resetFaults();
    const r = await call(`${sim.url}/latest/api/token`, 'PUT', { 'x-aws-ec2-metadata-token-ttl-seconds': '300' });
    token = 'body' in r ? r.body : '';
  });

  it('down: the connection is reset', async () => {
    sim.setFaults({ down: true });
    expect(status(await creds())).toBe('ECONNRESET');
  });
  it('errorRate 1: every answer is a 500', async () => {
    sim.setFaults({ errorRate: 1 });
    expect(status(await creds())).toBe(500);
  });
  it('latency beyond the client timeout: the client times out', async () => {
    sim.setFaults({ latencyMs: 2000 });
    expect(status(await call(`${sim.url}/latest/meta-data/instance-id`, 'GET', { 'x-aws-ec2-metadata-token': token }, 200))).toBe('TIMEOUT');
  });
  it('expiredCredentials: Expiration is in the past', async () => {
    sim.setFaults({ expiredCredentials: true });
    const r = await creds();
    expect('body' in r && Date.parse(JSON.parse(r.body).Expiration)).toBeLessThan(Date.now());
  });
  it('errorDocument: 200 with a Code other than Success', async () => {
    sim.setFaults({ errorDocument: true });
    const r = await creds();
    expect(status(r)).toBe(200);
    expect('body' in r && JSON.parse(r.body).Code).toBe('AssumeRoleUnauthorizedAccess');
  });
  it('malformedJson: the body does not parse', async () => {
    sim.setFaults({ malformedJson: true });
    const r = await creds();
    expect(() => JSON.parse('body' in r ? r.body : '')).toThrow();
  });
  it('roleRemoved: the credentials path answers 404', async () => {
    sim.setFaults({ roleRemoved: true });
    expect(status(await creds())).toBe(404);
  });
  it('slowBodyMs: headers arrive, the body does not finish in time', async () => {
    sim.setFaults({ slowBodyMs: 50 });
    expect(status(await call(`${sim.url}/latest/meta-data/iam/security-credentials/demo-role`, 'GET', { 'x-aws-ec2-metadata-token': token }, 300))).toBe('TIMEOUT');
  });
  it('resetMidBody: half a body, then a reset', async () => {
    sim.setFaults({ resetMidBody: true });
    expect(['ECONNRESET', 'aborted']).toContain(status(await creds()));
  });
  it('tokenRejectStorm: every token-bearing request is a 401', async () => {
    sim.setFaults({ tokenRejectStorm: true });
    expect(status(await creds())).toBe(401);
  });
  it('httpTokens optional: tokenless requests are served', async () => {
    expect(status(await call(`${sim.url}/latest/meta-data/instance-id`))).toBe(401);
    sim.setFaults({ httpTokens: 'optional' });
    expect(status(await call(`${sim.url}/latest/meta-data/instance-id`))).toBe(200);
  });
  for (const code of [403, 404, 405] as const) {
    it(`imdsV1Only ${code}: the token PUT answers ${code}, tokenless GETs are served`, async () => {
      sim.setFaults({ imdsV1Only: code });
      expect(status(await call(`${sim.url}/latest/api/token`, 'PUT', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' }))).toBe(code);
      expect(status(await call(`${sim.url}/latest/meta-data/iam/security-credentials/`))).toBe(200);
    });
  }

  it('the control API switches faults over HTTP and validates them', async () => {
    const put = (body: string) => fetch(`${sim.controlUrl}/faults`, { method: 'PUT', body });
    expect((await put('{"errorRate": 1}')).status).toBe(200);
    expect(status(await creds())).toBe(500);
    expect((await put('not json')).status).toBe(400);
    const bad = await put('{"errorRate": 7}');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/^errorRate/);
    expect((await fetch(`${sim.controlUrl}/faults/reset`, { method: 'POST' })).status).toBe(200);
    expect(status(await creds())).toBe(200);
    expect((await fetch(`${sim.controlUrl}/nope`)).status).toBe(404);
  });

  it('POST /rotate issues new credentials', async () => {
    const before = sim.currentCredentials('demo-role')!.accessKeyId;
    expect((await fetch(`${sim.controlUrl}/rotate`, { method: 'POST' })).status).toBe(200);
    expect(sim.currentCredentials('demo-role')!.accessKeyId).not.toBe(before);
  });
});

describe('simulator throttling and counters', () => {
  it('429 mode: past the burst, clients get 429 and the counters say so exactly', async () => {
    const sim = await startSimulator({ port: 0, throttleRps: 1, throttleBurst: 5, throttleMode: '429', faults: { httpTokens: 'optional' } });
    try {
      const results = await Promise.all(Array.from({ length: 20 }, () => call(`${sim.url}/latest/meta-data/instance-id`)));
      const ok = results.filter((r) => status(r) === 200).length;
      const throttled = results.filter((r) => status(r) === 429).length;
      expect(ok + throttled).toBe(20);
      expect(ok).toBeGreaterThanOrEqual(5);
      expect(ok).toBeLessThanOrEqual(7);
      const counters = sim.counters();
      expect(counters.total).toBe(20);
      expect(counters.byRoute.metadata).toEqual({ ok, throttled });
    } finally {
      await sim.close();
    }
  });

  it('drop mode: a throttled client hears nothing and times out; close() still returns promptly', async () => {
    const sim = await startSimulator({ port: 0, throttleRps: 1, throttleBurst: 1, throttleMode: 'drop', faults: { httpTokens: 'optional' } });
    const results = await Promise.all(Array.from({ length: 5 }, () => call(`${sim.url}/latest/meta-data/instance-id`, 'GET', {}, 300)));
    expect(results.map(status).sort()).toEqual([200, 'TIMEOUT', 'TIMEOUT', 'TIMEOUT', 'TIMEOUT']);
    expect(sim.counters().byRoute.metadata).toEqual({ ok: 1, dropped: 4 });
    // One more request is held right now; close() must not wait for it.
    void call(`${sim.url}/latest/meta-data/instance-id`, 'GET', {}, 60_000);
    await new Promise((r) => setTimeout(r, 50));
    await sim.close();
  });

  it('maxConnections: connections past the cap are closed', async () => {
    const sim = await startSimulator({ port: 0, maxConnections: 2, faults: { latencyMs: 300, httpTokens: 'optional' } });
    try {
      const results = await Promise.all(Array.from({ length: 5 }, () => call(`${sim.url}/latest/meta-data/instance-id`)));
      expect(results.filter((r) => status(r) === 200)).toHaveLength(2);
      expect(results.filter((r) => status(r) !== 200).length).toBe(3);
    } finally {
      await sim.close();
    }
  });
});
