import type { RouteLabel } from '../metrics/recorder.js';

export type SimulatorOutcome =
  | 'ok'
  | 'throttled'
  | 'dropped'
  | 'error'
  | 'unauthorized'
  | 'not_found'
  | 'bad_request'
  | 'forbidden'
  | 'method_not_allowed'
  | 'reset'
  /** The client closed the connection while the simulator was still adding latency. */
  | 'abandoned';

export interface SimulatorCounters {
  total: number;
  byRoute: Partial<Record<RouteLabel, Partial<Record<SimulatorOutcome, number>>>>;
}

/** What the simulated IMDS served: each request counted once, by route and outcome. */
export class ServedCounters {
  private counts: SimulatorCounters = { total: 0, byRoute: {} };

  count(route: RouteLabel, outcome: SimulatorOutcome): void {
    this.counts.total++;
    const byOutcome = (this.counts.byRoute[route] ??= {});
    byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1;
  }

  snapshot(): SimulatorCounters {
    return structuredClone(this.counts);
  }

  reset(): void {
    this.counts = { total: 0, byRoute: {} };
  }
}
