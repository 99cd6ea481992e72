import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CREDENTIALS_PREFIX, TOKEN_PATH } from '../imds/protocol.js';
import { spawnBareServer, spawnProxy, type ChildServer } from './processes.js';

const run = promisify(execFile);

/**
 * The fresh-process pattern (new connection; PUT token, GET list, GET credentials, close) and the
 * keep-alive GET, proxy and bare node:http server in turns, measured with wrk (README, note 5).
 */

export const WRK = ['/usr/bin/wrk', '/usr/local/bin/wrk'].find((p) => existsSync(p));
export const WRK_MISSING = 'wrk not installed (apt-get install wrk); fresh-process rows skipped';

const LIST_PATH = `${CREDENTIALS_PREFIX}/`;

/**
 * One connection per wrk thread, so a thread's Lua state is its connection's: PUT, then the
 * list with the token just minted, then the credentials and close; wrk reconnects and the
 * sequence starts again. A sequence counts when its third answer is a 200.
 */
const FRESH_SCRIPT = `
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  role = args[1]
  step, token, sequences, failures = 1, "", 0, 0
  put = wrk.format("PUT", "${TOKEN_PATH}", { ["X-aws-ec2-metadata-token-ttl-seconds"] = "21600" })
end
function request()
  if step == 1 then return put end
  if step == 2 then return wrk.format("GET", "${LIST_PATH}", { ["X-aws-ec2-metadata-token"] = token }) end
  return wrk.format("GET", "${LIST_PATH}" .. role, { ["X-aws-ec2-metadata-token"] = token, ["Connection"] = "close" })
end
function response(status, headers, body)
  if status ~= 200 then failures = failures + 1; step = 1; return end
  if step == 1 then token = body; step = 2
  elseif step == 2 then step = 3
  else sequences = sequences + 1; step = 1 end
end
function done(summary, latency, requests)
  local s, f = 0, 0
  for _, t in ipairs(threads) do s = s + t:get("sequences"); f = f + t:get("failures") end
  io.write(string.format("WRK_JSON {\\"seconds\\":%f,\\"requests\\":%d,\\"sequences\\":%d,\\"failures\\":%d,\\"errors\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d}\\n",
    summary.duration / 1e6, summary.requests, s, f,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status,
    latency:percentile(50), latency:percentile(99)))
end
`;

/** The keep-alive credentials GET with one valid token. */
const KEEP_ALIVE_SCRIPT = `
function init(args)
  req = wrk.format("GET", "${LIST_PATH}" .. args[1], { ["X-aws-ec2-metadata-token"] = args[2] })
end
function request() return req end
function done(summary, latency, requests)
  io.write(string.format("WRK_JSON {\\"seconds\\":%f,\\"requests\\":%d,\\"sequences\\":0,\\"failures\\":0,\\"errors\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d}\\n",
    summary.duration / 1e6, summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status,
    latency:percentile(50), latency:percentile(99)))
end
`;

export interface WrkRun {
  /** Completed three-request sequences per second (fresh), or requests per second (keep-alive). */
  rate: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** CPU used, as a share of one core, over the run. */
  wrkCpu: number;
  serverCpu: number;
  /** Server CPU per sequence (fresh) or per request (keep-alive), in µs. */
  serverCpuUs: number;
}

/** utime + stime of a process, in seconds. */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  // After "pid (comm) ": state is field 0, utime 11, stime 12, in clock ticks (100 a second).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * On two or more cores the servers run on CPU 0 and wrk on CPU 1, so neither competes with the
 * other for a core and no run depends on where the scheduler happened to put them: unpinned,
 * the same server measured 0.6 to 1.3 times its own speed from one run to the next.
 */
export const TASKSET = ['/usr/bin/taskset', '/bin/taskset'].find((p) => existsSync(p));
const PINNED = TASKSET !== undefined && availableParallelism() >= 2;

async function pinToServerCore(pid: number): Promise<void> {
  // -a: every thread of the process (V8's helpers too), not only the main one.
  if (PINNED) await run(TASKSET!, ['-a', '-p', '-c', '0', String(pid)]);
}

