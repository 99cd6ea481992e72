import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The demo and the benchmark run `serve` (and the bench its bare server) as child processes;
// none may outlive its parent, however the parent ends.

const FIXTURE = fileURLToPath(new URL('../fixtures/serveParent.mjs', import.meta.url));
const BENCH = fileURLToPath(new URL('../../dist/bench/run.js', import.meta.url));

/** Alive and not a zombie waiting to be reaped. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
function childrenOf(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l !== '').map(Number);
}
async function until(what: string, probe: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('child processes die with their parent', () => {
  it('serve started through serveProcess stops when its parent is SIGKILLed', async () => {
    // Upstream on a closed loopback port: serve runs (not ready) without it.
    const parent = spawn(process.execPath, [FIXTURE, 'http://127.0.0.1:9'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = Number(await new Promise<string>((resolve) => createInterface({ input: parent.stdout! }).once('line', resolve)));
    expect(running(pid)).toBe(true);
    parent.kill('SIGKILL');
    try {
      await until(`serve (pid ${pid}) to stop after its parent was killed`, () => !running(pid), 5_000);
    } finally {
      if (running(pid)) process.kill(pid, 'SIGKILL');
    }
  }, 15_000);

  it('the benchmark: --help prints usage, a bad flag is one line and exit 2', () => {
    const help = spawnSync(process.execPath, [BENCH, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: node dist\/bench\/run\.js/);
    const bad = spawnSync(process.execPath, [BENCH, '--frobnicate'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual([expect.stringContaining("'--frobnicate'")]);
  });

  it('the benchmark, sent SIGTERM while its servers run, exits and takes them with it', async () => {
    const bench = spawn(process.execPath, [BENCH, '--quick', '--hit-only'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let children: number[] = [];
    try {
      // The hit-path phase runs two proxies and a bare server at once.
      await until('the benchmark to start its servers', () => (children = childrenOf(bench.pid!)).length >= 2, 20_000);
    } finally {
      bench.kill('SIGTERM');
    }
    const code = await new Promise<number | null>((resolve) => bench.once('exit', (c) => resolve(c)));
    expect(code).toBe(143);
    await until(`the benchmark's servers (${children.join(', ')}) to stop`, () => children.every((pid) => !running(pid)), 5_000);
  }, 40_000);
});
