import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { call, fetchToken, TOKEN_HEADER, TTL_HEADER } from './rawCall.js';

describe('simulator counters', () => {
  let sim: RunningSimulator;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0 });
  });
  afterAll(() => sim.close());
  beforeEach(() => {
    sim.resetFaults();
    sim.resetCounters();
  });

  it('count every request once, by route and outcome, and GET /counters says the same', async () => {
    const token = await fetchToken(sim.url);
    const creds = `${sim.url}/latest/meta-data/iam/security-credentials`;
    const withToken = { [TOKEN_HEADER]: token };
    await call(`${sim.url}/latest/api/token`, 'PUT', {}); // bad_request
    await call(`${sim.url}/latest/api/token`, 'PUT', { [TTL_HEADER]: '60', 'x-forwarded-for': '1.2.3.4' }); // forbidden
    await call(`${sim.url}/latest/api/token`, 'GET'); // method_not_allowed
    await call(`${creds}/`, 'GET', withToken); // credentials_list ok
    await call(`${creds}`, 'GET'); // credentials_list unauthorized
    await call(`${creds}/demo-role`, 'GET', withToken); // credentials ok
    await call(`${creds}/demo-role/`, 'HEAD', withToken); // credentials ok
    await call(`${creds}/nobody`, 'GET', withToken); // credentials not_found
    await call(`${sim.url}/latest/meta-data/iam/info`, 'GET', withToken);
    await call(`${sim.url}/latest/meta-data/iam/security-credentials-extended/`, 'GET', withToken); // not_found
    await call(`${sim.url}/latest/meta-data/instance-id`, 'GET', withToken);
    await call(`${sim.url}/latest/dynamic/instance-identity/document`, 'GET', withToken);
    await call(`${sim.url}/latest/user-data`, 'GET', withToken);
    await call(`${sim.url}/nowhere`, 'GET', withToken); // other not_found
    sim.setFaults({ errorRate: 1 });
    await call(`${creds}/demo-role`, 'GET', withToken); // credentials error
    sim.setFaults({ errorRate: 0, down: true });
    await call(`${creds}/demo-role`, 'GET', withToken); // credentials reset
    sim.setFaults({ down: false, resetMidBody: true });
    await call(`${creds}/demo-role`, 'GET', withToken); // credentials reset

    const expected = {
      total: 18,
      byRoute: {
        token: { ok: 1, bad_request: 1, forbidden: 1, method_not_allowed: 1 },
        credentials_list: { ok: 1, unauthorized: 1 },
        credentials: { ok: 2, not_found: 1, error: 1, reset: 2 },
        credentials_extended: { not_found: 1 },
        iam_info: { ok: 1 },
        metadata: { ok: 1 },
        dynamic: { ok: 1 },
        user_data: { ok: 1 },
        other: { not_found: 1 },
      },
    };
    expect(sim.counters()).toEqual(expected);
    const overHttp = await fetch(`${sim.controlUrl}/counters`);
    expect(overHttp.status).toBe(200);
    expect(await overHttp.json()).toEqual(expected);
  });

  it('a client that gives up during added latency is still counted, once, as abandoned', async () => {
    const token = await fetchToken(sim.url);
    sim.resetCounters();
    sim.setFaults({ latencyMs: 5_000 });
    await call(`${sim.url}/latest/meta-data/instance-id`, 'GET', { [TOKEN_HEADER]: token }, 100);
    // The close reaches the server a moment after the client gives up.
    for (let i = 0; i < 50 && sim.counters().total === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(sim.counters()).toEqual({ total: 1, byRoute: { metadata: { abandoned: 1 } } });
  });

  it('POST /counters/reset and resetCounters() start again from zero', async () => {
    await call(`${sim.url}/latest/meta-data/instance-id`);
    expect(sim.counters().total).toBe(1);
    const reset = await fetch(`${sim.controlUrl}/counters/reset`, { method: 'POST' });
    expect(await reset.json()).toEqual({ total: 0, byRoute: {} });
    expect(sim.counters()).toEqual({ total: 0, byRoute: {} });
  });

  it('a snapshot does not change under the caller', async () => {
    const before = sim.counters();
    await call(`${sim.url}/latest/meta-data/instance-id`);
    expect(before).toEqual({ total: 0, byRoute: {} });
  });
});
