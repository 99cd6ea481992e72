import { describe, expect, it } from 'vitest';
import { fetchCredentialsLikeAFreshProcess } from '../../src/loadtest/credentialFetch.js';
import { findKnee, rampRates } from '../../src/loadtest/knee.js';
import { runLoadTest, type StepResult } from '../../src/loadtest/runLoad.js';
import { LoadRecorder } from '../../src/loadtest/summary.js';
import { startSimulator, type SimulatorOptions } from '../../src/simulator/simulator.js';

const withSimulator = async <T>(options: SimulatorOptions, body: (url: string) => Promise<T>) => {
  const sim = await startSimulator({ port: 0, ...options });
  try {
    return { result: await body(sim.url), counters: sim.counters() };
  } finally {
    await sim.close();
  }
};

describe('open loop: arrivals on a schedule, not on completions', () => {
  it('a slow IMDS does not slow the arrivals: every scheduled fetch is offered', async () => {
    // Each fetch takes 300 ms (three answers of 100 ms): arrivals must not wait for them.
    const { result: run, counters } = await withSimulator({ faults: { latencyMs: 100 } }, (target) =>
      runLoadTest({ target, clients: 0, arrivals: { ratesPerS: [80], maxClients: 1000 }, durationSeconds: 1, timeoutMs: 2000 }),
    );
    expect(run.summary).toMatchObject({ fetches: 80, completed: 80, failed: 0, requests: 240 });
    expect(counters.total).toBe(240);
    expect(run.summary.p50_ms).toBeGreaterThanOrEqual(300);
    expect(run.series.reduce((n, p) => n + p.offered, 0)).toBe(80);
    expect(run.steps).toHaveLength(1);
    expect(run.steps[0]).toMatchObject({ offered_per_s: 80, fetches: 80, failed_pct: 0 });
  });

  it('an arrival that finds --max-clients in flight is counted as not started, never dropped', async () => {
    const { result: run, counters } = await withSimulator({ faults: { latencyMs: 400 } }, (target) =>
      runLoadTest({ target, clients: 0, arrivals: { ratesPerS: [100], maxClients: 5 }, durationSeconds: 0.5, timeoutMs: 2000 }),
    );
    const s = run.summary;
    expect(s.fetches).toBe(50);
    // 5 start at once and hold their slots for over a second: the other 45 cannot start.
    expect(s.not_started).toBe(45);
    expect(s).toMatchObject({ completed: 5, failed: 45, requests: 15 });
    expect(counters.total).toBe(15);
    expect(run.steps[0]!.failed_pct).toBe(90);
  });

  it('latency counts from when the fetch was due (no coordinated omission)', async () => {
    const sim = await startSimulator({ port: 0 });
    try {
      const due = performance.now() - 250;
      const late = await fetchCredentialsLikeAFreshProcess(sim.url, 1000, due);
      expect(late.failure).toBeUndefined();
      expect(late.latencyMs).toBeGreaterThanOrEqual(250);

      // The generator itself stalls for 300 ms: the fetches due meanwhile start late and say so.
      const stall = setTimeout(() => {
        const until = performance.now() + 300;
        while (performance.now() < until);
      }, 200);
      const run = await runLoadTest({ target: sim.url, clients: 0, arrivals: { ratesPerS: [50], maxClients: 100 }, durationSeconds: 1, timeoutMs: 2000 });
      clearTimeout(stall);
      expect(run.summary.fetches).toBe(50);
      expect(run.summary.max_ms).toBeGreaterThanOrEqual(250);
      // ...and the run says its generator fell behind: at 50/s, a 300 ms stall makes 10 or so late.
      expect(run.lateStarts).toBeGreaterThanOrEqual(5);
      expect(run.steps[0]!.late_starts).toBe(run.lateStarts);
    } finally {
      await sim.close();
    }
  });

  it('an abort stops new arrivals, lets those in flight finish and counts them', async () => {
    const stop = new AbortController();
    const { result: run, counters } = await withSimulator({ faults: { latencyMs: 200 } }, (target) => {
      // Arrivals at 0, 100 and 200 ms; the next would be due at 300.
      setTimeout(() => stop.abort(), 250);
      return runLoadTest({ target, clients: 0, arrivals: { ratesPerS: [10, 20, 30], maxClients: 100 }, durationSeconds: 30, timeoutMs: 2000, signal: stop.signal });
    });
    expect(run.interrupted).toBe(true);
    expect(run.summary.fetches).toBe(3);
    expect(run.summary.completed).toBe(3);
    expect(counters.total).toBe(9);
    expect(run.steps.map((s) => s.offered_per_s)).toEqual([10]);
    expect(run.summary.duration_s).toBeLessThan(5);
  });

  it('closed loop stops on abort too', async () => {
    const stop = new AbortController();
    const { result: run } = await withSimulator({}, (target) => {
      setTimeout(() => stop.abort(), 200);
      return runLoadTest({ target, clients: 3, durationSeconds: 30, timeoutMs: 1000, signal: stop.signal });
    });
    expect(run.interrupted).toBe(true);
    expect(run.summary.fetches).toBeGreaterThan(0);
    expect(run.summary.failed).toBe(0);
    expect(run.steps).toEqual([]);
  });
});

