import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { runCli } from '../support/cliProcess.js';

/**
 * `credential-process` as the AWS CLI and SDKs run it: credentials on stdout, or one line on
 * stderr that says what happened at which address and what to check, and exit 1.
 */
const ROLE = 'cp-role';
let sim: RunningSimulator;
beforeAll(async () => {
  sim = await startSimulator({ port: 0, roles: [ROLE] });
});
afterAll(() => sim.close());

async function listening<T extends NetServer | HttpServer>(server: T): Promise<{ server: T; url: string }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** Runs the command; its stderr must be one line, naming no secret. */
async function failing(args: string[]): Promise<string> {
  const run = runCli(['credential-process', ...args]);
  expect(await run.exited).toBe(1);
  expect(run.stdout()).toBe('');
  const lines = run.stderr().trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  const secret = sim.currentCredentials(ROLE)!;
  expect(lines[0]).not.toContain(secret.secretAccessKey);
  expect(lines[0]).not.toContain(secret.token);
  expect(lines[0]).toMatch(/^imds-cache-proxy credential-process: /);
  return lines[0]!;
}

describe('credential-process', () => {
  it('prints the role credentials in the credential_process format', async () => {
    const run = runCli(['credential-process', '--endpoint', `${sim.url}/`]);
    expect(await run.exited).toBe(0);
    expect(run.stderr()).toBe('');
    const printed = JSON.parse(run.stdout()) as Record<string, unknown>;
    const current = sim.currentCredentials(ROLE)!;
    expect(printed).toMatchObject({ Version: 1, AccessKeyId: current.accessKeyId, SecretAccessKey: current.secretAccessKey, SessionToken: current.token });
    expect(printed.Expiration).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('a proxy that is down: "connection refused at URL" and what to check', async () => {
    const { server, url } = await listening(createNetServer());
    await new Promise((resolve) => server.close(resolve)); // a port nothing listens on
    const line = await failing(['--endpoint', url]);
    expect(line).toContain(`connection refused at ${url}`);
    expect(line).toContain('imds-cache-proxy serve');
    expect(line).toContain('--endpoint');
    expect(line).not.toContain('TypeError');
  });

  it('something that accepts but never answers: a timeout naming the URL and the wait', async () => {
    const sockets = new Set<Socket>();
    const { server, url } = await listening(createNetServer((s) => sockets.add(s)));
    try {
      const line = await failing(['--endpoint', url, '--timeout-ms', '200']);
      expect(line).toContain(`no answer from ${url} within 200 ms (PUT /latest/api/token)`);
      expect(line).toContain('--timeout-ms');
    } finally {
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  it('a connection closed before any answer says so', async () => {
    const { server, url } = await listening(createNetServer((s) => s.destroy()));
    try {
      expect(await failing(['--endpoint', url])).toContain(`connection to ${url} closed before a whole answer (PUT /latest/api/token)`);
    } finally {
      server.close();
    }
  });

  it('an HTTP error names the request, the status and the likely cause; a huge answer is cut off', async () => {
    let status = 503;
    const { server, url } = await listening(
      createHttpServer((req, res) => {
        if (status === 200) res.end('x'.repeat(200_000));
        else res.writeHead(status).end(`${status} - the body is not quoted`);
      }),
    );
    try {
      const unavailable = await failing(['--endpoint', url]);
      expect(unavailable).toContain(`${url} answered PUT /latest/api/token with 503`);
      expect(unavailable).toContain('no credentials to serve yet');
      expect(unavailable).not.toContain('not quoted');
      status = 403;
      expect(await failing(['--endpoint', url])).toContain('--allow-cidr');
      status = 200;
      expect(await failing(['--endpoint', url])).toContain('answered PUT /latest/api/token: response body larger than 65536 bytes');
    } finally {
      server.close();
    }
  });

  it('a connection reset in the middle of an answer is reported as such at once, not as a timeout', async () => {
    sim.setFaults({ resetMidBody: true });
    try {
      const line = await failing(['--endpoint', sim.url, '--timeout-ms', '30000']);
      expect(line).toContain(`connection to ${sim.url} closed before a whole answer (GET /latest/meta-data/iam/security-credentials/${ROLE})`);
    } finally {
      sim.resetFaults();
    }
  });

  it('an error document from upstream is named by its code, never quoted', async () => {
    sim.setFaults({ errorDocument: true });
    try {
      const line = await failing(['--endpoint', sim.url]);
      expect(line).toMatch(new RegExp(`answered an error document \\(Code \\w+\\) for role "${ROLE}"`));
    } finally {
      sim.resetFaults();
    }
  });

  it('bad flags: one line naming the flag, exit 2', async () => {
    for (const [args, flag] of [
      [['--endpoint', 'ftp://127.0.0.1:1'], '--endpoint'],
      [['--endpoint', 'http://127.0.0.1:1/path'], '--endpoint'],
      [['--timeout-ms', '0'], '--timeout-ms'],
      [['--timeout-ms', 'soon'], '--timeout-ms'],
    ] as const) {
      const run = runCli(['credential-process', ...args]);
      expect(await run.exited, args.join(' ')).toBe(2);
      expect(run.stderr().trimEnd().split('\n')).toEqual([expect.stringContaining(flag)]);
    }
  });
});
