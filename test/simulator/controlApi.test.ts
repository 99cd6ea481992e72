import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NO_FAULTS, validateFaultsPatch } from '../../src/simulator/faults.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { call, fetchToken, statusOf, TOKEN_HEADER } from './rawCall.js';

describe('fault patches', () => {
  it('accepts known faults with good values', () => {
    const patch = { latencyMs: 5, errorRate: 0.5, down: true, imdsV1Only: 405, httpTokens: 'optional', slowBodyMs: 0 };
    expect(validateFaultsPatch(patch)).toEqual(patch);
    expect(validateFaultsPatch({})).toEqual({});
  });
  it('names the bad field and value', () => {
    expect(validateFaultsPatch({ errorRate: 2 })).toBe('errorRate: expected a number from 0 to 1, got 2');
    expect(validateFaultsPatch({ errorRate: '0.5' })).toMatch(/^errorRate: /);
    expect(validateFaultsPatch({ latencyMs: -1 })).toMatch(/^latencyMs: /);
    expect(validateFaultsPatch({ latencyMs: 1.5 })).toMatch(/^latencyMs: /);
    expect(validateFaultsPatch({ slowBodyMs: 'slow' })).toMatch(/^slowBodyMs: /);
    expect(validateFaultsPatch({ down: 'yes' })).toMatch(/^down: /);
    expect(validateFaultsPatch({ httpTokens: 'maybe' })).toMatch(/^httpTokens: /);
    expect(validateFaultsPatch({ imdsV1Only: 500 })).toMatch(/^imdsV1Only: /);
    expect(validateFaultsPatch({ frobnicate: 1 })).toMatch(/unknown fault "frobnicate"/);
    expect(validateFaultsPatch([1])).toMatch(/JSON object/);
    expect(validateFaultsPatch(null)).toMatch(/JSON object/);
  });
});

describe('control API', () => {
  let sim: RunningSimulator;
  const control = (path: string, init?: RequestInit) => fetch(`${sim.controlUrl}${path}`, { ...init, signal: AbortSignal.timeout(5000) });
  const putFaults = (body: string) => control('/faults', { method: 'PUT', body, headers: { 'content-type': 'application/json' } });

  beforeAll(async () => {
    sim = await startSimulator({ port: 0 });
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.resetFaults());

  it('listens on its own loopback port, apart from IMDS', () => {
    expect(sim.controlUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(sim.controlUrl).not.toBe(sim.url);
  });

  it('GET /faults shows the faults; PUT /faults merges a patch and the IMDS port obeys', async () => {
    expect(await (await control('/faults')).json()).toEqual(NO_FAULTS);
    const put = await putFaults('{"errorRate": 1}');
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ ...NO_FAULTS, errorRate: 1 });
    await putFaults('{"latencyMs": 1}');
    expect(sim.faults()).toEqual({ ...NO_FAULTS, errorRate: 1, latencyMs: 1 });
    expect(statusOf(await call(`${sim.url}/latest/meta-data/instance-id`))).toBe(500);
  });

  it('bad input → 400 with a message naming the problem, and the faults stay as they were', async () => {
    const cases: [string, RegExp][] = [
      ['not json', /not JSON/],
      ['', /not JSON/],
      ['[]', /JSON object/],
      ['{"errorRate": 7}', /^errorRate: /],
      ['{"httpTokens": "sometimes"}', /^httpTokens: /],
      ['{"down": true, "nonsense": 1}', /unknown fault "nonsense"/],
    ];
    for (const [body, message] of cases) {
      const r = await putFaults(body);
      expect(r.status).toBe(400);
      expect(((await r.json()) as { error: string }).error).toMatch(message);
    }
    expect(sim.faults()).toEqual(NO_FAULTS);
  });

  it('an oversized body → 413, faults unchanged', async () => {
    const r = await putFaults(`{"latencyMs": 1, "pad": "${'x'.repeat(70_000)}"}`);
    expect(r.status).toBe(413);
    expect(sim.faults()).toEqual(NO_FAULTS);
  });

  it('POST /faults/reset clears every fault', async () => {
    sim.setFaults({ down: true, httpTokens: 'optional' });
    const r = await control('/faults/reset', { method: 'POST' });
    expect(r.status).toBe(200);
    expect(sim.faults()).toEqual(NO_FAULTS);
    expect(statusOf(await call(`${sim.url}/latest/meta-data/instance-id`))).toBe(401);
  });

  it('POST /rotate issues new credentials, which IMDS then serves', async () => {
    const token = await fetchToken(sim.url);
    const before = sim.currentCredentials('demo-role')!;
    expect((await control('/rotate', { method: 'POST' })).status).toBe(200);
    const after = sim.currentCredentials('demo-role')!;
    expect(after.accessKeyId).not.toBe(before.accessKeyId);
    const served = await call(`${sim.url}/latest/meta-data/iam/security-credentials/demo-role`, 'GET', { [TOKEN_HEADER]: token });
    expect('body' in served && (JSON.parse(served.body) as { AccessKeyId: string }).AccessKeyId).toBe(after.accessKeyId);
  });

  it('unknown routes and methods → 404; the IMDS port has no control routes', async () => {
    expect((await control('/nope')).status).toBe(404);
    expect((await control('/faults', { method: 'DELETE' })).status).toBe(404);
    const onImds = await fetch(`${sim.url}/faults`, { method: 'PUT', body: '{"down": true}' });
    expect(onImds.status).toBe(404);
    expect(sim.faults().down).toBe(false);
  });

  it('refuses a control API off loopback', async () => {
    await expect(startSimulator({ port: 0, controlHost: '0.0.0.0' })).rejects.toThrow(/controlHost: .*loopback/);
  });
});
