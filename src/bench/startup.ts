import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { spawnProxy } from './processes.js';

const DIST = fileURLToPath(new URL('../', import.meta.url));

export interface StartupFigures {
  name: string;
  /** The children's environment: PATH alone, or as this host sets it for node (see startup()). */
  environment: string;
  runs: number;
  min_ms: number;
  median_ms: number;
  /** This command's median over `node -e 0`'s (goal <= 1.5 for the CLI's own rows). */
  ratio_median: number;
  ratio_min: number;
  /** CPU time (user + system, all threads) per run, mean; load on the machine hardly moves it. */
  cpu_ms: number;
  ratio_cpu: number;
}

/** CPU time of this process's exited children so far, in ms (10 ms ticks, from /proc). */
function childrenCpuMs(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

/**
 * Wall time and CPU time of one process, spawn to exit, in ms; a failed run is an error,
 * never a figure. Runs are one at a time, so the children's CPU counter moves by this one.
 */
function timeProcess(args: string[], env: NodeJS.ProcessEnv): Promise<{ wall: number; cpu: number }> {
  return new Promise((resolve, reject) => {
    const cpuBefore = childrenCpuMs();
    const started = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const wall = performance.now() - started;
      if (code === 0) resolve({ wall, cpu: childrenCpuMs() - cpuBefore });
      else reject(new Error(`node ${args.join(' ')} exited ${code}: ${stderr.trim().split('\n')[0] ?? ''}`));
    });
  });
}

/**
 * How long the CLI takes to start and finish, against a bare `node -e 0` and the least a
 * node:http script needs to fetch credentials from `proxyUrl`, each run `runs` times in
 * turn (so machine drift hits them alike). The AWS CLI runs credential-process on every
 * invocation, so this is time every `aws` command pays.
 */
async function startupTimes(proxyUrl: string, runs: number, environment: string, env: NodeJS.ProcessEnv): Promise<StartupFigures[]> {
  const cli = `${DIST}cli.js`;
  const targets: [string, string[]][] = [
    ['node -e 0', ['-e', '0']],
    ['minimal node:http client script', [`${DIST}bench/minimalClient.js`, proxyUrl]],
    ['imds-cache-proxy --version', [cli, '--version']],
    ['imds-cache-proxy credential-process', [cli, 'credential-process', '--endpoint', proxyUrl]],
  ];
  const times = targets.map((): number[] => []);
  const cpu = targets.map(() => 0);
  for (const [, args] of targets) await timeProcess(args, env); // warm the page cache first
  for (let round = 0; round < runs; round++) {
    for (const [i, [, args]] of targets.entries()) {
      const run = await timeProcess(args, env);
      times[i]!.push(run.wall);
      cpu[i]! += run.cpu / runs;
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const round1 = (x: number) => Math.round(x * 10) / 10;
  const base = { min: Math.min(...times[0]!), median: median(times[0]!) };
  return targets.map(([name], i) => {
    const t = times[i]!;
    return {
      name,
      environment,
      runs,
      min_ms: round1(Math.min(...t)),
      median_ms: round1(median(t)),
      ratio_median: Math.round((median(t) / base.median) * 100) / 100,
      ratio_min: Math.round((Math.min(...t) / base.min) * 100) / 100,
      cpu_ms: round1(cpu[i]!),
      ratio_cpu: Math.round((cpu[i]! / cpu[0]!) * 100) / 100,
    };
  });
}

/**
 * The start-up phase of `npm run bench`: a proxy with cached credentials, then the runs with
 * PATH alone and, where this host sets it, NODE_EXTRA_CA_CERTS too: node reads that bundle at
 * every start (tens of ms), which moves every ratio, so both are shown.
 */
export async function startup(upstream: string, runs: number): Promise<StartupFigures[]> {
  const proxy = await spawnProxy(upstream, []);
  const path = { PATH: process.env.PATH ?? '' };
  const extraCa = process.env.NODE_EXTRA_CA_CERTS;
  try {
    const clean = await startupTimes(proxy.url, runs, 'PATH only', path);
    if (extraCa === undefined || extraCa === '') return clean;
    return [...clean, ...(await startupTimes(proxy.url, runs, 'with NODE_EXTRA_CA_CERTS', { ...path, NODE_EXTRA_CA_CERTS: extraCa }))];
  } finally {
    await proxy.stop();
  }
}

/** The bench table's rows for these figures. */
export function startupRows(figures: StartupFigures[]): string[][] {
  return figures.map((f, i) => {
    // Each environment's rows start with its own node -e 0, the yardstick of the rows after it.
    const k = i - figures.findIndex((g) => g.environment === f.environment);
    return [
      k === 0
        ? `start-up (${f.environment}), ${f.name}: wall min / median ms, CPU ms (${f.runs} runs)`
        : `start-up (${f.environment}), ${f.name}: wall min / median, CPU, each x node -e 0${k >= 2 ? ' (goal <= 1.5)' : ''}`,
      k === 0 ? `${f.min_ms} / ${f.median_ms}, ${f.cpu_ms}` : `${f.ratio_min} / ${f.ratio_median}, ${f.ratio_cpu} (${f.min_ms} / ${f.median_ms}, ${f.cpu_ms} ms)`,
    ];
  });
}
