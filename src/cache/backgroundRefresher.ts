import type { CredentialCache } from './credentialCache.js';

/** Never sleep longer than this between looks at the schedule (the wall clock may step, moving Expiration closer). */
const MAX_SLEEP_MS = 60_000;
const MIN_SLEEP_MS = 50;

/**
 * Runs the credential cache's refresh cycles when they fall due, on a timer that does not
 * keep the process alive. Starting it warms the cache at once, so the first client does not
 * pay a miss.
 */
export function startBackgroundRefresher(cache: CredentialCache, onCycle?: () => void): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const cycle = async () => {
    await cache.refreshIfDue();
    if (stopped) return;
    onCycle?.();
    const delay = Math.min(MAX_SLEEP_MS, Math.max(MIN_SLEEP_MS, cache.refreshDueInMs));
    timer = setTimeout(cycle, delay);
    timer.unref();
  };
  void cycle();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
