import { connect, type Socket } from 'node:net';

/**
 * One HTTP/1.1 connection driven by hand: requests written when the test says, answers parsed
 * by Content-Length, and how the connection ended ('end' for the server's clean close, an
 * error code for a reset). Node's own clients would hide exactly what these tests look at.
 */
export interface RawHttpClient {
  socket: Socket;
  connected: Promise<void>;
  send(method: string, path: string, headers?: Record<string, string>): void;
  /** Every byte received, as latin1. */
  received(): string;
  /** The bodies of the answers complete so far. */
  bodies(): string[];
  ended(): string | undefined;
  /** Waits until `n` answers are complete. */
  answers(n: number, timeoutMs?: number): Promise<void>;
  /** Waits until the connection has ended, and says how. */
  endedHow(timeoutMs?: number): Promise<string>;
}

export function rawHttpClient(port: number, host = '127.0.0.1'): RawHttpClient {
  const socket = connect(port, host);
  let all = '';
  let pending = '';
  const bodies: string[] = [];
  let ended: string | undefined;
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => {
    all += d;
    pending += d;
    for (;;) {
      const head = pending.indexOf('\r\n\r\n');
      if (head < 0) return;
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(pending.slice(0, head))?.[1] ?? 0);
      if (pending.length < head + 4 + length) return;
      bodies.push(pending.slice(head + 4, head + 4 + length));
      pending = pending.slice(head + 4 + length);
    }
  });
  socket.on('end', () => (ended ??= 'end'));
  socket.on('error', (e: NodeJS.ErrnoException) => (ended ??= e.code ?? 'error'));
  socket.on('close', () => (ended ??= 'close'));
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  connected.catch(() => {});
  const waitFor = async (done: () => boolean, what: () => string, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`${what()}; received ${JSON.stringify(all.slice(0, 300))}; ended: ${ended}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  return {
    socket,
    connected,
    send(method, path, headers = {}) {
      const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.write(`${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n${lines}\r\n`);
    },
    received: () => all,
    bodies: () => bodies,
    ended: () => ended,
    answers: (n, timeoutMs = 10_000) => waitFor(() => bodies.length >= n, () => `${n} answers expected, got ${bodies.length}`, timeoutMs),
    async endedHow(timeoutMs = 10_000) {
      await waitFor(() => ended !== undefined, () => 'the connection did not end', timeoutMs);
      return ended!;
    },
  };
}

/** Clients opened through it, destroyed together (in an afterEach). */
export function rawHttpClientPool() {
  const open: RawHttpClient[] = [];
  return {
    open(port: number): RawHttpClient {
      const c = rawHttpClient(port);
      open.push(c);
      return c;
    },
    destroyAll(): void {
      for (const c of open.splice(0)) c.socket.destroy();
    },
  };
}
