import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, type CliRun } from '../support/cliProcess.js';
import { sampleValue } from '../support/exposition.js';

/**
 * #13 item 6: a stop is bounded whatever the upstream settings. An upstream that accepts
 * connections and never answers holds the proxy's token PUT (and a client waiting on the
 * cold fetch) for up to 20 s per attempt; SIGTERM must still end the process within the
 * stated 5 s, with `stopped` the last line it logs.
 */
describe('serve: bounded stop against an upstream that never answers', () => {
  let upstream: Server;
  const sockets = new Set<Socket>();
  let run: CliRun | undefined;
  afterAll(async () => {
    if (run !== undefined && run.child.exitCode === null) run.child.kill('SIGKILL');
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => upstream?.close(() => resolve()));
  });

  it('exits 0 within 5 s of SIGTERM with --upstream-timeout-ms 20000, and logs nothing after "stopped"', async () => {
    upstream = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const port = (upstream.address() as { port: number }).port;
    run = runCli([
      'serve',
      '--listen', '127.0.0.1:0',
      '--upstream', `http://127.0.0.1:${port}`,
      '--upstream-timeout-ms', '20000',
      '--upstream-attempts', '3',
      '--log-level', 'debug',
    ]);
    const url = String((await run.event('started')).listen);
    const token = await (await fetch(`${url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } })).text();
    // A client waiting on the cold fetch, which waits on the silent upstream.
    const waiting = fetch(`${url}/latest/meta-data/iam/security-credentials/`, { headers: { 'x-aws-ec2-metadata-token': token } })
      .then((r) => r.status)
      .catch(() => 'broken');
    // Wait until the proxy holds that request: it counts it as a cache lookup when it joins the
    // refresh cycle, which by then waits on the silent upstream.
    const joined = async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return ['miss', 'coalesced'].some((result) => sampleValue(text, 'imds_proxy_cache_requests_total', { cache: 'credentials', result }) > 0);
    };
    for (let i = 0; i < 250 && !(await joined()); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await joined()).toBe(true);
    expect(sockets.size).toBeGreaterThan(0);

    const sigtermAt = Date.now();
    run.child.kill('SIGTERM');
    const code = await run.exited;
    const stopMs = Date.now() - sigtermAt;
    expect(code).toBe(0);
    expect(stopMs).toBeLessThan(5_000);
    // The waiting client got an answer (a 503: no credentials), not a reset.
    expect(await waiting).toBe(503);
    const events = run
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => (JSON.parse(l) as { event?: string }).event);
    expect(events.at(-1)).toBe('stopped');
    const afterStopping = events.slice(events.indexOf('stopping'));
    expect(afterStopping.filter((e) => e === 'upstream_degraded' || e === 'credential_refresh_failed')).toEqual([]);
    expect(run.stderr()).toBe('');
  }, 20_000);
});
