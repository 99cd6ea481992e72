import { fetchCredentialsLikeAFreshProcess } from './credentialFetch.js';
import { LoadRecorder, type LoadSummary } from './summary.js';

export interface LoadOptions {
  /** Base URL of an IMDS (or the proxy), e.g. http://127.0.0.1:8169. */
  target: string;
  /** Concurrent simulated processes. */
  clients: number;
  durationSeconds: number;
  /** Stop after this many credential fetches in all, if sooner. */
  maxFetches?: number;
  timeoutMs: number;
}

/** Hard ceilings whatever the caller asks: every load loop ends by itself. */
export const LOAD_LIMITS = { clients: 10_000, durationSeconds: 600, timeoutMs: 60_000 };

/**
 * Runs `clients` simulated fresh processes back to back until the duration (or the fetch
 * budget) is spent. Fetches in flight at the end finish (each is bounded by its timeouts).
 */
export async function runLoad(options: LoadOptions): Promise<LoadSummary> {
  const clients = Math.min(options.clients, LOAD_LIMITS.clients);
  const durationMs = Math.min(options.durationSeconds, LOAD_LIMITS.durationSeconds) * 1000;
  const timeoutMs = Math.min(options.timeoutMs, LOAD_LIMITS.timeoutMs);
  const maxFetches = options.maxFetches ?? Number.POSITIVE_INFINITY;
  const recorder = new LoadRecorder();
  const started = performance.now();
  const endsAt = started + durationMs;
  let begun = 0;

  const client = async () => {
    while (performance.now() < endsAt && begun < maxFetches) {
      begun++;
      recorder.record(await fetchCredentialsLikeAFreshProcess(options.target, timeoutMs));
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  return recorder.summarize((performance.now() - started) / 1000);
}
