import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { runCli, type CliRun } from '../support/cliProcess.js';

/**
 * Client tokens across a restart of real `serve` processes: with --cache-file the key is kept
 * beside it and a token from the last process is accepted by the next; without one, or with a
 * key file others could read, it is not (the SDK pays a 401 and fetches a new token).
 */

const CREDS = '/latest/meta-data/iam/security-credentials/restart-role';

let dir: string;
let sim: RunningSimulator;
const runs: CliRun[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'imds-token-restart-'));
  sim = await startSimulator({ port: 0, roles: ['restart-role'] });
});
afterAll(async () => {
  for (const run of runs) run.child.kill('SIGKILL');
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

/** Starts `serve`, returns its URL once it listens. */
async function serve(extra: string[]): Promise<{ run: CliRun; url: string }> {
  const run = runCli(['serve', '--listen', '127.0.0.1:0', '--upstream', sim.url, ...extra]);
  runs.push(run);
  const started = await run.event('started');
  return { run, url: String(started.listen) };
}

async function stop(run: CliRun): Promise<void> {
  run.child.kill('SIGTERM');
  expect(await run.exited).toBe(0);
}

async function mint(url: string): Promise<string> {
  const res = await fetch(`${url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' } });
  expect(res.status).toBe(200);
  return res.text();
}

async function statusWith(url: string, token: string): Promise<number> {
  const res = await fetch(`${url}${CREDS}`, { headers: { 'x-aws-ec2-metadata-token': token } });
  await res.arrayBuffer();
  return res.status;
}

describe('client tokens across a restart', () => {
  it('with --cache-file: accepted by the next process; a key file others can read is replaced, with a warning', async () => {
    const cacheFile = join(dir, 'credentials.json');
    const first = await serve(['--cache-file', cacheFile]);
    const token = await mint(first.url);
    expect(await statusWith(first.url, token)).toBe(200);
    await stop(first.run);

    const second = await serve(['--cache-file', cacheFile]);
    expect(await statusWith(second.url, token)).toBe(200);
    expect(await second.run.event('token_key_loaded')).toBeDefined();
    await stop(second.run);

    const keyFile = `${cacheFile}.token-key`;
    const key = (JSON.parse(await readFile(keyFile, 'utf8')) as { key: string }).key;
    await chmod(keyFile, 0o644);
    const third = await serve(['--cache-file', cacheFile]);
    const replaced = await third.run.event('token_key_replaced');
    expect(replaced.level).toBe('warn');
    expect(String(replaced.reason)).toMatch(/open to group or others/);
    expect(await statusWith(third.url, token)).toBe(401);
    await stop(third.run);

    const output = runs.map((r) => r.stdout() + r.stderr()).join('\n');
    expect(output.includes(key)).toBe(false);
    expect(output.includes((JSON.parse(await readFile(keyFile, 'utf8')) as { key: string }).key)).toBe(false);
  }, 30_000);

  it('without a cache file: refused by the next process', async () => {
    const first = await serve([]);
    const token = await mint(first.url);
    expect(await statusWith(first.url, token)).toBe(200);
    await stop(first.run);
    const second = await serve([]);
    expect(await statusWith(second.url, token)).toBe(401);
    await stop(second.run);
  }, 30_000);
});
