import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultProxyConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';

/**
 * Review finding: issue #11 item 8 asks that the container-credentials token file be re-read
 * when it changes, so rotating it needs no restart. It is still read once at start
 * (src/server/proxy.ts, readContainerAuthToken): after the file is rotated, a container given
 * the new token gets 401 until the proxy restarts, and the old token keeps working.
 */
let dir: string;
let sim: RunningSimulator;
let proxy: RunningProxy;
const OLD = 'old-container-token-0123456789';
const NEW = 'new-container-token-9876543210';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'review-container-token-'));
  await writeFile(join(dir, 'token'), `${OLD}\n`, { mode: 0o600 });
  sim = await startSimulator({ port: 0, roles: ['container-role'] });
  proxy = await startProxy(
    { ...defaultProxyConfig(), listen: { host: '127.0.0.1', port: 0 }, upstream: sim.url, containerAuthTokenFile: join(dir, 'token') },
    { logger: silentLogger },
  );
});
afterAll(async () => {
  await proxy.close();
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the container-credentials token file', () => {
  it('is honoured after it is rotated, without a restart', { timeout: 15_000 }, async () => {
    const status = async (token: string) => {
      const res = await fetch(`${proxy.url}/container-credentials`, { headers: { authorization: token } });
      await res.arrayBuffer();
      return res.status;
    };
    expect(await status(OLD)).toBe(200);
    await writeFile(join(dir, 'token'), `${NEW}\n`, { mode: 0o600 });
    // Bounded: up to 5 s for the change to be noticed.
    let now = 0;
    for (let i = 0; i < 50 && now !== 200; i++) {
      now = await status(NEW);
      if (now !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(now).toBe(200);
    expect(await status(OLD)).toBe(401);
  });
});
