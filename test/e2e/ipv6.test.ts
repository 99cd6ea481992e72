import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { fromInstanceMetadata } from '@aws-sdk/credential-providers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { runCli, type CliRun } from '../support/cliProcess.js';

/**
 * `serve --listen [::1]:0` end to end: the built CLI on IPv6 loopback, a client reaching it
 * at http://[::1]:PORT for a token and the credentials, the AWS SDK for JavaScript v3 too.
 * The upstream is the simulator on 127.0.0.1; nothing leaves loopback.
 */

const hasIpv6Loopback = await new Promise<boolean>((resolve) => {
  const probe = createServer();
  probe.once('error', () => resolve(false));
  probe.listen(0, '::1', () => probe.close(() => resolve(true)));
});
const SKIP_REASON = 'this machine has no IPv6 loopback (::1): cannot listen there';
const ROLE = 'ipv6-role';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe.skipIf(!hasIpv6Loopback)(`serve on [::1]${hasIpv6Loopback ? '' : ` — skipped: ${SKIP_REASON}`}`, () => {
  let sim: RunningSimulator;
  let run: CliRun;
  let url: string;

  beforeAll(async () => {
    sim = await startSimulator({ port: 0, roles: [ROLE] });
    run = runCli(['serve', '--listen', '[::1]:0', '--upstream', sim.url]);
    url = String((await run.event('started')).listen);
    await run.event('ready');
  }, 20_000);
  afterAll(async () => {
    if (run !== undefined && run.child.exitCode === null) {
      run.child.kill('SIGTERM');
      expect(await run.exited).toBe(0);
    }
    await sim?.close();
  });

  it('announces an http://[::1]:PORT endpoint', () => {
    expect(url).toMatch(/^http:\/\/\[::1\]:\d+$/);
    expect(Number(new URL(url).port)).toBeGreaterThan(0);
  });

  it('a client at http://[::1]:PORT gets a token, the role and its credentials', async () => {
    const tokenRes = await fetch(`${url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '300' } });
    expect(tokenRes.status).toBe(200);
    expect(tokenRes.headers.get('x-aws-ec2-metadata-token-ttl-seconds')).toBe('300');
    const token = await tokenRes.text();
    const headers = { 'x-aws-ec2-metadata-token': token };
    const roles = await fetch(`${url}/latest/meta-data/iam/security-credentials/`, { headers });
    expect(roles.status).toBe(200);
    expect(await roles.text()).toBe(ROLE);
    const res = await fetch(`${url}/latest/meta-data/iam/security-credentials/${ROLE}`, { headers });
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { Code: string; AccessKeyId: string; SecretAccessKey: string; Token: string };
    const expected = sim.currentCredentials(ROLE)!;
    expect(doc.Code).toBe('Success');
    expect(doc.AccessKeyId).toBe(expected.accessKeyId);
    expect(sha256(doc.SecretAccessKey) === sha256(expected.secretAccessKey)).toBe(true);
    expect(sha256(doc.Token) === sha256(expected.token)).toBe(true);
    // And without a token it is refused, as on 127.0.0.1.
    expect((await fetch(`${url}/latest/meta-data/iam/security-credentials/${ROLE}`)).status).toBe(401);
  });

  it('the AWS SDK for JavaScript v3 (fromInstanceMetadata) with AWS_EC2_METADATA_SERVICE_ENDPOINT=http://[::1]:PORT/', async () => {
    const saved = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = `${url}/`;
    try {
      const c = await fromInstanceMetadata({ timeout: 2000, maxRetries: 0 })();
      const expected = sim.currentCredentials(ROLE)!;
      expect(c.accessKeyId).toBe(expected.accessKeyId);
      expect(sha256(c.secretAccessKey) === sha256(expected.secretAccessKey)).toBe(true);
      expect(sha256(c.sessionToken ?? '') === sha256(expected.token)).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
      else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = saved;
    }
  });
});