async function wrkRun(
  target: ChildServer,
  script: string,
  args: string[],
  { threads, connections, seconds, fresh }: { threads: number; connections: number; seconds: number; fresh: boolean },
): Promise<WrkRun> {
  const serverBefore = await cpuSeconds(target.pid);
  const wrk = [WRK!, '-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--timeout', '2s', '-s', script, target.url, '--', ...args];
  // bash's `times` prints the CPU time its children (wrk) used: user, then system.
  const { stdout } = await run('bash', ['-c', '"$@"; times', 'bash', ...(PINNED ? [TASKSET!, '-c', '1'] : []), ...wrk], { timeout: (seconds + 30) * 1000 });
  const serverCpu = (await cpuSeconds(target.pid)) - serverBefore;
  const json = /^WRK_JSON (.*)$/m.exec(stdout)?.[1];
  if (json === undefined) throw new Error(`wrk printed no result: ${stdout.slice(0, 200)}`);
  const r = JSON.parse(json) as { seconds: number; requests: number; sequences: number; failures: number; errors: number; p50_us: number; p99_us: number };
  // The last line is the children's: "XmY.YYYs XmY.YYYs".
  const childTimes = stdout.trimEnd().split('\n').at(-1) ?? '';
  const wrkCpu = [...childTimes.matchAll(/(\d+)m([\d.]+)s/g)].reduce((sum, m) => sum + Number(m[1]) * 60 + Number(m[2]), 0);
  const units = fresh ? r.sequences : r.requests;
  return {
    rate: Math.round(units / r.seconds),
    p50Ms: r.p50_us / 1000,
    p99Ms: r.p99_us / 1000,
    errors: r.errors + r.failures,
    wrkCpu: Math.round((wrkCpu / r.seconds) * 100) / 100,
    serverCpu: Math.round((serverCpu / r.seconds) * 100) / 100,
    serverCpuUs: Math.round((serverCpu * 1e6) / Math.max(1, units)),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const round2 = (x: number) => Math.round(x * 100) / 100;

export interface FreshProcessSettings {
  /** Rounds; in each, every server is measured once, the order alternating from round to round. */
  rounds: number;
  seconds: number;
  /** Simultaneous fresh processes (connections, one wrk thread each). */
  processes: number;
  /** Keep-alive connections on one wrk thread. */
  connections: number;
}

export interface Comparison {
  proxy: Figures;
  bare: Figures;
  /**
   * Throughput, proxy / bare: the median over rounds of each round's ratio, the two runs of a
   * round being seconds apart, so that a machine whose speed drifts (a VM's neighbours) moves
   * both sides of every ratio alike.
   */
  ratio: number;
  /** The lowest and highest of the rounds' ratios. */
  ratio_range: [number, number];
  /** Server CPU per unit of work, bare / proxy, per round, median: what the ratio would be with both CPU-bound. */
  cpu_ratio: number;
}

interface Figures {
  rate: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  wrk_cpu: number;
  /** Cores the server used; 1 is CPU-bound on its pinned core, less is waiting on wrk. */
  server_cpu: number;
  /** Server CPU per sequence (fresh) or per request (keep-alive), in µs. */
  server_cpu_us: number;
}

function figures(runs: WrkRun[]): Figures {
  return {
    rate: median(runs.map((r) => r.rate)),
    p50_ms: median(runs.map((r) => r.p50Ms)),
    p99_ms: median(runs.map((r) => r.p99Ms)),
    errors: runs.reduce((a, r) => a + r.errors, 0),
    wrk_cpu: median(runs.map((r) => r.wrkCpu)),
    server_cpu: median(runs.map((r) => r.serverCpu)),
    server_cpu_us: median(runs.map((r) => r.serverCpuUs)),
  };
}

const compare = (proxy: WrkRun[], bare: WrkRun[]): Comparison => {
  const ratios = proxy.map((p, i) => p.rate / Math.max(1, bare[i]!.rate));
  const cpuRatios = proxy.map((p, i) => bare[i]!.serverCpuUs / Math.max(1, p.serverCpuUs));
  return {
    proxy: figures(proxy),
    bare: figures(bare),
    ratio: round2(median(ratios)),
    ratio_range: [round2(Math.min(...ratios)), round2(Math.max(...ratios))],
    cpu_ratio: round2(median(cpuRatios)),
  };
};

/**
 * Fresh processes and keep-alive GETs, proxy (metrics on; keep-alive also off) against bare
 * node:http, every one measured once a round, in an order that alternates. Undefined, with
 * the reason, without wrk.
 */
export async function freshProcessVsBare(
  s: FreshProcessSettings,
  upstream: string,
  role: string,
): Promise<{ pinned: boolean; fresh: Comparison; keepAlive: Comparison; keepAliveMetricsOff: Comparison } | { skipped: string }> {
  if (WRK === undefined) return { skipped: WRK_MISSING };
  const dir = await mkdtemp(join(tmpdir(), 'imds-wrk-'));
  const proxies = { on: await spawnProxy(upstream, ['--metrics', 'on']), off: await spawnProxy(upstream, ['--metrics', 'off']) };
  let bare: ChildServer | undefined;
  try {
    const token = async (proxy: ChildServer) =>
      (await fetch(`${proxy.url}${TOKEN_PATH}`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' } })).text();
    const tokens = { on: await token(proxies.on), off: await token(proxies.off) };
    const body = await (await fetch(`${proxies.on.url}${LIST_PATH}${role}`, { headers: { 'x-aws-ec2-metadata-token': tokens.on } })).text();
    await writeFile(join(dir, 'body'), body);
    await writeFile(join(dir, 'fresh.lua'), FRESH_SCRIPT);
    await writeFile(join(dir, 'keepalive.lua'), KEEP_ALIVE_SCRIPT);
    bare = await spawnBareServer(join(dir, 'body'), role);
    for (const server of [proxies.on, proxies.off, bare]) await pinToServerCore(server.pid);
    const fresh = (target: ChildServer, seconds: number) =>
      wrkRun(target, join(dir, 'fresh.lua'), [role], { threads: s.processes, connections: s.processes, seconds, fresh: true });
    const keepAlive = (target: ChildServer, t: string, seconds: number) =>
      wrkRun(target, join(dir, 'keepalive.lua'), [role, t], { threads: 1, connections: s.connections, seconds, fresh: false });

    // JIT warm-up for all three.
    for (const target of [proxies.on, bare]) await fresh(target, 1);
    await keepAlive(proxies.off, tokens.off, 1);
    const runs = { freshProxy: [] as WrkRun[], freshBare: [] as WrkRun[], kaOn: [] as WrkRun[], kaBare: [] as WrkRun[], kaOff: [] as WrkRun[] };
    const steps: (() => Promise<void>)[] = [
      async () => void runs.freshProxy.push(await fresh(proxies.on, s.seconds)),
      async () => void runs.freshBare.push(await fresh(bare!, s.seconds)),
      async () => void runs.kaOn.push(await keepAlive(proxies.on, tokens.on, s.seconds)),
      async () => void runs.kaBare.push(await keepAlive(bare!, tokens.on, s.seconds)),
      async () => void runs.kaOff.push(await keepAlive(proxies.off, tokens.off, s.seconds)),
    ];
    for (let round = 0; round < s.rounds; round++) {
      for (const step of round % 2 === 0 ? steps : [...steps].reverse()) await step();
    }
    return {
      pinned: PINNED,
      fresh: compare(runs.freshProxy, runs.freshBare),
      keepAlive: compare(runs.kaOn, runs.kaBare),
      keepAliveMetricsOff: compare(runs.kaOff, runs.kaBare),
    };
  } finally {
    await Promise.all([proxies.on.stop(), proxies.off.stop(), bare?.stop()]);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Table rows for the figures (or the reason they are missing). */
export function freshProcessRows(result: Awaited<ReturnType<typeof freshProcessVsBare>>): (string | number)[][] {
  if ('skipped' in result) return [['fresh-process pattern (wrk)', result.skipped]];
  const { fresh, keepAlive, keepAliveMetricsOff: off } = result;
  const range = (c: Comparison) => `${c.ratio} (rounds ${c.ratio_range[0]}-${c.ratio_range[1]})`;
  const cpu = (c: Comparison) =>
    `${c.proxy.server_cpu} / ${c.bare.server_cpu} cores, ${c.proxy.server_cpu_us} / ${c.bare.server_cpu_us} µs each (ratio ${c.cpu_ratio}); wrk ${c.proxy.wrk_cpu} / ${c.bare.wrk_cpu} cores`;
  return [
    ['fresh process (new conn: PUT token, GET list, GET creds + close) seq/s, proxy / bare', `${fresh.proxy.rate} / ${fresh.bare.rate}`],
    ['servers on CPU 0, wrk on CPU 1 (taskset)', result.pinned ? 'yes' : 'no: one core, or no taskset'],
    ['fresh process, ratio proxy/bare (goal >= 0.85)', range(fresh)],
    ['fresh process, p50 / p99 ms per request, proxy (bare)', `${fresh.proxy.p50_ms} / ${fresh.proxy.p99_ms} (${fresh.bare.p50_ms} / ${fresh.bare.p99_ms})`],
    ['fresh process, server CPU proxy / bare: cores, per sequence; wrk cores', cpu(fresh)],
    ['keep-alive creds GET (wrk) req/s, proxy metrics on / off / bare', `${keepAlive.proxy.rate} / ${off.proxy.rate} / ${keepAlive.bare.rate}`],
    ['keep-alive, ratio proxy/bare, metrics on / off (goal >= 0.85)', `${range(keepAlive)} / ${range(off)}`],
    ['keep-alive, p50 / p99 ms, proxy (bare)', `${keepAlive.proxy.p50_ms} / ${keepAlive.proxy.p99_ms} (${keepAlive.bare.p50_ms} / ${keepAlive.bare.p99_ms})`],
    ['keep-alive, server CPU proxy / bare: cores, per request; wrk cores', cpu(keepAlive)],
    ['keep-alive, metrics off: server CPU per request, µs (ratio to bare)', `${off.proxy.server_cpu_us} (${off.cpu_ratio})`],
    ['errors (all wrk rows)', fresh.proxy.errors + fresh.bare.errors + keepAlive.proxy.errors + keepAlive.bare.errors + off.proxy.errors],
  ];
}
