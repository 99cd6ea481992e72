import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEMO_PRESETS, runDemoScenario } from '../demo.js';
import { runLoad } from '../loadtest/runLoad.js';
import { formatTable } from '../loadtest/report.js';
import { startSimulator } from '../simulator/simulator.js';
import { cannon, type CannonResult } from './autocannon.js';
import { machineInfo } from './machine.js';
import { spawnBareServer, spawnProxy, type ChildServer } from './processes.js';

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
  connections: number;
  floodRequests: number;
  stampedeClients: number;
  freshSeconds: number;
}

const FULL: Settings = { hitSeconds: 5, hitRounds: 2, connections: 50, floodRequests: 1_000_000, stampedeClients: 5_000, freshSeconds: 8 };
const QUICK: Settings = { hitSeconds: 2, hitRounds: 1, connections: 50, floodRequests: 100_000, stampedeClients: 1_000, freshSeconds: 3 };

async function token(proxyUrl: string): Promise<string> {
  const res = await fetch(`${proxyUrl}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' } });
  return res.text();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** 1. The hit path against a bare node:http server answering the same bytes, A B A B. */
async function hitPath(s: Settings, upstream: string, metrics: 'on' | 'off') {
  const proxy = await spawnProxy(upstream, ['--metrics', metrics]);
  const dir = await mkdtemp(join(tmpdir(), 'imds-bench-'));
  try {
    const t = await token(proxy.url);
    const body = await (await fetch(`${proxy.url}${CREDS_PATH}`, { headers: { 'x-aws-ec2-metadata-token': t } })).text();
    await writeFile(join(dir, 'body'), body);
    const bare = await spawnBareServer(join(dir, 'body'));
    try {
      const proxyRuns: CannonResult[] = [];
      const bareRuns: CannonResult[] = [];
      // Warm both up (JIT), then alternate so drift on the machine hits both alike.
      await cannon({ url: `${proxy.url}${CREDS_PATH}`, headers: { 'x-aws-ec2-metadata-token': t }, connections: s.connections, seconds: 1 });
      await cannon({ url: bare.url, connections: s.connections, seconds: 1 });
      for (let round = 0; round < s.hitRounds; round++) {
        proxyRuns.push(await cannon({ url: `${proxy.url}${CREDS_PATH}`, headers: { 'x-aws-ec2-metadata-token': t }, connections: s.connections, seconds: s.hitSeconds }));
        bareRuns.push(await cannon({ url: bare.url, connections: s.connections, seconds: s.hitSeconds }));
      }
      const proxyRps = median(proxyRuns.map((r) => r.requestsPerSecond));
      const bareRps = median(bareRuns.map((r) => r.requestsPerSecond));
      return {
        metrics,
        proxy_rps: proxyRps,
        bare_rps: bareRps,
        ratio: Math.round((proxyRps / bareRps) * 100) / 100,
        proxy_p50_ms: median(proxyRuns.map((r) => r.p50Ms)),
        proxy_p99_ms: median(proxyRuns.map((r) => r.p99Ms)),
        bare_p50_ms: median(bareRuns.map((r) => r.p50Ms)),
        bare_p99_ms: median(bareRuns.map((r) => r.p99Ms)),
        errors: [...proxyRuns, ...bareRuns].reduce((a, r) => a + r.errors + r.non2xx, 0),
      };
    } finally {
      await bare.stop();
    }
  } finally {
    await proxy.stop();
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
  const proxy: ChildServer = await spawnProxy(upstream, []);
  try {
    const t = await token(proxy.url);
    await new Promise((r) => setTimeout(r, 1000));
    const idle = await proxy.rssMiB();
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
      idle_mib: idle,
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

async function main() {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, 'hit-only': { type: 'boolean' } }, strict: true });
  const s = values.quick ? QUICK : FULL;
  const log = (text: string) => process.stderr.write(`${text}\n`);
  const machine = machineInfo();
  log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}`);

  const sim = await startSimulator({ port: 0, roles: [ROLE] });
  try {
    log('1/5 hit path: proxy vs bare node:http, metrics on and off ...');
    const hitOn = await hitPath(s, sim.url, 'on');
    const hitOff = await hitPath(s, sim.url, 'off');
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

    const results = { date: new Date().toISOString(), machine, settings: s, hit_path: [hitOn, hitOff], fresh_processes: fresh, stampede: herd, throttling: story, memory: mem };
    await writeFile('bench-results.json', `${JSON.stringify(results, null, 2)}\n`);

    const rows: (string | number)[][] = [
      ['hit path, proxy req/s (metrics on / off)', `${hitOn.proxy_rps} / ${hitOff.proxy_rps}`],
      ['hit path, bare node:http req/s', `${hitOn.bare_rps} / ${hitOff.bare_rps}`],
      ['hit path, ratio proxy/bare (goal >= 0.85)', `${hitOn.ratio} / ${hitOff.ratio}`],
      ['hit path, proxy p50 / p99 ms (goal p99 <= 5)', `${hitOn.proxy_p50_ms} / ${hitOn.proxy_p99_ms}`],
      ['hit path, bare p50 / p99 ms', `${hitOn.bare_p50_ms} / ${hitOn.bare_p99_ms}`],
      ['fresh-process credential fetches/s', fresh.fetches_per_s],
      ['fresh-process p50 / p99 ms, failed', `${fresh.p50_ms} / ${fresh.p99_ms}, ${fresh.failed}`],
      [`stampede: ${herd.clients} cold clients served`, herd.served],
      ['stampede: upstream credentials fetches', herd.upstream_credentials_fetches],
      ['stampede: last served after (ms)', herd.last_served_ms],
      ['throttled IMDS: failed direct / via proxy (%)', `${story.direct_failure_pct} / ${story.proxied_failure_pct}`],
      ['throttled IMDS: requests reaching IMDS direct / via proxy', `${story.imds_requests_direct} / ${story.imds_requests_proxied}`],
      ['memory idle (MiB RSS)', mem.idle_mib],
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
