import { loadAverage, machineInfo, type MachineInfo } from '../runtime/machine.js';
import { findKnee, type Knee } from './knee.js';
import type { LoadOptions, LoadRun, SeriesPoint, StepResult } from './runLoad.js';
import type { LoadSummary } from './summary.js';

export type LoadMode = 'closed' | 'open' | 'ramp';

/** Where a run ran: load tests on a busy 2-core box and a quiet 64-core one differ. */
export interface Machine extends MachineInfo {
  /** When the run ended. */
  loadAverage: number;
}

export function describeMachine(): Machine {
  return { ...machineInfo(), loadAverage: loadAverage() };
}

/**
 * What `loadtest --json` prints as its one line and what `--report` draws: the summary's
 * fields at the top level, then how the run was set up, where, and its time series.
 */
export interface LoadResult extends LoadSummary, Partial<Knee> {
  mode: LoadMode;
  interrupted: boolean;
  settings: Record<string, string | number>;
  machine: Machine;
  series: SeriesPoint[];
  /** Open loop and ramp: one row per step (one step for a steady --rate). */
  steps?: StepResult[];
  /** Open loop and ramp: arrivals the generator started over 100 ms late (it fell behind). */
  late_starts?: number;
}

export function modeOf(options: LoadOptions): LoadMode {
  if (options.arrivals === undefined) return 'closed';
  return options.arrivals.ratesPerS.length > 1 ? 'ramp' : 'open';
}

export function settingsOf(options: LoadOptions): Record<string, string | number> {
  const mode = modeOf(options);
  const rates = options.arrivals?.ratesPerS ?? [];
  return {
    target: options.target,
    mode,
    ...(mode === 'closed' ? { clients: options.clients } : {}),
    ...(mode === 'open' ? { rate_per_s: rates[0]! } : {}),
    ...(mode === 'ramp' ? { ramp_from_per_s: rates[0]!, ramp_to_per_s: rates.at(-1)!, steps: rates.length } : {}),
    ...(options.arrivals ? { max_clients: options.arrivals.maxClients } : {}),
    duration_s: options.durationSeconds,
    timeout_ms: options.timeoutMs,
    ...(options.maxFetches !== undefined ? { requests: options.maxFetches } : {}),
  };
}

export function loadResult(options: LoadOptions, run: LoadRun, machine: Machine = describeMachine()): LoadResult {
  const mode = modeOf(options);
  return {
    ...run.summary,
    mode,
    interrupted: run.interrupted,
    settings: settingsOf(options),
    machine,
    series: run.series,
    ...(mode !== 'closed' ? { steps: run.steps, late_starts: run.lateStarts } : {}),
    ...(mode === 'ramp' ? findKnee(run.steps) : {}),
  };
}
