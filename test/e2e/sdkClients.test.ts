import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fromContainerMetadata, fromInstanceMetadata } from '@aws-sdk/credential-providers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultProxyConfig } from '../../src/config/proxyConfig.js';
import { silentLogger } from '../../src/runtime/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { CLI } from '../support/cliProcess.js';

const run = promisify(execFile);

// Debian's packages, by absolute path: the machine may have other Pythons and AWS CLIs on PATH.
const DEBIAN_PYTHON = '/usr/bin/python3';
const DEBIAN_AWS = '/usr/bin/aws';
const hasBotocore = existsSync(DEBIAN_PYTHON) && (await run(DEBIAN_PYTHON, ['-c', 'import botocore']).then(() => true, () => false));
const hasAwsCli = existsSync(DEBIAN_AWS);
const SKIP_BOTOCORE = 'botocore not installed (apt-get install python3-botocore); CI installs it';
const SKIP_AWSCLI = 'AWS CLI v2 not installed (apt-get install awscli); CI installs it';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const CONTAINER_TOKEN = 'container-auth-token-for-tests-0123456789';

/** An environment with no credentials of its own, so every client must ask the proxy. */
function clientEnv(proxyUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: '/nonexistent',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_SERVICE_ENDPOINT: `${proxyUrl}/`,
    NO_PROXY: '127.0.0.1,localhost,::1',
    AWS_DEFAULT_REGION: 'eu-west-1',
    ...extra,
  };
}

const BOTOCORE_SCRIPT = `
import hashlib, json, botocore.session
c = botocore.session.get_session().get_credentials().get_frozen_credentials()
print(json.dumps({"AccessKeyId": c.access_key, "SecretSha256": hashlib.sha256(c.secret_key.encode()).hexdigest(), "TokenSha256": hashlib.sha256(c.token.encode()).hexdigest()}))
`;

describe('real AWS clients through the proxy, against the simulator', () => {
  let sim: RunningSimulator;
  let proxy: RunningProxy;
  let dir: string;
  let expected: { AccessKeyId: string; SecretSha256: string; TokenSha256: string };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'imds-proxy-e2e-'));
    await writeFile(join(dir, 'container-token'), CONTAINER_TOKEN, { mode: 0o600 });
    sim = await startSimulator({ port: 0, roles: ['e2e-role'] });
    proxy = await startProxy(
      {
        ...defaultProxyConfig(),
        listen: { host: '127.0.0.1', port: 0 },
        upstream: sim.url,
        containerAuthTokenFile: join(dir, 'container-token'),
      },
      { logger: silentLogger },
    );
    for (let i = 0; i < 200 && !proxy.isReady(); i++) await new Promise((r) => setTimeout(r, 25));
    const c = sim.currentCredentials('e2e-role');
    if (c === undefined) throw new Error('simulator has no credentials for e2e-role');
    expected = { AccessKeyId: c.accessKeyId, SecretSha256: sha256(c.secretAccessKey), TokenSha256: sha256(c.token) };
  }, 30_000);

  afterAll(async () => {
    await proxy?.close();
    await sim?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('the AWS SDK for JavaScript v3 (fromInstanceMetadata): 25 separate clients', async () => {
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = `${proxy.url}/`;
    try {
      const all = await Promise.all(Array.from({ length: 25 }, () => fromInstanceMetadata({ timeout: 1000, maxRetries: 0 })()));
      for (const c of all) {
        expect(c.accessKeyId).toBe(expected.AccessKeyId);
        expect(sha256(c.secretAccessKey) === expected.SecretSha256).toBe(true);
        expect(sha256(c.sessionToken ?? '') === expected.TokenSha256).toBe(true);
        expect(c.expiration!.getTime()).toBeGreaterThan(Date.now());
      }
    } finally {
      delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    }
  });

  it('the AWS SDK for JavaScript v3 container provider, from /container-credentials', async () => {
    const saved = { ...process.env };
    process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = `${proxy.url}/container-credentials`;
    process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN = CONTAINER_TOKEN;
    try {
      const c = await fromContainerMetadata({ timeout: 1000, maxRetries: 0 })();
      expect(c.accessKeyId).toBe(expected.AccessKeyId);
      expect(sha256(c.secretAccessKey) === expected.SecretSha256).toBe(true);
    } finally {
      process.env = saved;
    }
  });

  it.skipIf(!hasBotocore)(`botocore (Debian python3-botocore) ${hasBotocore ? '' : `— skipped: ${SKIP_BOTOCORE}`}`, async () => {
    const { stdout } = await run(DEBIAN_PYTHON, ['-c', BOTOCORE_SCRIPT], { env: clientEnv(proxy.url) });
    expect(JSON.parse(stdout)).toEqual(expected);
  });

  it.skipIf(!hasBotocore)('botocore through the container-credentials endpoint', async () => {
    const { stdout } = await run(DEBIAN_PYTHON, ['-c', BOTOCORE_SCRIPT], {
      env: clientEnv('http://127.0.0.1:9', {
        AWS_CONTAINER_CREDENTIALS_FULL_URI: `${proxy.url}/container-credentials`,
        AWS_CONTAINER_AUTHORIZATION_TOKEN: CONTAINER_TOKEN,
      }),
    });
    expect(JSON.parse(stdout)).toEqual(expected);
  });

  it.skipIf(!hasBotocore)('botocore with a credential_process profile running `imds-cache-proxy credential-process`', async () => {
    const config = join(dir, 'config');
    await writeFile(config, `[profile instance]\ncredential_process = ${process.execPath} ${CLI} credential-process --endpoint ${proxy.url}\n`);
    const { stdout } = await run(DEBIAN_PYTHON, ['-c', BOTOCORE_SCRIPT], {
      env: clientEnv('http://127.0.0.1:9', { AWS_CONFIG_FILE: config, AWS_PROFILE: 'instance' }),
    });
    expect(JSON.parse(stdout)).toEqual(expected);
  });

  it.skipIf(!hasAwsCli)(`the AWS CLI v2 (Debian awscli) ${hasAwsCli ? '' : `— skipped: ${SKIP_AWSCLI}`}`, async () => {
    const { stdout } = await run(DEBIAN_AWS, ['configure', 'export-credentials', '--format', 'process'], { env: clientEnv(proxy.url) });
    const c = JSON.parse(stdout) as { AccessKeyId: string; SecretAccessKey: string; SessionToken: string };
    expect(c.AccessKeyId).toBe(expected.AccessKeyId);
    expect(sha256(c.SecretAccessKey) === expected.SecretSha256).toBe(true);
    expect(sha256(c.SessionToken) === expected.TokenSha256).toBe(true);
  });

  it('the upstream saw one credentials fetch for all of them together', () => {
    const byRoute = sim.counters().byRoute as Record<string, Record<string, number> | undefined>;
    const credentialsServed = Object.values(byRoute.credentials ?? {}).reduce((a, b) => a + b, 0);
    expect(credentialsServed).toBe(1);
  });
});
