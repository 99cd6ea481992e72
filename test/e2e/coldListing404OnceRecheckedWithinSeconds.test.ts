import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatCredentialsDocument } from '../../src/imds/credentials.js';
import { runCli, type CliRun } from '../support/cliProcess.js';
import { makeCredentials } from '../support/credentials.js';

/**
 * Against the built CLI: an IMDS that answers the role listing 404 once, just
 * as the proxy starts cold (a glitch, or a profile attached seconds after boot), then is
 * healthy. IMDS itself lists the role on the next request; through the proxy every client gets
 * 404 ("no instance profile") until the max-age cycle, 300 s later.
 */
const ROLE = 'glitch-role';
const CREDS = '/latest/meta-data/iam/security-credentials/';
let upstream: Server;
let upstreamUrl: string;
let listings = 0;
let run: CliRun | undefined;

beforeAll(async () => {
  const doc = formatCredentialsDocument(makeCredentials(Date.now() + 6 * 3600_000, Date.now()));
  upstream = createServer((req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-aws-ec2-metadata-token-ttl-seconds': '21600' }).end('upstream-session-token');
    } else if (req.url === CREDS) {
      listings++;
      if (listings === 1) res.writeHead(404, { 'content-type': 'text/html' }).end('<html>404</html>');
      else res.writeHead(200, { 'content-type': 'text/plain' }).end(ROLE);
    } else if (req.url === `${CREDS}${ROLE}`) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(doc);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
afterAll(async () => {
  run?.child.kill('SIGKILL');
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

describe('a role listing that answers 404 once at a cold start', () => {
  it('is asked again within seconds, and the role is served', { timeout: 30_000 }, async () => {
    run = runCli(['serve', '--listen', '127.0.0.1:0', '--upstream', upstreamUrl]);
    const url = String((await run.event('started')).listen);
    const token = await (await fetch(`${url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } })).text();
    let status = 0;
    let body = '';
    // Bounded: at most 10 s, one request every 500 ms.
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${url}${CREDS}`, { headers: { 'x-aws-ec2-metadata-token': token } });
      status = res.status;
      body = await res.text();
      if (status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(listings).toBeGreaterThanOrEqual(1);
    expect(status).toBe(200);
    expect(body).toBe(ROLE);
  });
});
