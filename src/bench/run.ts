import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { firstLine } from '../config/usageError.js';
import { DEMO_PRESETS, runDemoScenario } from '../commands/demo.js';
import { runLoad } from '../loadtest/runLoad.js';
import { formatTable } from '../loadtest/report.js';
import { startSimulator } from '../simulator/simulator.js';
import { cannon, type CannonResult } from './autocannon.js';
import { freshProcessRows, freshProcessVsBare } from './freshProcessWrk.js';
import { machineInfo } from '../runtime/machine.js';
import { spawnBareServer, spawnProxy, type ChildServer } from './processes.js';
import { startup, startupRows } from './startup.js';
import { idleMemory } from './idleMemory.js';

/**
 * `npm run bench`: the product's performance promises, measured side by side in one run,
 * on loopback only, every phase bounded in requests and time. Prints a table and writes
 * bench-results.json.
 */

const ROLE = 'bench-role';
const CREDS_PATH = `/latest/meta-data/iam/security-credentials/${ROLE}`;

interface Settings {
  hitSeconds: number;
  hitRounds: number;
  /** wrk rounds (each server once a round) and seconds a run. */
  wrkRounds: number;
  wrkSeconds: number;
  connections: number;
  floodRequests: number;
  stampedeClients: number;
  freshSeconds: number;
}

const FULL: Settings = { hitSeconds: 5, hitRounds: 3, wrkRounds: 8, wrkSeconds: 2, connections: 50, floodRequests: 1_000_000, stampedeClients: 5_000, freshSeconds: 8 };
const QUICK: Settings = { hitSeconds: 2, hitRounds: 1, wrkRounds: 3, wrkSeconds: 2, connections: 50, floodRequests: 100_000, stampedeClients: 1_000, freshSeconds: 3 };