describe('the knee', () => {
  const step = (offered: number, fetches: number, failed: number, completedPerS: number): StepResult => {
    const r = new LoadRecorder();
    for (let i = 0; i < fetches; i++) r.record({ requests: 3, failure: i < failed ? 'timeout' : undefined, latencyMs: 1 });
    return { offered_per_s: offered, ...r.summarize(1), rate_per_s: completedPerS, failed_pct: (100 * failed) / fetches, late_starts: 0 };
  };

  it('ramps in equal steps, both ends included', () => {
    expect(rampRates(10, 100, 10)).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    expect(rampRates(5, 6, 2)).toEqual([5, 6]);
  });

  it('is the highest offered rate with under 1% failed; a low step that stumbled does not move it', () => {
    const steps = [step(10, 100, 5, 9), step(20, 200, 1, 20), step(30, 300, 2, 30), step(40, 400, 4, 39), step(50, 500, 100, 41), step(60, 600, 200, 40)];
    // 40/s: 4 of 400 failed, exactly 1%: that step did not hold.
    expect(findKnee(steps)).toEqual({ knee_fetches_per_s: 30, sustained_fetches_per_s: 40 });
  });

  it('says when the ramp never reached the knee, or started above it', () => {
    expect(findKnee([step(10, 100, 0, 10), step(20, 200, 0, 20)])).toEqual({ knee_fetches_per_s: 20, sustained_fetches_per_s: null });
    expect(findKnee([step(10, 100, 50, 5), step(20, 200, 150, 5)])).toEqual({ knee_fetches_per_s: null, sustained_fetches_per_s: 5 });
    expect(findKnee([])).toEqual({ knee_fetches_per_s: null, sustained_fetches_per_s: null });
  });

  // IMDS admits R = 90 requests/s; a fetch is 3 requests, so the throttle's knee is R/3 = 30
  // fetches/s. The ramp runs 85%..115% of R/3 in 5% steps of 1 s. The bucket holds 9 requests
  // (0.1 s of R): small enough that steps above R/3 cannot hide behind it (by the end of the
  // 110% step the excess is 13.5 requests, so 110% and 115% fail), large enough that a stall
  // of the shared, busy machine under ~0.1 s costs a step below R/3 nothing. The knee is the
  // highest step that held, so a stall failing one step does not move it out of 90%..105%.
  // Low rates keep the CPU it needs small (a starved process stalls for seconds); the two
  // modes run side by side on their own simulators: 8 s for both.
  for (const mode of ['429', 'drop'] as const) {
    it.concurrent(`lies within 10% of R/3 against the simulator throttled by ${mode === '429' ? '429s' : 'dropping'}`, async () => {
      const R = 90;
      const { result: run } = await withSimulator({ throttleRps: R, throttleBurst: 9, throttleMode: mode }, (target) =>
        runLoadTest({ target, clients: 0, arrivals: { ratesPerS: rampRates(25.5, 34.5, 7), maxClients: 1000 }, durationSeconds: 7, timeoutMs: 1000 }),
      );
      const { knee_fetches_per_s: knee, sustained_fetches_per_s: sustained } = findKnee(run.steps);
      const table = run.steps
        .map((s) => `${s.offered_per_s}/s: ${s.failed}/${s.fetches} failed (${s.timeouts} timeouts, ${s.throttled} throttled, ${s.connection_errors} connection errors, ${s.late_starts} late starts)`)
        .join(', ');
      expect(knee, table).not.toBeNull();
      expect(Math.abs(knee! - R / 3), table).toBeLessThanOrEqual(0.1 * (R / 3));
      expect(run.steps.at(-1)!.failed_pct, table).toBeGreaterThanOrEqual(1);
      expect(sustained, table).not.toBeNull();
      expect(mode === '429' ? run.summary.throttled : run.summary.timeouts).toBeGreaterThan(0);
    }, 30_000);
  }
});
