import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock, type Clock } from '../clock.js';
import { formatListen } from '../config.js';
import type { RoleCredentials } from '../imds/credentials.js';
import { ServedCounters, type SimulatorCounters } from './counters.js';
import { createControlHandler } from './controlApi.js';
import { CredentialsIssuer } from './credentialsIssuer.js';
import { NO_FAULTS, type Faults } from './faults.js';
import { createImdsHandler, type SimulatorState } from './imdsHandler.js';
import { makeInstanceIdentity } from './instanceIdentity.js';
import { TokenBucket } from './tokenBucket.js';

export type { Faults } from './faults.js';
export type { SimulatorCounters } from './counters.js';

export interface SimulatorOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
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

/** A faithful IMDS stand-in on loopback, with throttling and fault injection. */
export async function startSimulator(options: SimulatorOptions = {}): Promise<RunningSimulator> {
  const clock = options.clock ?? systemClock;
  const host = options.host ?? '127.0.0.1';
  const roles = options.roles ?? ['demo-role'];
  const rps = options.throttleRps ?? 0;
  const state: SimulatorState = {
    clock,
    roles,
    identity: makeInstanceIdentity(options.accountId, options.region),
    issuer: new CredentialsIssuer(
      clock,
      (options.credentialLifetimeSeconds ?? 6 * 3600) * 1000,
      (options.rotationPeriodSeconds ?? 3600) * 1000,
    ),
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
  await listen(control, host, options.controlPort ?? 0);
  const port = (imds.address() as AddressInfo).port;

  return {
    url: `http://${formatListen({ host, port })}`,
    controlUrl: `http://${formatListen({ host, port: (control.address() as AddressInfo).port })}`,
    port,
    counters: () => state.counters.snapshot(),
    resetCounters: () => state.counters.reset(),
    setFaults,
    resetFaults: () => setFaults(NO_FAULTS),
    faults: () => ({ ...state.faults }),
    rotate,
    currentCredentials: (role) => (roles.includes(role) ? state.issuer.current(role) : undefined),
    async close() {
      for (const req of state.held) req.socket.destroy();
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
