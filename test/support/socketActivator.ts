import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CLI } from './cliProcess.js';

/**
 * systemd's part in socket activation, played by a test: a listening socket that stays open
 * across the lifetimes of `serve` processes and that nothing accepts on between them, passed
 * to each as fd 3 with LISTEN_FDS=1 and LISTEN_PID set to that process's own pid.
 *
 * The socket is created by this (node) process, handed to a bash process as its fd 3, and
 * closed here: a node process holding it would accept on it. bash never reads fd 3; it
 * starts each `serve` (through `sh -c '... exec'`, so LISTEN_PID can be the pid that execs
 * node) with fd 3 inherited, and reports its pid and exit status on stdout.
 */

/** One `serve` process started on the held socket. */
export interface Lifetime {
  n: number;
  pid: number;
  /** serve's stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit status as the shell saw it (128 + N for signal N). */
  exited: Promise<number>;
  /** The first JSON log line with this `event`. */
  event(name: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export interface SocketActivator {
  /** http://127.0.0.1:PORT of the held socket. */
  url: string;
  port: number;
  /** Starts a `serve` process on the socket; `args` after `serve`. */
  start(args: readonly string[]): Promise<Lifetime>;
  /** Kills every process started, then the holder: the socket is closed. */
  close(): Promise<void>;
}

const HOLDER_SCRIPT = `
dir=$1
n=0
while read -r line; do
  n=$((n+1))
  (
    sh -c 'log=$1; n=$2; shift 2; echo "pid $n $$"; LISTEN_FDS=1 LISTEN_PID=$$ exec "$@" >"$log" 2>&1' \\
      sh "$dir/serve-$n.log" "$n" ${'$'}line
    echo "exit $n $?"
  ) &
done
wait
`;

export async function startSocketActivator(dir: string): Promise<SocketActivator> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve);
  });
  const { port } = server.address() as AddressInfo;
  // node takes a file descriptor number for a child's stdio; a net.Server it would try to pause.
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  const holder: ChildProcessWithoutNullStreams = spawn('bash', ['-c', HOLDER_SCRIPT, 'holder', dir], {
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['pipe', 'pipe', 'pipe', fd],
  }) as ChildProcessWithoutNullStreams;
  // From here on only bash (and the serve processes it starts) hold the socket.
  await new Promise<void>((resolve) => server.close(() => resolve()));

  const pids = new Map<number, (pid: number) => void>();
  const exits = new Map<number, (status: number) => void>();
  const started: number[] = [];
  createInterface({ input: holder.stdout }).on('line', (line) => {
    const [kind, n, value] = line.split(' ');
    if (kind === 'pid') {
      started.push(Number(value));
      pids.get(Number(n))?.(Number(value));
    }
    if (kind === 'exit') exits.get(Number(n))?.(Number(value));
  });
  let count = 0;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    async start(args) {
      const n = ++count;
      const log = join(dir, `serve-${n}.log`);
      const pid = new Promise<number>((resolve) => pids.set(n, resolve));
      const exited = new Promise<number>((resolve) => exits.set(n, resolve));
      // Words separated by spaces: the arguments tests pass have none inside them.
      holder.stdin.write(`${[process.execPath, CLI, 'serve', ...args].join(' ')}\n`);
      const output = () => {
        try {
          return readFileSync(log, 'utf8');
        } catch {
          return '';
        }
      };
      const event = async (name: string, timeoutMs = 10_000) => {
        const deadline = Date.now() + timeoutMs;
        while (Date.now() < deadline) {
          for (const line of output().split('\n')) {
            if (!line.startsWith('{')) continue;
            const parsed = JSON.parse(line) as Record<string, unknown>;
            if (parsed.event === name) return parsed;
          }
          await new Promise((r) => setTimeout(r, 10));
        }
        throw new Error(`serve #${n}: no "${name}" event within ${timeoutMs} ms; output: ${output().slice(0, 500)}`);
      };
      return { n, pid: await pid, output, exited, event };
    },
    async close() {
      for (const pid of started) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      holder.stdin.end();
      if (holder.exitCode === null && holder.signalCode === null) {
        await new Promise((resolve) => {
          holder.once('exit', resolve);
          // `wait` returns once the killed children are reaped; this is only a backstop.
          setTimeout(() => holder.kill('SIGKILL'), 2_000).unref();
        });
      }
    },
  };
}