async function token(proxyUrl: string): Promise<string> {
  const res = await fetch(`${proxyUrl}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' } });
  return res.text();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/**
 * 1. The hit path, with metrics on and off, against a bare node:http server answering the
 * same bytes. All three run at once and take turns, on / bare / off per round, so drift on
 * the machine (other load, CPU boost) hits each alike; the figure is the median per target.
 */
async function hitPath(s: Settings, upstream: string) {
  const proxies = {
    on: await spawnProxy(upstream, ['--metrics', 'on']),
    off: await spawnProxy(upstream, ['--metrics', 'off']),
  };
  const dir = await mkdtemp(join(tmpdir(), 'imds-bench-'));
  try {
    const tokens = { on: await token(proxies.on.url), off: await token(proxies.off.url) };
    const body = await (await fetch(`${proxies.on.url}${CREDS_PATH}`, { headers: { 'x-aws-ec2-metadata-token': tokens.on } })).text();
    await writeFile(join(dir, 'body'), body);
    const bare = await spawnBareServer(join(dir, 'body'));
    try {
      const load = (target: 'on' | 'off' | 'bare', seconds: number) =>
        target === 'bare'
          ? cannon({ url: bare.url, connections: s.connections, seconds })
          : cannon({ url: `${proxies[target].url}${CREDS_PATH}`, headers: { 'x-aws-ec2-metadata-token': tokens[target] }, connections: s.connections, seconds });
      const runs: Record<'on' | 'off' | 'bare', CannonResult[]> = { on: [], off: [], bare: [] };
      // Warm all three up (JIT) first.
      for (const target of ['on', 'bare', 'off'] as const) await load(target, 1);
      for (let round = 0; round < s.hitRounds; round++) {
        for (const target of ['on', 'bare', 'off'] as const) runs[target].push(await load(target, s.hitSeconds));
      }
      const figures = (target: 'on' | 'off' | 'bare') => ({
        rps: median(runs[target].map((r) => r.requestsPerSecond)),
        p50_ms: median(runs[target].map((r) => r.p50Ms)),
        p99_ms: median(runs[target].map((r) => r.p99Ms)),
        errors: runs[target].reduce((a, r) => a + r.errors + r.non2xx, 0),
      });
      const bareFigures = figures('bare');
      const vsBare = (metrics: 'on' | 'off') => {
        const proxy = figures(metrics);
        return {
          metrics,
          proxy_rps: proxy.rps,
          bare_rps: bareFigures.rps,
          ratio: Math.round((proxy.rps / bareFigures.rps) * 100) / 100,
          proxy_p50_ms: proxy.p50_ms,
          proxy_p99_ms: proxy.p99_ms,
          bare_p50_ms: bareFigures.p50_ms,
          bare_p99_ms: bareFigures.p99_ms,
          errors: proxy.errors + bareFigures.errors,
        };
      };
      return [vsBare('on'), vsBare('off')] as const;
    } finally {
      await bare.stop();
    }
  } finally {
    await Promise.all([proxies.on.stop(), proxies.off.stop()]);
    await rm(dir, { recursive: true, force: true });
  }
}

/** 2. Fresh-process clients (new connection, token, list, credentials) on the hit path. */
async function freshProcesses(s: Settings, upstream: string) {
  const proxy = await spawnProxy(upstream, []);
  try {
    const load = await runLoad({ target: proxy.url, clients: 50, durationSeconds: s.freshSeconds, timeoutMs: 1000 });
    return { fetches_per_s: load.rate_per_s, completed: load.completed, failed: load.failed, p50_ms: load.p50_ms, p99_ms: load.p99_ms };
  } finally {
    await proxy.stop();
  }
}

/** 3. Thousands of clients at a cold proxy at once: all served, one upstream fetch. */
async function stampede(s: Settings) {
  // IMDS answers slowly, so every client arrives while the first fetch is still in flight.
  const sim = await startSimulator({ port: 0, roles: [ROLE], faults: { latencyMs: 500 } });
  try {
    const proxy = await spawnProxy(sim.url, ['--upstream-timeout-ms', '3000'], 'started');
    try {
      const t = await token(proxy.url);
      const started = performance.now();
      const statuses = await Promise.all(
        Array.from({ length: s.stampedeClients }, async () => {
          try {
            const res = await fetch(`${proxy.url}${CREDS_PATH}`, { headers: { 'x-aws-ec2-metadata-token': t }, signal: AbortSignal.timeout(30_000) });
            await res.arrayBuffer();
            return res.status;
          } catch {
            return 0;
          }
        }),
      );
      const lastServedMs = Math.round(performance.now() - started);
      return {
        clients: s.stampedeClients,
        served: statuses.filter((x) => x === 200).length,
        upstream_credentials_fetches: sim.counters().byRoute.credentials?.ok ?? 0,
        last_served_ms: lastServedMs,
      };
    } finally {
      await proxy.stop();
    }
  } finally {
    await sim.close();
  }
}

/** 4. The demo's throttling story at a larger scale. */
async function throttling() {
  const result = await runDemoScenario({ ...DEMO_PRESETS.standard, clients: 300, throttleRps: 100, durationSeconds: 10 });
  const rate = (r: { load: { failed: number; fetches: number } }) => Math.round((1000 * r.load.failed) / Math.max(1, r.load.fetches)) / 10;
  return {
    direct_failure_pct: rate(result.direct),
    direct_completed: result.direct.load.completed,
    proxied_failure_pct: rate(result.proxied),
    proxied_completed: result.proxied.load.completed,
    imds_requests_direct: result.direct.imds.total,
    imds_requests_proxied: result.proxied.imds.total,
  };
}

/** 5. Resident memory: idle, through a token flood, through a hit-path flood. */
async function memory(s: Settings, upstream: string) {
  const idle = await idleMemory(upstream, 3);
  const proxy: ChildServer = await spawnProxy(upstream, []);
  try {
    const t = await token(proxy.url);
    // Any HTTP load grows V8's heap and node's buffers to a working size once; measure the
    // floods from there, so what they add is theirs.
    await cannon({ url: `${proxy.url}${CREDS_PATH}`, headers: { 'x-aws-ec2-metadata-token': t }, connections: 50, amount: s.floodRequests / 10 });
    const warm = await proxy.rssMiB();
    const checkpoints: number[] = [];
    const steps = 4;
    for (let i = 0; i < steps; i++) {
      await cannon({ url: `${proxy.url}/latest/api/token`, method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' }, connections: 50, amount: s.floodRequests / steps });
      checkpoints.push(await proxy.rssMiB());
    }
    const earlyTokenStillWorks =
      (await fetch(`${proxy.url}${CREDS_PATH}`, { headers: { 'x-aws-ec2-metadata-token': t } })).status === 200;
    const hitCheckpoints: number[] = [];
    for (let i = 0; i < steps; i++) {
      await cannon({ url: `${proxy.url}${CREDS_PATH}`, headers: { 'x-aws-ec2-metadata-token': t }, connections: 50, amount: s.floodRequests / steps });
      hitCheckpoints.push(await proxy.rssMiB());
    }
    return {
      idle_mib: idle.proxy_mib,
      idle_bare_mib: idle.bare_mib,
      idle_runs: idle,
      warm_mib: warm,
      warm_up_requests: s.floodRequests / 10,
      after_token_flood_mib: checkpoints.at(-1),
      token_flood_checkpoints_mib: checkpoints,
      early_token_valid_after_flood: earlyTokenStillWorks,
      after_hit_flood_mib: hitCheckpoints.at(-1),
      hit_flood_checkpoints_mib: hitCheckpoints,
      flood_requests: s.floodRequests,
    };
  } finally {
    await proxy.stop();
  }
}

const HELP = `Usage: node dist/bench/run.js [--quick] [--hit-only] [--wrk-only] [--startup-only]   (npm run bench)

Measures the proxy's performance promises on loopback and prints a table; writes
bench-results.json. About 6 minutes; --quick about 2; --hit-only only the hit path (JSON);
--wrk-only only the wrk measurement; --startup-only only start-up time and idle memory.
`;

/** The options, or the exit code when there is nothing to run (help, or a bad flag). */
function options(): { quick?: boolean; 'hit-only'?: boolean; 'wrk-only'?: boolean; 'startup-only'?: boolean } | number {
  try {
    const { values } = parseArgs({
      options: {
        quick: { type: 'boolean' },
        'hit-only': { type: 'boolean' },
        'wrk-only': { type: 'boolean' },
        'startup-only': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (!values.help) return values;
    process.stdout.write(HELP);
    return 0;
  } catch (error) {
    process.stderr.write(`bench: ${firstLine(error)} (see --help)\n`);
    return 2;
  }
}

async function main() {
  const values = options();
  if (typeof values === 'number') {
    process.exitCode = values;
    return;
  }
  const s = values.quick ? QUICK : FULL;
  const log = (text: string) => process.stderr.write(`${text}\n`);
  const machine = machineInfo();
  log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}`);

  const sim = await startSimulator({ port: 0, roles: [ROLE] });
  try {
    const onlyLoad = values['wrk-only'] || values['hit-only'];
    if (!onlyLoad) log('start-up: node, a minimal node:http client, --version, credential-process ...');
    const started = onlyLoad ? [] : await startup(sim.url, values.quick ? 10 : 30);
    if (values['startup-only']) {
      process.stdout.write(`${formatTable(['', 'result'], startupRows(started))}\n`);
      return;
    }
    log('0/5 fresh-process pattern and keep-alive GET with wrk: proxy vs bare node:http, taking turns ...');
    const wrk = await freshProcessVsBare({ rounds: s.wrkRounds, seconds: s.wrkSeconds, processes: 50, connections: 50 }, sim.url, ROLE);
    if (values['wrk-only']) {
      process.stdout.write(`${JSON.stringify(wrk, null, 2)}\n\n${formatTable(['', 'result'], freshProcessRows(wrk))}\n`);
      return;
    }
    log('1/5 hit path: proxy vs bare node:http, metrics on and off ...');
    const [hitOn, hitOff] = await hitPath(s, sim.url);
    if (values['hit-only']) {
      process.stdout.write(`${JSON.stringify({ hit_path: [hitOn, hitOff] }, null, 2)}\n`);
      return;
    }
    log('2/5 fresh-process clients ...');
    const fresh = await freshProcesses(s, sim.url);
    log('3/5 stampede at a cold proxy ...');
    const herd = await stampede(s);
    log('4/5 throttling story ...');
    const story = await throttling();
    log(`5/5 memory through ${s.floodRequests} token requests and ${s.floodRequests} hits ...`);
    const mem = await memory(s, sim.url);

    const results = { date: new Date().toISOString(), machine, settings: s, startup: started, hit_path: [hitOn, hitOff], wrk, fresh_processes: fresh, stampede: herd, throttling: story, memory: mem };
    await writeFile('bench-results.json', `${JSON.stringify(results, null, 2)}\n`);

    const rows: (string | number)[][] = [
      ...startupRows(started),
      ...freshProcessRows(wrk),
      ['hit path, proxy req/s (metrics on / off)', `${hitOn.proxy_rps} / ${hitOff.proxy_rps}`],
      ['hit path, bare node:http req/s', hitOn.bare_rps],
      ['hit path, ratio proxy/bare (goal >= 0.85)', `${hitOn.ratio} / ${hitOff.ratio}`],
      ['hit path, proxy p50 / p99 ms, metrics on (goal p99 <= 5)', `${hitOn.proxy_p50_ms} / ${hitOn.proxy_p99_ms}`],
      ['hit path, bare p50 / p99 ms', `${hitOn.bare_p50_ms} / ${hitOn.bare_p99_ms}`],
      ['fresh-process credential fetches/s', fresh.fetches_per_s],
      ['fresh-process p50 / p99 ms, failed', `${fresh.p50_ms} / ${fresh.p99_ms}, ${fresh.failed}`],
      [`stampede: ${herd.clients} cold clients served`, herd.served],
      ['stampede: upstream credentials fetches', herd.upstream_credentials_fetches],
      ['stampede: last served after (ms)', herd.last_served_ms],
      ['throttled IMDS: failed direct / via proxy (%)', `${story.direct_failure_pct} / ${story.proxied_failure_pct}`],
      ['throttled IMDS: requests reaching IMDS direct / via proxy', `${story.imds_requests_direct} / ${story.imds_requests_proxied}`],
      ['memory idle, proxy / bare node:http (MiB RSS, median of 3 fresh processes)', `${mem.idle_mib} / ${mem.idle_bare_mib}`],
      ['memory after a warm-up of hits (MiB RSS)', mem.warm_mib],
      [`memory after ${s.floodRequests} token requests`, `${mem.after_token_flood_mib} (${mem.token_flood_checkpoints_mib.join(' → ')})`],
      ['token issued before the flood still valid', String(mem.early_token_valid_after_flood)],
      [`memory after ${s.floodRequests} hits`, `${mem.after_hit_flood_mib} (${mem.hit_flood_checkpoints_mib.join(' → ')})`],
    ];
    process.stdout.write(`\n${machine.cpu}, ${machine.cores} cores, Node ${machine.node}\n\n${formatTable(['', 'result'], rows)}\n\nwritten: bench-results.json\n`);
  } finally {
    await sim.close();
  }
}

await main();
