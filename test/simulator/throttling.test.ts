import { describe, expect, it } from 'vitest';
import { startSimulator } from '../../src/simulator/simulator.js';
import { call, statusOf } from './rawCall.js';

const TOKENLESS = { httpTokens: 'optional' } as const;

describe('simulator throttling', () => {
  it('429 mode: past the burst, clients get 429 and the counters say so exactly', async () => {
    const sim = await startSimulator({ port: 0, throttleRps: 1, throttleBurst: 5, throttleMode: '429', faults: TOKENLESS });
    try {
      const results = await Promise.all(Array.from({ length: 20 }, () => call(`${sim.url}/latest/meta-data/instance-id`)));
      const ok = results.filter((r) => statusOf(r) === 200).length;
      const throttled = results.filter((r) => statusOf(r) === 429).length;
      expect(ok + throttled).toBe(20);
      // The burst, plus at most what a second of refill adds while the requests arrive.
      expect(ok).toBeGreaterThanOrEqual(5);
      expect(ok).toBeLessThanOrEqual(7);
      expect(sim.counters()).toEqual({ total: 20, byRoute: { metadata: { ok, throttled } } });
    } finally {
      await sim.close();
    }
  });

  it('drop mode: a throttled client hears nothing and times out; close() still returns promptly', async () => {
    const sim = await startSimulator({ port: 0, throttleRps: 1, throttleBurst: 1, throttleMode: 'drop', faults: TOKENLESS });
    const results = await Promise.all(Array.from({ length: 5 }, () => call(`${sim.url}/latest/meta-data/instance-id`, 'GET', {}, 300)));
    expect(results.map(statusOf).sort()).toEqual([200, 'TIMEOUT', 'TIMEOUT', 'TIMEOUT', 'TIMEOUT']);
    expect(sim.counters().byRoute.metadata).toEqual({ ok: 1, dropped: 4 });
    // One more request is held right now; close() must not wait for it.
    const held = call(`${sim.url}/latest/meta-data/instance-id`, 'GET', {}, 60_000);
    await new Promise((r) => setTimeout(r, 50));
    await sim.close();
    expect(statusOf(await held)).toBe('ECONNRESET');
  });

  it('the default is drop mode', async () => {
    const sim = await startSimulator({ port: 0, throttleRps: 1, faults: TOKENLESS });
    try {
      const results = await Promise.all(Array.from({ length: 3 }, () => call(`${sim.url}/latest/meta-data/instance-id`, 'GET', {}, 200)));
      expect(results.map(statusOf).sort()).toEqual([200, 'TIMEOUT', 'TIMEOUT']);
    } finally {
      await sim.close();
    }
  });

  it('unthrottled by default: a burst of 50 is all served', async () => {
    const sim = await startSimulator({ port: 0, faults: TOKENLESS });
    try {
      const results = await Promise.all(Array.from({ length: 50 }, () => call(`${sim.url}/latest/meta-data/instance-id`)));
      expect(results.filter((r) => statusOf(r) === 200)).toHaveLength(50);
    } finally {
      await sim.close();
    }
  });

  it('maxConnections: connections past the cap are closed', async () => {
    const sim = await startSimulator({ port: 0, maxConnections: 2, faults: { latencyMs: 300, ...TOKENLESS } });
    try {
      const results = await Promise.all(Array.from({ length: 5 }, () => call(`${sim.url}/latest/meta-data/instance-id`)));
      expect(results.filter((r) => statusOf(r) === 200)).toHaveLength(2);
      expect(results.filter((r) => statusOf(r) !== 200)).toHaveLength(3);
    } finally {
      await sim.close();
    }
  });
});
