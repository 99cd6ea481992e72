import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * The issue's token-flood promise at a small scale: "1,000,000 token requests leave resident
 * memory within a few MiB of where it started, and tokens issued before the flood still
 * work" (the million is the benchmark's). Measured in a child `node --expose-gc` against the
 * built code, so full collections are real and no test runner shares the heap:
 * - 100,000 mints + verifies through the ClientTokenAuthority;
 * - 5,000 token PUTs, each token then used on the credentials route, through the hono app.
 * The bound is on what stays reachable after collection (heap + external), not on time or
 * on RSS, which V8's young generation moves by tens of MiB under any allocation burst.
 * A control run that keeps every token shows the measurement sees a per-token store.
 */

const FIXTURE = fileURLToPath(new URL('../fixtures/tokenFlood.mjs', import.meta.url));
const MiB = 1024 * 1024;
const BOUND = 4 * MiB;
const DIRECT_FLOOD = 100_000;
const APP_FLOOD = 5_000;

interface Figures {
  direct: { flood: number; valid: number; growthBytes: number };
  early: { before: string; after: string };
  control: { kept: number; growthBytes: number };
  app: { flood: number; statuses: Record<string, number>; growthBytes: number; earlyStatus: number; earlyCode: string };
}

describe('token flood, measured in a child process with --expose-gc', () => {
  it(`${DIRECT_FLOOD} tokens through the authority and ${APP_FLOOD} through the app: memory stays within ${BOUND / MiB} MiB, early tokens still work`, async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', FIXTURE, String(DIRECT_FLOOD), String(APP_FLOOD)], {
      timeout: 90_000,
    });
    const figures = JSON.parse(stdout) as Figures;

    expect(figures.direct.valid).toBe(DIRECT_FLOOD);
    expect(figures.early).toEqual({ before: 'valid', after: 'valid' });
    expect(figures.direct.growthBytes).toBeLessThan(BOUND);
    // The same measurement does see 100,000 distinct tokens kept: the bound above can fail.
    expect(figures.control.kept).toBe(DIRECT_FLOOD);
    expect(figures.control.growthBytes).toBeGreaterThan(BOUND);

    expect(figures.app.statuses).toEqual({ 200: 2 * APP_FLOOD });
    expect(figures.app.growthBytes).toBeLessThan(BOUND);
    expect(figures.app.earlyStatus).toBe(200);
    expect(figures.app.earlyCode).toBe('Success');
  }, 120_000);
});
