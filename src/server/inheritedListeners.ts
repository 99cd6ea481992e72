import type { Server } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { formatListen, type ListenAddress } from '../config/proxyConfig.js';
import { UsageError } from '../config/usageError.js';

/**
 * Listening sockets handed over by a supervisor (systemd socket activation, sd_listen_fds(3)):
 * while the proxy restarts, the kernel queues connections on the socket the supervisor keeps
 * open, and the next process answers them. See docs/restarts.md.
 */
export interface InheritedSocket {
  fd: number;
  /** Its LISTEN_FDNAMES entry (systemd's FileDescriptorName=), or the role it was given. */
  name: string;
}

export interface InheritedListeners {
  imds?: InheritedSocket;
  metrics?: InheritedSocket;
}

/** sd_listen_fds(3): passed sockets start at fd 3, in LISTEN_FDNAMES order. */
const FIRST_FD = 3;
const ROLES = ['imds', 'metrics'] as const;

/**
 * The sockets passed to this process by LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES, which are
 * removed from `env` whatever they say, so that no child process takes them for its own.
 * Sockets named `imds` and `metrics` serve those; a single socket with another name (systemd's
 * default name is the socket unit's) is the IMDS listener. Variables meant for another process
 * (LISTEN_PID not ours) are ignored, as sd_listen_fds does; malformed ones are a UsageError.
 */
export function takeInheritedListeners(env: NodeJS.ProcessEnv, pid: number): InheritedListeners {
  const { LISTEN_FDS: count, LISTEN_PID: forPid, LISTEN_FDNAMES: names } = env;
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (count === undefined || forPid === undefined) return {};
  if (!/^\d+$/.test(forPid)) throw new UsageError(`LISTEN_PID: expected a process id, got "${forPid}"`);
  if (Number(forPid) !== pid) return {};
  if (!/^\d+$/.test(count)) throw new UsageError(`LISTEN_FDS: expected a number of sockets, got "${count}"`);
  const n = Number(count);
  const nameList = names === undefined ? [] : names.split(':');
  if (names !== undefined && nameList.length !== n) {
    throw new UsageError(`LISTEN_FDNAMES: ${nameList.length} names ("${names}") for LISTEN_FDS=${n} sockets`);
  }
  const found: InheritedListeners = {};
  for (let i = 0; i < n; i++) {
    const name = nameList[i] ?? '';
    const role = (ROLES as readonly string[]).includes(name) ? (name as (typeof ROLES)[number]) : n === 1 ? 'imds' : undefined;
    if (role === undefined) {
      throw new UsageError(
        `LISTEN_FDNAMES: socket ${FIRST_FD + i} is named "${name}"; with more than one socket, name them "imds" and "metrics" (FileDescriptorName=)`,
      );
    }
    if (found[role] !== undefined) throw new UsageError(`LISTEN_FDNAMES: more than one socket named "${role}" ("${names}")`);
    found[role] = { fd: FIRST_FD + i, name: name === '' ? role : name };
  }
  return found;
}

/**
 * Starts `server` accepting on an inherited socket that must be bound to `expected` (the
 * --listen or --metrics-listen value): the readiness check, the `started` line and every SDK's
 * endpoint are written with that address, so a socket elsewhere is a configuration error
 * (a UsageError), never silently served. The address is checked before the event loop can
 * accept anything on it.
 */
export function listenInherited(server: Server, socket: InheritedSocket, expected: ListenAddress, option: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const what = `the inherited socket "${socket.name}" (fd ${socket.fd})`;
    const onError = (error: NodeJS.ErrnoException) => reject(new UsageError(`${what}: cannot listen on it (${error.code ?? error.message}): is it a TCP socket?`));
    server.once('error', onError);
    server.listen({ fd: socket.fd }, () => {
      server.off('error', onError);
      resolve();
    });
    const mismatch = addressMismatch(server.address(), expected);
    if (mismatch !== undefined) {
      server.off('error', onError);
      server.close();
      reject(new UsageError(`${what} ${mismatch}, but ${option} is ${formatListen(expected)}: make the socket unit's ListenStream= and ${option} agree`));
    }
  });
}

/** Why `actual` is not `expected`, or undefined. A host name (not an IP) in --listen is not resolved: only the port is compared. */
function addressMismatch(actual: AddressInfo | string | null, expected: ListenAddress): string | undefined {
  // Before node has a handle (listen failed) the error event says why.
  if (actual === null) return undefined;
  if (typeof actual === 'string') return `is a Unix socket (${actual})`;
  const sameHost = isIP(expected.host) === 0 || actual.address === expected.host;
  if (sameHost && actual.port === expected.port) return undefined;
  return `listens on ${formatListen({ host: actual.address, port: actual.port })}`;
}
