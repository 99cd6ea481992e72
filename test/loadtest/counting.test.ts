import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatCredentialsDocument } from '../../src/imds/credentials.js';
import { fetchCredentialsLikeAFreshProcess, type FetchFailure } from '../../src/loadtest/credentialFetch.js';
import { runLoad } from '../../src/loadtest/runLoad.js';
import { startSimulator, type SimulatorCounters, type SimulatorOptions } from '../../src/simulator/simulator.js';

const CREDENTIALS = formatCredentialsDocument({
  accessKeyId: 'ASIAFAKE',
  secretAccessKey: 'fake-secret',
  token: 'fake-token',
  expiration: Date.now() + 3_600_000,
  lastUpdated: Date.now(),
  type: 'AWS-HMAC',
});

type Behaviour = 'ok' | '429' | '500' | 'hold' | 'destroy' | 'half-body' | 'error-document';

describe('each request counted once, in the right class', () => {
  let server: Server;
  let target: string;
  let seen = 0;
  let behaviour: Behaviour = 'ok';

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen++;
      const isRoleRequest = req.url?.endsWith('/r');
      if (!isRoleRequest) return res.end(req.method === 'PUT' ? 'tok' : 'r');
      if (behaviour === 'ok') return res.end(CREDENTIALS);
      if (behaviour === '429') return res.writeHead(429).end();
      if (behaviour === '500') return res.writeHead(500).end();
      if (behaviour === 'destroy') return req.socket.destroy();
      if (behaviour === 'error-document') return res.end('{"Code" : "AssumeRoleUnauthorizedAccess", "LastUpdated" : "2026-11-28T16:39:16Z"}');
      if (behaviour === 'half-body') {
        res.writeHead(200, { 'content-length': String(CREDENTIALS.length) });
        return res.write(CREDENTIALS.slice(0, 20), () => req.socket.destroy());
      }
      // hold: never answer
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    target = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const cases: [Behaviour, FetchFailure | undefined][] = [
    ['ok', undefined],
    ['429', 'throttled'],
    ['500', 'http_error'],
    ['hold', 'timeout'],
    ['destroy', 'connection_error'],
    ['half-body', 'connection_error'],
    ['error-document', 'bad_document'],
  ];
  for (const [b, failure] of cases) {
    it(`the third request ${b} → ${failure ?? 'completed'}, three requests counted, three seen`, async () => {
      behaviour = b;
      seen = 0;
      const result = await fetchCredentialsLikeAFreshProcess(target, 200);
      expect(result.failure).toBe(failure);
      expect(result.requests).toBe(3);
      expect(seen).toBe(3);
    });
  }

  it('a connection that dies mid-answer fails at once, not at the deadline', async () => {
    behaviour = 'half-body';
    const result = await fetchCredentialsLikeAFreshProcess(target, 30_000);
    expect(result.failure).toBe('connection_error');
    expect(result.latencyMs).toBeLessThan(25_000);
  });

  it('a refused connection is a connection error after one request', async () => {
    const result = await fetchCredentialsLikeAFreshProcess('http://127.0.0.1:9', 200);
    expect([result.failure, result.requests]).toEqual(['connection_error', 1]);
  });
});

describe('loadtest against the simulator: its counts equal the simulator\'s own', () => {
  const withSimulator = async <T>(options: SimulatorOptions, body: (url: string) => Promise<T>) => {
    const sim = await startSimulator({ port: 0, ...options });
    try {
      const result = await body(sim.url);
      return { result, counters: sim.counters() };
    } finally {
      await sim.close();
    }
  };
  const outcomes = (c: SimulatorCounters, outcome: 'throttled' | 'dropped') =>
    Object.values(c.byRoute).reduce((sum, byOutcome) => sum + (byOutcome?.[outcome] ?? 0), 0);

  it('throttled with 429s', async () => {
    const { result: s, counters } = await withSimulator({ throttleRps: 40, throttleBurst: 40, throttleMode: '429' }, (target) =>
      runLoad({ target, clients: 20, durationSeconds: 2, timeoutMs: 1000 }),
    );
    expect(s.requests).toBe(counters.total);
    expect(s.throttled).toBeGreaterThan(0);
    expect(s.throttled).toBe(outcomes(counters, 'throttled'));
    expect(s.completed).toBe(counters.byRoute.credentials?.ok ?? 0);
    expect(s.completed + s.failed).toBe(s.fetches);
  });

  it('throttled by dropping: every dropped request is one client timeout', async () => {
    const { result: s, counters } = await withSimulator({ throttleRps: 20, throttleBurst: 10, throttleMode: 'drop' }, (target) =>
      runLoad({ target, clients: 10, durationSeconds: 2, timeoutMs: 1000 }),
    );
    expect(s.requests).toBe(counters.total);
    expect(s.timeouts).toBeGreaterThan(0);
    expect(s.timeouts).toBe(outcomes(counters, 'dropped'));
    expect(s.completed).toBe(counters.byRoute.credentials?.ok ?? 0);
  });

  for (const [faults, failure] of [
    [{ resetMidBody: true }, 'connection_errors'],
    [{ errorDocument: true }, 'bad_documents'],
    [{ malformedJson: true }, 'bad_documents'],
    [{ errorRate: 1 }, 'http_errors'],
  ] as const) {
    it(`fault ${JSON.stringify(faults)}: every fetch fails as ${failure}`, async () => {
      const { result: s, counters } = await withSimulator({ faults }, (target) =>
        runLoad({ target, clients: 3, durationSeconds: 5, timeoutMs: 1000, maxFetches: 12 }),
      );
      expect(s).toMatchObject({ fetches: 12, completed: 0, failed: 12, [failure]: 12 });
      expect(s.requests).toBe(counters.total);
    });
  }

  it('respects --requests as a total fetch budget', async () => {
    const { result: s, counters } = await withSimulator({}, (target) =>
      runLoad({ target, clients: 7, durationSeconds: 30, timeoutMs: 1000, maxFetches: 25 }),
    );
    expect(s).toMatchObject({ fetches: 25, completed: 25, failed: 0, requests: 75 });
    expect(counters.total).toBe(75);
  });
});
