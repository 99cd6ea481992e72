import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock, type Clock } from '../runtime/clock.js';
import { formatListen } from '../config/proxyConfig.js';
import type { RoleCredentials } from '../imds/credentials.js';
import { formatImdsTime } from '../imds/protocol.js';
import { isLoopbackHost } from '../server/sourceFilter.js';
import { ServedCounters, type SimulatorCounters } from './counters.js';
import { createControlHandler } from './controlApi.js';
import { CredentialsIssuer } from './credentialsIssuer.js';
import { NO_FAULTS, type Faults } from './faults.js';
import { createImdsHandler, type SimulatorState } from './imdsHandler.js';
import { makeInstanceIdentity, staticMetadata } from './instanceIdentity.js';
import { TokenBucket } from './tokenBucket.js';
import { TokenStore } from './tokenStore.js';

export type { Faults } from './faults.js';
export type { SimulatorCounters } from './counters.js';

export interface SimulatorOptions {
  /** IMDS address; default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Loopback only; default `host` when that is loopback, else 127.0.0.1. */
  controlHost?: string;
  controlPort?: number;
  roles?: string[];
  credentialLifetimeSeconds?: number;
  rotationPeriodSeconds?: number;
  /** Requests per second IMDS admits; undefined or 0: unthrottled. */
  throttleRps?: number;
  throttleBurst?: number;
  throttleMode?: 'drop' | '429';
  /** Simultaneous connections; more are closed at once. */
  maxConnections?: number;
  faults?: Partial<Faults>;
  clock?: Clock;
  /** Serve security-credentials-extended (most of EC2 answers 404 there today). */
  extendedCredentials?: boolean;
  accountId?: string;
  region?: string;
}

export interface RunningSimulator {
  /** e.g. http://127.0.0.1:PORT, no trailing slash. */
  readonly url: string;
  readonly controlUrl: string;
  readonly port: number;
  counters(): SimulatorCounters;
  resetCounters(): void;
  setFaults(patch: Partial<Faults>): void;
  resetFaults(): void;
  faults(): Faults;
  rotate(): void;
  currentCredentials(role: string): RoleCredentials | undefined;
  close(): Promise<void>;
}

/** EC2 makes new credentials available at least this long before the old ones expire. */
const MIN_OVERLAP_SECONDS = 300;

/**
 * A faithful IMDS stand-in on loopback, with throttling and fault injection. Throws a
 * RangeError for options that no EC2 instance would have.
 */
export async function startSimulator(options: SimulatorOptions = {}): Promise<RunningSimulator> {
  const clock = options.clock ?? systemClock;
  const host = options.host ?? '127.0.0.1';
  const controlHost = options.controlHost ?? (isLoopbackHost(host) ? host : '127.0.0.1');
  if (!isLoopbackHost(controlHost)) {
    throw new RangeError(`controlHost: the control API switches faults and must stay on loopback, got "${controlHost}"`);
  }
  const roles = options.roles ?? ['demo-role'];
  if (roles.length === 0) throw new RangeError('roles: at least one role');
  const lifetimeSeconds = options.credentialLifetimeSeconds ?? 6 * 3600;
  const rotationSeconds = options.rotationPeriodSeconds ?? 3600;
  if (!(rotationSeconds > 0) || !(lifetimeSeconds >= rotationSeconds + MIN_OVERLAP_SECONDS)) {
    throw new RangeError(
      `credentialLifetimeSeconds (${lifetimeSeconds}) must exceed rotationPeriodSeconds (${rotationSeconds}) by at least ${MIN_OVERLAP_SECONDS}: ` +
        'EC2 has new credentials five minutes before the old expire',
    );
  }
  const rps = options.throttleRps ?? 0;
  const identity = makeInstanceIdentity(options.accountId, options.region);
  const state: SimulatorState = {
    clock,
    roles,
    identity,
    metadata: staticMetadata(identity, formatImdsTime(clock.now())),
    issuer: new CredentialsIssuer(clock, lifetimeSeconds * 1000, rotationSeconds * 1000),
    tokens: new TokenStore(clock),
    faults: { ...NO_FAULTS, ...options.faults },
    counters: new ServedCounters(),
    bucket: rps > 0 ? new TokenBucket(rps, options.throttleBurst ?? rps, clock) : undefined,
    throttleMode: options.throttleMode ?? 'drop',
    extendedCredentials: options.extendedCredentials ?? false,
    held: new Set(),
  };
  const setFaults = (patch: Partial<Faults>) => {
    state.faults = { ...state.faults, ...patch };
  };
  const rotate = () => state.issuer.rotateAll(roles);

  const imds = createServer({ keepAliveTimeout: 5_000 }, createImdsHandler(state));
  if (options.maxConnections !== undefined) imds.maxConnections = options.maxConnections;
  const control = createServer(createControlHandler(state, { setFaults, rotate }));
  await listen(imds, host, options.port ?? 0);
  try {
    await listen(control, controlHost, options.controlPort ?? 0);
  } catch (error) {
    await new Promise((resolve) => imds.close(resolve));
    throw error;
  }
  const port = (imds.address() as AddressInfo).port;

  return {
    url: `http://${formatListen({ host, port })}`,
    controlUrl: `http://${formatListen({ host: controlHost, port: (control.address() as AddressInfo).port })}`,
    port,
    counters: () => state.counters.snapshot(),
    resetCounters: () => state.counters.reset(),
    setFaults,
    resetFaults: () => setFaults(NO_FAULTS),
    faults: () => ({ ...state.faults }),
    rotate,
    currentCredentials: (role) => (roles.includes(role) ? state.issuer.current(role) : undefined),
    async close() {
      for (const socket of state.held) socket.destroy();
      state.held.clear();
      await Promise.all([imds, control].map((server) => new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })));
    },
  };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
