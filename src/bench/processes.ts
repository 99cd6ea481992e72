import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { spawnServe } from '../child/serveProcess.js';

const DIST = fileURLToPath(new URL('../', import.meta.url));

export interface ChildServer {
  url: string;
  pid: number;
  /** Resident set size now, in MiB, from /proc. */
  rssMiB(): Promise<number>;
  stop(): Promise<void>;
}

// Servers this run started; none outlives it, whatever ends it: a normal exit or a signal
// here, and SIGKILL through the children's own watch on their parent (src/child/parentWatch.ts).
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}, stopping its servers\n`);
    process.exit(code);
  });
}

function wrap(child: ChildProcess, url: string): ChildServer {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    url,
    pid: child.pid ?? -1,
    async rssMiB() {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
      return Math.round((kb / 1024) * 10) / 10;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The proxy as users run it, `imds-cache-proxy serve`, in its own process. */
export async function spawnProxy(upstream: string, extraArgs: string[] = [], waitFor: 'started' | 'ready' = 'ready'): Promise<ChildServer> {
  const proxy = await spawnServe(upstream, extraArgs, waitFor);
  return wrap(track(proxy.child), proxy.url);
}

/** A bare node:http server answering `bodyFile`'s bytes (and with `role`, a token and the role list too). */
export async function spawnBareServer(bodyFile: string, role?: string): Promise<ChildServer> {
  const args = [`${DIST}bench/bareServer.js`, bodyFile, ...(role !== undefined ? [role] : [])];
  const child = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] }));
  const port = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  return wrap(child, `http://127.0.0.1:${port.trim()}`);
}

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
