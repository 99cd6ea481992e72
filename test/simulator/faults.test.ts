import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { bodyOf, call, fetchToken, statusOf, TOKEN_HEADER, TTL_HEADER } from './rawCall.js';

/** JSON.parse quotes the body in its errors; credentials bodies hold secrets. */
const field = (body: string, name: string): unknown => {
  try {
    return (JSON.parse(body) as Record<string, unknown>)[name];
  } catch {
    return '<not JSON>';
  }
};

describe('simulator faults, as a client sees them', () => {
  let sim: RunningSimulator;
  let token: string;
  const credsUrl = () => `${sim.url}/latest/meta-data/iam/security-credentials/demo-role`;
  const creds = (timeoutMs?: number) => call(credsUrl(), 'GET', { [TOKEN_HEADER]: token }, timeoutMs);

  beforeAll(async () => {
    sim = await startSimulator({ port: 0, extendedCredentials: true });
  });
  afterAll(() => sim.close());
  beforeEach(async () => {
    sim.resetFaults();
    token = await fetchToken(sim.url);
  });

  it('no fault: credentials are served', async () => {
    const r = await creds();
    expect(statusOf(r)).toBe(200);
    expect(field(bodyOf(r), 'Code')).toBe('Success');
  });
  it('down: the connection is reset, on every route', async () => {
    sim.setFaults({ down: true });
    expect(statusOf(await creds())).toBe('ECONNRESET');
    expect(statusOf(await call(`${sim.url}/latest/api/token`, 'PUT', { [TTL_HEADER]: '60' }))).toBe('ECONNRESET');
  });
  it('errorRate 1: every answer is a 500; errorRate 0: none', async () => {
    sim.setFaults({ errorRate: 1 });
    expect(statusOf(await creds())).toBe(500);
    expect(statusOf(await call(`${sim.url}/latest/api/token`, 'PUT', { [TTL_HEADER]: '60' }))).toBe(500);
    sim.setFaults({ errorRate: 0 });
    expect(statusOf(await creds())).toBe(200);
  });
  it('latency beyond the client timeout: the client times out; within it, the answer arrives', async () => {
    sim.setFaults({ latencyMs: 2000 });
    expect(statusOf(await creds(200))).toBe('TIMEOUT');
    sim.setFaults({ latencyMs: 20 });
    expect(statusOf(await creds(2000))).toBe(200);
  });
  it('expiredCredentials: Expiration is in the past', async () => {
    sim.setFaults({ expiredCredentials: true });
    const r = await creds();
    expect(statusOf(r)).toBe(200);
    expect(Date.parse(field(bodyOf(r), 'Expiration') as string)).toBeLessThan(Date.now());
  });
  it('errorDocument: 200 with AssumeRoleUnauthorizedAccess, a Message and LastUpdated, no keys', async () => {
    sim.setFaults({ errorDocument: true });
    const r = await creds();
    expect(statusOf(r)).toBe(200);
    const doc = JSON.parse(bodyOf(r)) as Record<string, unknown>;
    expect(Object.keys(doc)).toEqual(['Code', 'Message', 'LastUpdated']);
    expect(doc.Code).toBe('AssumeRoleUnauthorizedAccess');
  });
  it('malformedJson: 200, the body does not parse', async () => {
    sim.setFaults({ malformedJson: true });
    const r = await creds();
    expect(statusOf(r)).toBe(200);
    expect(field(bodyOf(r), 'Code')).toBe('<not JSON>');
  });
  it('the document faults apply to security-credentials-extended too', async () => {
    const extended = () =>
      call(`${sim.url}/latest/meta-data/iam/security-credentials-extended/demo-role`, 'GET', { [TOKEN_HEADER]: token });
    expect(field(bodyOf(await extended()), 'AccountId')).toBe('123456789012');
    sim.setFaults({ errorDocument: true });
    expect(field(bodyOf(await extended()), 'Code')).toBe('AssumeRoleUnauthorizedAccess');
    sim.setFaults({ errorDocument: false, expiredCredentials: true });
    expect(Date.parse(field(bodyOf(await extended()), 'Expiration') as string)).toBeLessThan(Date.now());
  });
  it('roleRemoved: the credentials path answers 404, the listing still names the role', async () => {
    sim.setFaults({ roleRemoved: true });
    expect(statusOf(await creds())).toBe(404);
    const list = await call(`${sim.url}/latest/meta-data/iam/security-credentials/`, 'GET', { [TOKEN_HEADER]: token });
    expect(bodyOf(list)).toBe('demo-role');
  });
  it('slowBodyMs: headers arrive, the body does not finish in time', async () => {
    sim.setFaults({ slowBodyMs: 50 });
    expect(statusOf(await creds(300))).toBe('TIMEOUT');
  });
  it('slowBodyMs: a patient client gets the whole body, byte by byte', async () => {
    sim.setFaults({ slowBodyMs: 1 });
    const r = await creds(10_000);
    expect(statusOf(r)).toBe(200);
    expect(field(bodyOf(r), 'Code')).toBe('Success');
  });
  it('resetMidBody: half a body, then a reset', async () => {
    sim.setFaults({ resetMidBody: true });
    expect(['ECONNRESET', 'aborted']).toContain(statusOf(await creds()));
  });
  it('tokenRejectStorm: every token-bearing request is a 401, the token PUT still works', async () => {
    sim.setFaults({ tokenRejectStorm: true });
    expect(statusOf(await creds())).toBe(401);
    expect(await fetchToken(sim.url)).not.toBe('');
    expect(statusOf(await call(`${sim.url}/latest/meta-data/instance-id`, 'GET', { [TOKEN_HEADER]: await fetchToken(sim.url) }))).toBe(401);
  });
  it('httpTokens optional: tokenless requests are served, bad tokens still 401', async () => {
    expect(statusOf(await call(`${sim.url}/latest/meta-data/instance-id`))).toBe(401);
    sim.setFaults({ httpTokens: 'optional' });
    expect(statusOf(await call(`${sim.url}/latest/meta-data/instance-id`))).toBe(200);
    expect(statusOf(await call(`${sim.url}/latest/meta-data/instance-id`, 'GET', { [TOKEN_HEADER]: 'bogus' }))).toBe(401);
  });
  for (const code of [403, 404, 405] as const) {
    it(`imdsV1Only ${code}: the token PUT answers ${code}, tokenless GETs are served`, async () => {
      sim.setFaults({ imdsV1Only: code });
      expect(statusOf(await call(`${sim.url}/latest/api/token`, 'PUT', { [TTL_HEADER]: '60' }))).toBe(code);
      expect(bodyOf(await call(`${sim.url}/latest/meta-data/iam/security-credentials/`))).toBe('demo-role');
    });
  }
});
