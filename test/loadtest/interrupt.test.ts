import { describe, expect, it } from 'vitest';
import { startSimulator } from '../../src/simulator/simulator.js';
import { runCli } from '../support/cliProcess.js';

describe('loadtest and Ctrl-C (a real child process)', () => {
  it('SIGINT stops the load, still prints the summary of what ran, and exits 130', async () => {
    const sim = await startSimulator({ port: 0 });
    try {
      const run = runCli(['loadtest', '--target', sim.url, '--ramp', '10:30', '--steps', '3', '--duration', '60', '--json']);
      const deadline = Date.now() + 15_000;
      while (sim.counters().total < 9 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(sim.counters().total).toBeGreaterThanOrEqual(9);
      run.child.kill('SIGINT');
      const code = await Promise.race([run.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
      if (code === 'still running') run.child.kill('SIGKILL');
      expect(code).toBe(130);

      const json = JSON.parse(run.stdout()) as { interrupted: boolean; fetches: number; completed: number; requests: number; duration_s: number; steps: unknown[] };
      expect(json.interrupted).toBe(true);
      expect(json.fetches).toBeGreaterThanOrEqual(3);
      expect(json.duration_s).toBeLessThan(30);
      expect(json.steps).toHaveLength(1);
      // Nothing ran that is not counted, and nothing counted that did not run.
      expect(json.requests).toBe(sim.counters().total);
      expect(json.completed).toBe(sim.counters().byRoute.credentials?.ok ?? 0);
      expect(run.stderr()).toMatch(/stopping/);
      expect(run.stderr()).toMatch(/\(interrupted\)/);
      expect(run.stderr()).toMatch(/^credential fetches completed +\d+$/m);
    } finally {
      await sim.close();
    }
  }, 30_000);
});
