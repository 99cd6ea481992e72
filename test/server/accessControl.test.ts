import { afterEach, describe, expect, it } from 'vitest';
import { defaultProxyConfig, type ProxyConfig } from '../../src/config/proxyConfig.js';
import { silentLogger } from '../../src/runtime/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { runCli, type CliRun } from '../support/cliProcess.js';
import { RecordingMetrics } from '../support/recordingMetrics.js';

/**
 * `--allow-cidr` on a real socket, and the warning for a non-loopback listener without it.
 * The allow-list is checked on the socket's address before any route runs, for every path:
 * /healthz, /readyz and /metrics included, so probes must come from an allowed network too.
 * Clients here only ever connect to loopback; the proxy's upstream is a closed loopback port.
 */

const CLOSED_UPSTREAM = 'http://127.0.0.1:9';
const TOKEN_PUT = { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } } as const;

describe('--allow-cidr on a real socket', () => {
  let proxy: RunningProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  async function start(overrides: Partial<ProxyConfig>, metrics = new RecordingMetrics()) {
    proxy = await startProxy(
      { ...defaultProxyConfig(), listen: { host: '127.0.0.1', port: 0 }, upstream: CLOSED_UPSTREAM, upstreamAttempts: 1, ...overrides },
      { logger: silentLogger, metrics },
    );
    return proxy;
  }

  it('refuses a loopback client outside the list with IMDS\'s 403 page, on every path, before any route runs, and counts it', async () => {
    const metrics = new RecordingMetrics();
    const { url } = await start({ allowCidrs: ['10.0.0.0/8'] }, metrics);
    for (const [path, init] of [
      ['/healthz', {}],
      ['/readyz', {}],
      ['/metrics', {}],
      ['/latest/api/token', TOKEN_PUT],
      ['/latest/meta-data/iam/security-credentials/', {}],
      ['/no/such/route', {}],
    ] as const) {
      const res = await fetch(`${url}${path}`, init);
      expect(res.status, path).toBe(403);
      expect(res.headers.get('content-type'), path).toBe('text/html');
      expect(res.headers.get('server'), path).toBe('EC2ws');
      expect(res.headers.get('connection'), path).toBe('close');
      const body = await res.text();
      expect(body, path).toContain('<title>403 - Forbidden</title>');
      expect(body, path).toMatch(/^<\?xml version="1\.0" encoding="iso-8859-1"\?>/);
    }
    // Refused at the front door, and counted there, each under its route; no route ran.
    expect(Object.fromEntries([...metrics.counts].filter(([k]) => k.startsWith('request:')))).toEqual({
      'request:health:GET:403': 2,
      'request:metrics:GET:403': 1,
      'request:token:PUT:403': 1,
      'request:credentials_list:GET:403': 1,
      'request:other:GET:403': 1,
    });
    expect(metrics.count('tokenIssued')).toBe(0);
    expect(metrics.count('tokenRejected:forwarded')).toBe(0);
  });

  it('serves a client inside the list', async () => {
    const metrics = new RecordingMetrics();
    const { url } = await start({ allowCidrs: ['10.0.0.0/8', '127.0.0.0/8'] }, metrics);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const token = await fetch(`${url}/latest/api/token`, TOKEN_PUT);
    expect(token.status).toBe(200);
    expect((await token.text()).length).toBeGreaterThan(20);
    expect(metrics.count('tokenIssued')).toBe(1);
  });

  it('on IPv6 loopback: ::1 is allowed by ::1/128, and not by 127.0.0.0/8', async () => {
    const v6 = await start({ listen: { host: '::1', port: 0 }, allowCidrs: ['::1/128'] }).catch((e: NodeJS.ErrnoException) => e);
    if (v6 instanceof Error) {
      // No IPv6 loopback here: the end-to-end IPv6 test reports the skip.
      expect(v6.code).toMatch(/EADDRNOTAVAIL|EAFNOSUPPORT/);
      return;
    }
    expect((await fetch(`${v6.url}/healthz`)).status).toBe(200);
    await v6.close();
    const v4Only = await start({ listen: { host: '::1', port: 0 }, allowCidrs: ['127.0.0.0/8'] });
    expect((await fetch(`${v4Only.url}/healthz`)).status).toBe(403);
  });
});

describe('serve on a non-loopback address', () => {
  let run: CliRun | undefined;
  afterEach(async () => {
    if (run !== undefined && run.child.exitCode === null) {
      run.child.kill('SIGTERM');
      await run.exited;
    }
    run = undefined;
  });

  /** Starts `serve` on 0.0.0.0 and returns its port; clients still connect over 127.0.0.1. */
  async function serveOnAllAddresses(extra: string[]): Promise<number> {
    run = runCli(['serve', '--listen', '0.0.0.0:0', '--upstream', CLOSED_UPSTREAM, '--upstream-attempts', '1', ...extra]);
    const started = await run.event('started');
    return Number(new URL(String(started.listen)).port);
  }

  it('without --allow-cidr: a loud WARNING on stderr at start, and the warning in the log', async () => {
    const port = await serveOnAllAddresses([]);
    expect(run!.stderr()).toMatch(/^WARNING: listening on 0\.0\.0\.0:0, which is not loopback, with no --allow-cidr: any host that can reach it can take this instance's credentials\n$/);
    await run!.event('insecure_listen', 100);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  });

  it('with --allow-cidr: no warning, and the allowed loopback client is served', async () => {
    const port = await serveOnAllAddresses(['--allow-cidr', '127.0.0.0/8']);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect(run!.stderr()).toBe('');
    expect(run!.stdout()).not.toContain('insecure_listen');
  });

  it('with --allow-cidr that leaves loopback out: no warning, and loopback is refused', async () => {
    const port = await serveOnAllAddresses(['--allow-cidr', '10.0.0.0/8']);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(403);
    expect(run!.stderr()).toBe('');
  });
});
