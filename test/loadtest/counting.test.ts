import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchCredentialsLikeAFreshProcess } from '../../src/loadtest/credentialFetch.js';
import { runLoad } from '../../src/loadtest/runLoad.js';
import { startSimulator } from '../../src/simulator/simulator.js';

describe('each request counted once, in the right class', () => {
  let server: Server;
  let target: string;
  let seen = 0;
  let behaviour: 'ok' | '429' | '500' | 'hold' | 'destroy' = 'ok';

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen++;
      const isRoleRequest = req.url?.endsWith('/r');
      if (!isRoleRequest || behaviour === 'ok') return res.end(req.method === 'PUT' ? 'tok' : req.url?.endsWith('/') ? 'r' : '{}');
      if (behaviour === '429') return res.writeHead(429).end();
      if (behaviour === '500') return res.writeHead(500).end();
      if (behaviour === 'destroy') return req.socket.destroy();
      // hold: never answer
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    target = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  for (const [b, failure] of [['ok', undefined], ['429', 'throttled'], ['500', 'http_error'], ['hold', 'timeout'], ['destroy', 'connection_error']] as const) {
    it(`the third request ${b} → ${failure ?? 'completed'}, three requests counted, three seen`, async () => {
      behaviour = b;
      seen = 0;
      const result = await fetchCredentialsLikeAFreshProcess(target, 200);
      expect(result.failure).toBe(failure);
      expect(result.requests).toBe(3);
      expect(seen).toBe(3);
    });
  }

  it('a refused connection is a connection error after one request', async () => {
    const result = await fetchCredentialsLikeAFreshProcess('http://127.0.0.1:9', 200);
    expect([result.failure, result.requests]).toEqual(['connection_error', 1]);
  });
});

describe('loadtest against the simulator', () => {
  it('its request count equals what the simulator counted, exactly, under throttling', async () => {
    const sim = await startSimulator({ port: 0, throttleRps: 40, throttleBurst: 40, throttleMode: '429' });
    try {
      const summary = await runLoad({ target: sim.url, clients: 20, durationSeconds: 2, timeoutMs: 1000 });
      const counters = sim.counters();
      expect(summary.requests).toBe(counters.total);
      expect(summary.throttled).toBeGreaterThan(0);
      expect(summary.completed).toBe(counters.byRoute.credentials?.ok ?? 0);
      expect(summary.completed + summary.failed).toBe(summary.fetches);
    } finally {
      await sim.close();
    }
  });

  it('respects --requests as a total fetch budget', async () => {
    const sim = await startSimulator({ port: 0 });
    try {
      const summary = await runLoad({ target: sim.url, clients: 7, durationSeconds: 30, timeoutMs: 1000, maxFetches: 25 });
      expect(summary.fetches).toBe(25);
      expect(sim.counters().total).toBe(75);
    } finally {
      await sim.close();
    }
  });
});
