import { spawnBareServer, spawnProxy } from './processes.js';

export interface IdleMemory {
  /** Medians over the runs, MiB resident. */
  proxy_mib: number;
  bare_mib: number;
  proxy_runs_mib: number[];
  bare_runs_mib: number[];
}

const SETTLE_MS = 1000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/**
 * Resident memory of a fresh proxy that has cached credentials and issued one token, beside
 * a fresh bare node:http server that has answered one request: the floor any node server
 * pays. A few fresh processes each, in turn, since one start can land a few MiB either way.
 */
export async function idleMemory(upstream: string, runs: number): Promise<IdleMemory> {
  const proxyRuns: number[] = [];
  const bareRuns: number[] = [];
  for (let i = 0; i < runs; i++) {
    const proxy = await spawnProxy(upstream, []);
    try {
      await (await fetch(`${proxy.url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } })).text();
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      proxyRuns.push(await proxy.rssMiB());
    } finally {
      await proxy.stop();
    }
    const bare = await spawnBareServer('/dev/null');
    try {
      await (await fetch(bare.url)).text();
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      bareRuns.push(await bare.rssMiB());
    } finally {
      await bare.stop();
    }
  }
  return { proxy_mib: median(proxyRuns), bare_mib: median(bareRuns), proxy_runs_mib: proxyRuns, bare_runs_mib: bareRuns };
}
