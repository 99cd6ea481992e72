import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { CLI } from '../support/cliProcess.js';

/**
 * The AWS CLI starts `credential-process` on every invocation, so that command (and
 * --version, --help) must not load what only `serve` and the other commands need. What a
 * process loaded is recorded by a preloaded module (test/fixtures/recordImports.mjs); the
 * start-up time itself is measured in `npm run bench`, not here.
 */
const RECORDER = fileURLToPath(new URL('../fixtures/recordImports.mjs', import.meta.url));
const HEAVY = ['hono', '@hono/node-server', 'pino', 'prom-client', 'lru-cache', '@opentelemetry'];

let dir: string;
let sim: RunningSimulator;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'import-graph-'));
  sim = await startSimulator({ port: 0, roles: ['graph-role'] });
});
afterAll(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

interface Loaded {
  code: number | null;
  stdout: string;
  /** npm packages loaded, by name. */
  packages: Set<string>;
  /** Our own modules, as paths under dist/. */
  own: string[];
  undici: boolean;
}

let runs = 0;
async function loadedBy(args: string[], script = CLI): Promise<Loaded> {
  const out = join(dir, String(runs++));
  const child = spawn(process.execPath, ['--import', RECORDER, script, ...args], {
    env: { PATH: process.env.PATH ?? '', RECORD_IMPORTS: out },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const [esm, cjs, builtin] = await Promise.all(['esm', 'cjs', 'builtin'].map((kind) => readFile(`${out}.${kind}`, 'utf8')));
  const files = `${esm}\n${cjs}`.split('\n').filter((line) => line !== '');
  const packages = new Set(files.flatMap((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f)?.[1] ?? []).map((p) => (p.startsWith('@opentelemetry/') ? '@opentelemetry' : p)));
  const own = [...new Set(files.flatMap((f) => /\/dist\/(.+\.js)$/.exec(f)?.[1] ?? []))].sort();
  return { code, stdout, packages, own, undici: builtin!.includes('internal/deps/undici') };
}

describe('what each command loads', () => {
  it('the recorder sees the heavy modules where they are used: serve loads hono, pino, prom-client; fetch loads undici', async () => {
    const serve = await loadedBy(['serve', '--help']);
    expect(serve.code).toBe(0);
    for (const name of ['hono', 'pino', 'prom-client']) expect(serve.packages).toContain(name);
    const script = join(dir, 'fetch.mjs');
    await writeFile(script, "await fetch('http://127.0.0.1:9').catch(() => {});\n");
    expect((await loadedBy([], script)).undici).toBe(true);
  });

  it('--version and --help load no package, no undici, no configuration and none of the commands', async () => {
    for (const args of [['--version'], ['--help']]) {
      const run = await loadedBy(args);
      expect(run.code, args[0]).toBe(0);
      expect([...run.packages], args[0]).toEqual([]);
      expect(run.undici, args[0]).toBe(false);
      expect(run.own.filter((f) => f !== 'cli.js' && f !== 'runtime/version.js'), args[0]).toEqual(['config/usageError.js']);
    }
  });

  it('credential-process fetches credentials loading no package and no undici, and fails the same way', async () => {
    const ok = await loadedBy(['credential-process', '--endpoint', sim.url]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ Version: 1, AccessKeyId: expect.any(String) });
    const refused = await loadedBy(['credential-process', '--endpoint', 'http://127.0.0.1:9']);
    expect(refused.code).toBe(1);
    for (const run of [ok, refused]) {
      expect([...run.packages]).toEqual([]);
      expect(run.undici).toBe(false);
      // Only what the command is made of: no server, cache, metrics, simulator or load generator.
      expect(run.own.filter((f) => !/^(cli|config\/(proxyConfig|logLevels|usageError|flags)|commands\/credentialProcess|imds\/(protocol|credentials)|upstream\/(httpRequest|errors))\.js$/.test(f))).toEqual([]);
    }
  });

  it('status, a health check run every few seconds, reads a proxy loading no package and no undici', async () => {
    const refused = await loadedBy(['status', '--endpoint', 'http://127.0.0.1:9']);
    expect(refused.code).toBe(3);
    expect([...refused.packages]).toEqual([]);
    expect(refused.undici).toBe(false);
    // Metric names come from metrics/names.js, not the prom-client module that serves them.
    expect(refused.own.filter((f) => !/^(cli|config\/(proxyConfig|logLevels|usageError|flags)|commands\/status|status\/(exposition|view)|metrics\/names|upstream\/(httpRequest|errors))\.js$/.test(f))).toEqual([]);
  });
});
