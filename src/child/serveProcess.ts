import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** `imds-cache-proxy serve` in a process of its own, as users run it. */
export interface ServeProcess {
  /** e.g. http://127.0.0.1:PORT, from the `started` event. */
  url: string;
  child: ChildProcess;
  /** SIGTERM, then resolves once the process has exited. */
  close(): Promise<void>;
}

const START_TIMEOUT_MS = 15_000;

/**
 * Starts the built CLI's `serve` on a free loopback port against `upstream`, and resolves
 * once it has said `started` (listening) or `ready` (credentials cached). The demo and the
 * benchmark run the proxy this way so that it does not share an event loop with the load.
 */
export async function spawnServe(
  upstream: string,
  extraArgs: readonly string[] = [],
  waitFor: 'started' | 'ready' = 'ready',
): Promise<ServeProcess> {
  // src/ and dist/ sit side by side, so this names the built CLI from either (tests run src/).
  const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build first (npm run build)`);
  // No inherited IMDS_PROXY_* settings: a cache file or metrics address meant for the host's
  // real proxy would mix these credentials into it, or collide with it.
  const child = spawn(
    process.execPath,
    [cli, 'serve', '--listen', '127.0.0.1:0', '--upstream', upstream, '--log-level', 'info', ...extraArgs],
    // The IPC channel is how the child knows its parent is gone (src/child/parentWatch.ts).
    { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  try {
    const url = await whenServing(child.stdout!, exited, waitFor);
    return { url, child, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The address from serve's `started` event, once the awaited event has come. */
function whenServing(stdout: NodeJS.ReadableStream, exited: Promise<void>, waitFor: 'started' | 'ready'): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let listen: string | undefined;
    const timer = setTimeout(() => reject(new Error(`the proxy was not ${waitFor} within 15 s`)), START_TIMEOUT_MS);
    createInterface({ input: stdout }).on('line', (line) => {
      let event: { event?: string; listen?: string } = {};
      try {
        event = JSON.parse(line) as typeof event;
      } catch {
        return;
      }
      if (event.event === 'started') listen = event.listen;
      if (listen !== undefined && (waitFor === 'started' || event.event === 'ready')) {
        clearTimeout(timer);
        resolve(listen);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the proxy exited before it was ${waitFor}`));
    });
  });
}
