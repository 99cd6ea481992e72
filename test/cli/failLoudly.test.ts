import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cliProcess.js';

/**
 * "Unhandled rejections and exceptions are logged and fail loudly, never silently": a
 * running `serve` process that hits either says so on stderr in one line and exits
 * non-zero, rather than limping on with a half-working cache. The failure is injected from
 * the event loop of the real built CLI by a preloaded module (test/fixtures/injectFailure.mjs).
 */
const PRELOAD = fileURLToPath(new URL('../fixtures/injectFailure.mjs', import.meta.url));

describe('serve fails loudly on a bug', () => {
  for (const [kind, line] of [
    ['exception', 'imds-cache-proxy: uncaught exception: injected exception for the test'],
    ['rejection', 'imds-cache-proxy: unhandled rejection: injected rejection for the test'],
  ] as const) {
    it(`an unhandled ${kind} is logged on stderr and exits 1`, async () => {
      const run = runCli(['serve', '--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9', '--upstream-attempts', '1'], {
        NODE_OPTIONS: `--import=${PRELOAD}`,
        INJECT_FAILURE: kind,
      });
      try {
        const url = String((await run.event('started')).listen);
        expect((await fetch(`${url}/healthz`)).status).toBe(200);
        run.child.kill('SIGUSR2');
        expect(await run.exited).toBe(1);
        expect(run.stderr().trim().split('\n')).toEqual([line]);
      } finally {
        if (run.child.exitCode === null) run.child.kill('SIGKILL');
      }
    }, 15_000);
  }
});
