import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultProxyConfig, type ProxyConfig } from '../../src/config/proxyConfig.js';
import { createLogger, type Logger } from '../../src/runtime/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { runCli } from '../support/cliProcess.js';

/**
 * `--cache-file` end to end: a restart with a good file is ready before it has said a word
 * to IMDS, a bad file is ignored (cold start, no crash), and SIGTERM flushes what the
 * debounced writer had not written yet.
 */

const ROLE = 'warm-role';
const CREDS = `/latest/meta-data/iam/security-credentials/${ROLE}`;

let dir: string;
let sim: RunningSimulator;
const running: RunningProxy[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'imds-warm-'));
  sim = await startSimulator({ port: 0, roles: [ROLE] });
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.close()));
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

/** Log lines as objects; only `event` and `reason` are ever looked at. */
function capturingLogger(): { logger: Logger; events: Record<string, unknown>[] } {
  const events: Record<string, unknown>[] = [];
  const logger = createLogger('info', {
    write(line: string) {
      events.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return { logger, events };
}

async function proxyWith(cacheFile: string, logger?: Logger, overrides: Partial<ProxyConfig> = {}): Promise<RunningProxy> {
  const config: ProxyConfig = {
    ...defaultProxyConfig(),
    listen: { host: '127.0.0.1', port: 0 },
    upstream: sim.url,
    cacheFile,
    ...overrides,
  };
  const proxy = await startProxy(config, logger ? { logger } : { logger: capturingLogger().logger });
  running.push(proxy);
  return proxy;
}

async function accessKeyIdVia(url: string): Promise<string> {
  const token = await (
    await fetch(`${url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } })
  ).text();
  const res = await fetch(`${url}${CREDS}`, { headers: { 'x-aws-ec2-metadata-token': token } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { AccessKeyId: string }).AccessKeyId;
}

/** A file a previous run left: credentials fetched once, written on close. */
async function fileFromAPreviousRun(file: string): Promise<void> {
  const proxy = await proxyWith(file);
  await accessKeyIdVia(proxy.url);
  await proxy.close();
}

function credentialFetches(): number {
  return sim.counters().byRoute.credentials?.ok ?? 0;
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('warm-start file', () => {
  it('lets a restarted proxy serve at once without asking IMDS', async () => {
    const file = join(dir, 'credentials.json');
    const first = await proxyWith(file);
    const keyId = await accessKeyIdVia(first.url);
    expect(credentialFetches()).toBe(1);
    await first.close();

    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, 'utf8')).toContain(keyId);

    const { logger, events } = capturingLogger();
    const second = await proxyWith(file, logger);
    // Ready as soon as it listens: seeded, not fetched.
    expect(second.isReady()).toBe(true);
    expect(await accessKeyIdVia(second.url)).toBe(keyId);
    expect(credentialFetches()).toBe(1);
    expect(events.find((e) => e.event === 'warm_start_loaded')?.roles).toEqual([ROLE]);
  });

  it('ignores a file others can read, says why, and starts cold', async () => {
    const file = join(dir, 'credentials.json');
    await fileFromAPreviousRun(file);
    await chmod(file, 0o644);
    const before = credentialFetches();

    const { logger, events } = capturingLogger();
    const proxy = await proxyWith(file, logger);
    await accessKeyIdVia(proxy.url);
    expect(credentialFetches()).toBe(before + 1);
    const ignored = events.find((e) => e.event === 'warm_start_ignored');
    expect(ignored?.level).toBe('warn');
    expect(String(ignored?.reason)).toMatch(/group|other|mode/i);
  });

  it('ignores a corrupt file and keeps serving', async () => {
    const file = join(dir, 'credentials.json');
    await fileFromAPreviousRun(file);
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.slice(0, text.length / 2), { mode: 0o600 });

    const { logger, events } = capturingLogger();
    const proxy = await proxyWith(file, logger);
    expect(proxy.isReady()).toBe(false);
    await accessKeyIdVia(proxy.url);
    expect(events.some((e) => e.event === 'warm_start_ignored')).toBe(true);
  });

  it('rewrites the file when the credentials rotate', async () => {
    const file = join(dir, 'credentials.json');
    // max-age 1 s: the background refresher picks the rotation up within a couple of seconds.
    const proxy = await proxyWith(file, undefined, { maxAgeSeconds: 1 });
    const firstKey = await accessKeyIdVia(proxy.url);
    await until(async () => (await readFile(file, 'utf8').catch(() => '')).includes(firstKey), 'the first write');

    sim.rotate();
    const rotatedKey = sim.currentCredentials(ROLE)?.accessKeyId;
    expect(rotatedKey).toBeDefined();
    expect(rotatedKey).not.toBe(firstKey);
    await until(async () => (await readFile(file, 'utf8')).includes(rotatedKey ?? '?'), 'the rotated credentials on disk');
    expect(await readFile(file, 'utf8')).not.toContain(firstKey);
  });
});

describe('serve --cache-file', () => {
  it('writes the file on SIGTERM even inside the write debounce', async () => {
    const file = join(dir, 'credentials.json');
    const cli = runCli(['serve', '--listen', '127.0.0.1:0', '--upstream', sim.url, '--cache-file', file]);
    try {
      await cli.event('ready');
      cli.child.kill('SIGTERM');
      expect(await cli.exited).toBe(0);
    } finally {
      cli.child.kill('SIGKILL');
    }
    const doc = JSON.parse(await readFile(file, 'utf8')) as { entries: { role: string }[] };
    expect(doc.entries.map((e) => e.role)).toEqual([ROLE]);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });
});
