import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { runCli, type CliRun } from '../support/cliProcess.js';

/**
 * The lifecycle promise of the issue: SIGTERM under load resets no client request. Requests
 * in flight finish (one of them waiting on a slow upstream), keep-alive clients hammering
 * cached credentials get complete answers until the proxy stops, and whatever they send
 * after that is refused at connect, never reset mid-request. Then the process exits 0.
 */

type Outcome =
  | { kind: 'answered'; status: number; complete: boolean; at: number }
  | { kind: 'refused'; at: number }
  | { kind: 'broken'; code: string; at: number };

const ROLE = 'lifecycle-role';

/** One GET; the outcome says whether the client got a whole HTTP answer, a refusal, or neither. */
function get(agent: Agent, port: number, path: string, token: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path, agent, headers: { 'x-aws-ec2-metadata-token': token }, timeout: 10_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          const expected = Number(res.headers['content-length']);
          resolve({ kind: 'answered', status: res.statusCode ?? 0, complete: res.complete && body.length === expected, at: Date.now() });
        });
        res.on('error', (e: NodeJS.ErrnoException) => resolve({ kind: 'broken', code: e.code ?? e.message, at: Date.now() }));
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) =>
      resolve(e.code === 'ECONNREFUSED' ? { kind: 'refused', at: Date.now() } : { kind: 'broken', code: e.code ?? e.message, at: Date.now() }),
    );
    req.end();
  });
}

describe('serve: SIGTERM under load', () => {
  let sim: RunningSimulator;
  let run: CliRun | undefined;

  beforeAll(async () => {
    sim = await startSimulator({ port: 0, roles: [ROLE] });
  });
  afterAll(async () => {
    if (run !== undefined && run.child.exitCode === null) run.child.kill('SIGKILL');
    await sim?.close();
  });

  it('answers every request in flight, refuses (never resets) later ones, and exits 0 within 5 s', async () => {
    run = runCli([
      'serve',
      '--listen', '127.0.0.1:0',
      '--upstream', sim.url,
      '--upstream-timeout-ms', '8000',
      '--upstream-attempts', '1',
      '--log-level', 'info',
    ]);
    const url = String((await run.event('started')).listen);
    await run.event('ready');
    const port = Number(new URL(url).port);
    const tokenRes = await fetch(`${url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '300' } });
    expect(tokenRes.status).toBe(200);
    const token = await tokenRes.text();
    // One forwarded request first, so the proxy already holds an upstream session token and
    // the cold request below waits on exactly one slow upstream answer.
    const warm = await get(new Agent(), port, '/latest/meta-data/ami-id', token);
    expect(warm).toMatchObject({ kind: 'answered', status: 200, complete: true });

    sim.setFaults({ latencyMs: 2_000 });
    const coldAgent = new Agent({ keepAlive: true });
    const cold = get(coldAgent, port, '/latest/meta-data/instance-id', token);

    // Keep-alive clients hammering the cached credentials, each loop bounded in count and time;
    // half of them pause between requests, so some connections sit idle when SIGTERM comes.
    const LOOPS = 16;
    const MAX_PER_LOOP = 20_000;
    const loopDeadline = Date.now() + 15_000;
    const agent = new Agent({ keepAlive: true, maxSockets: LOOPS });
    const outcomes: Outcome[] = [];
    let stop = false;
    const loops = Array.from({ length: LOOPS }, async (_, n) => {
      for (let i = 0; i < MAX_PER_LOOP && !stop && Date.now() < loopDeadline; i++) {
        const outcome = await get(agent, port, `/latest/meta-data/iam/security-credentials/${ROLE}`, token);
        outcomes.push(outcome);
        if (outcome.kind !== 'answered') return;
        if (n % 2 === 1) await new Promise((r) => setTimeout(r, (i * 7) % 25));
      }
    });

    // SIGTERM once the hammering is well under way and the cold request is waiting upstream.
    for (let i = 0; i < 200 && outcomes.length < 500; i++) await new Promise((r) => setTimeout(r, 10));
    expect(outcomes.length).toBeGreaterThanOrEqual(500);
    const sigtermAt = Date.now();
    run.child.kill('SIGTERM');
    const code = await run.exited;
    const exitedAt = Date.now();
    // Clients keep going a little after the exit: by then every attempt must be a refusal.
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await Promise.all(loops);
    const coldOutcome = await cold;
    agent.destroy();
    coldAgent.destroy();

    const broken = outcomes.filter((o) => o.kind === 'broken');
    const incomplete = outcomes.filter((o) => o.kind === 'answered' && (!o.complete || o.status !== 200));
    const answeredAfterSigterm = outcomes.filter((o) => o.kind === 'answered' && o.at >= sigtermAt).length;
    const refused = outcomes.filter((o) => o.kind === 'refused');
    const summary = { total: outcomes.length, broken: broken.length, brokenCodes: [...new Set(broken.map((o) => (o as { code: string }).code))], incomplete: incomplete.length, answeredAfterSigterm, refused: refused.length };

    expect(summary).toMatchObject({ broken: 0, incomplete: 0 });
    // Refusals only once the listener had closed, i.e. after SIGTERM.
    expect(refused.every((o) => o.at >= sigtermAt)).toBe(true);
    // The cold request was in flight at SIGTERM (its answer came after it) and still finished.
    expect(coldOutcome).toMatchObject({ kind: 'answered', status: 200, complete: true });
    expect(coldOutcome.at).toBeGreaterThan(sigtermAt);
    expect(code).toBe(0);
    expect(exitedAt - sigtermAt).toBeLessThan(5_000);
    expect(run.stdout()).toContain('"event":"stopped"');
    expect(run.stderr()).toBe('');
  }, 30_000);
});
