import { parseListen } from '../config/proxyConfig.js';
import { isLoopbackHost } from '../server/sourceFilter.js';
import { UsageError } from '../config/usageError.js';
import { parseFlags, parseWholeNumber } from '../config/flags.js';
import { isRoleName } from '../imds/protocol.js';
import type { Faults } from '../simulator/faults.js';
import { startSimulator, type SimulatorOptions } from '../simulator/simulator.js';

export const SIMULATE_HELP = `Usage: imds-cache-proxy simulate [options]

A faithful IMDS on a loopback port, with IMDS's throttling and fault injection, for
reproducing throttling before production does. Faults switch at runtime through the
control API (GET/PUT /faults, POST /faults/reset, GET /counters, POST /counters/reset,
POST /rotate), which listens on its own loopback port.

  --listen HOST:PORT            IMDS address (default 127.0.0.1:8170)
  --control-listen HOST:PORT    control API, loopback only (default 127.0.0.1:8171)
  --role NAME                   role in the instance profile (default demo-role; repeatable)
  --credential-lifetime S       credentials' life (default 21600)
  --rotation-period S           new credentials this often (default 3600); at least
                                300 less than the lifetime, as on EC2
  --throttle-rps N              admit N requests a second (default: unthrottled)
  --throttle-burst N            bucket size (default: the rate)
  --throttle-mode drop|429      what a throttled client sees (default drop: a timeout)
  --max-connections N           simultaneous connections
  --latency-ms N                added to every answer
  --error-rate R                fraction of requests answered 500 (0..1)
  --http-tokens required|optional
  --imdsv1-only 403|404|405     the token route answers this: no IMDSv2
  --expired-credentials         serve credentials already expired
  --error-document              serve a Code other than Success
  --extended-credentials        serve security-credentials-extended (default 404)
  -h, --help                    this help
`;

const DEFAULT_LIFETIME_S = 21_600;
const DEFAULT_ROTATION_S = 3_600;
/** EC2 has new credentials at least five minutes before the old expire. */
const MIN_OVERLAP_S = 300;

const OPTIONS = {
  listen: { type: 'string' },
  'control-listen': { type: 'string' },
  role: { type: 'string', multiple: true },
  'credential-lifetime': { type: 'string' },
  'rotation-period': { type: 'string' },
  'throttle-rps': { type: 'string' },
  'throttle-burst': { type: 'string' },
  'throttle-mode': { type: 'string' },
  'max-connections': { type: 'string' },
  'latency-ms': { type: 'string' },
  'error-rate': { type: 'string' },
  'http-tokens': { type: 'string' },
  'imdsv1-only': { type: 'string' },
  'expired-credentials': { type: 'boolean' },
  'error-document': { type: 'boolean' },
  'extended-credentials': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `simulate`'s options from its flags; a UsageError names any bad flag and value. */
export function parseSimulateArgs(argv: string[]): { options: SimulatorOptions; help: boolean } {
  const values = parseFlags(argv, OPTIONS);
  if (values.help) return { options: {}, help: true };
  const whole = (flag: string, raw: string | undefined, min: number, max: number): number | undefined =>
    raw === undefined ? undefined : parseWholeNumber(`--${flag}`, raw, min, max);
  const listen = parseListen('--listen', values.listen ?? '127.0.0.1:8170');
  const control = parseListen('--control-listen', values['control-listen'] ?? '127.0.0.1:8171');
  if (!isLoopbackHost(control.host)) {
    throw new UsageError(`--control-listen: the control API switches faults and must stay on loopback, got "${values['control-listen']}"`);
  }
  if (control.port !== 0 && control.port === listen.port && control.host === listen.host) {
    throw new UsageError(`--control-listen: must differ from --listen, got "${values['control-listen'] ?? '127.0.0.1:8171'}"`);
  }
  const faults: Partial<Faults> = {};
  const latency = whole('latency-ms', values['latency-ms'], 0, 600_000);
  if (latency !== undefined) faults.latencyMs = latency;
  if (values['error-rate'] !== undefined) {
    const rate = Number(values['error-rate']);
    if (!/^[0-9.]+$/.test(values['error-rate']) || !(rate >= 0 && rate <= 1)) {
      throw new UsageError(`--error-rate: expected a number from 0 to 1, got "${values['error-rate']}"`);
    }
    faults.errorRate = rate;
  }
  if (values['http-tokens'] !== undefined) {
    if (values['http-tokens'] !== 'required' && values['http-tokens'] !== 'optional') {
      throw new UsageError(`--http-tokens: expected required|optional, got "${values['http-tokens']}"`);
    }
    faults.httpTokens = values['http-tokens'];
  }
  if (values['imdsv1-only'] !== undefined) {
    const status = Number(values['imdsv1-only']);
    if (status !== 403 && status !== 404 && status !== 405) {
      throw new UsageError(`--imdsv1-only: expected 403, 404 or 405, got "${values['imdsv1-only']}"`);
    }
    faults.imdsV1Only = status;
  }
  if (values['expired-credentials']) faults.expiredCredentials = true;
  if (values['error-document']) faults.errorDocument = true;
  const mode = values['throttle-mode'] ?? 'drop';
  if (mode !== 'drop' && mode !== '429') throw new UsageError(`--throttle-mode: expected drop|429, got "${mode}"`);
  for (const role of values.role ?? []) {
    if (!isRoleName(role)) throw new UsageError(`--role: not an IAM role name: "${role}"`);
  }

  const lifetime = whole('credential-lifetime', values['credential-lifetime'], 360, 43_200);
  const rotation = whole('rotation-period', values['rotation-period'], 1, 43_200);
  if ((lifetime ?? DEFAULT_LIFETIME_S) < (rotation ?? DEFAULT_ROTATION_S) + MIN_OVERLAP_S) {
    const flag = lifetime !== undefined ? 'credential-lifetime' : 'rotation-period';
    throw new UsageError(
      `--${flag}: credentials must outlive the rotation period by ${MIN_OVERLAP_S} s ` +
        `(lifetime ${lifetime ?? DEFAULT_LIFETIME_S}, rotation ${rotation ?? DEFAULT_ROTATION_S}), got "${values[flag]}"`,
    );
  }

  const options: SimulatorOptions = {
    host: listen.host,
    port: listen.port,
    controlHost: control.host,
    controlPort: control.port,
    roles: values.role ?? ['demo-role'],
    throttleMode: mode,
    faults,
    extendedCredentials: values['extended-credentials'] ?? false,
  };
  const set = <K extends keyof SimulatorOptions>(key: K, value: SimulatorOptions[K] | undefined) => {
    if (value !== undefined) options[key] = value;
  };
  set('credentialLifetimeSeconds', lifetime);
  set('rotationPeriodSeconds', rotation);
  set('throttleRps', whole('throttle-rps', values['throttle-rps'], 1, 1_000_000));
  set('throttleBurst', whole('throttle-burst', values['throttle-burst'], 1, 1_000_000));
  set('maxConnections', whole('max-connections', values['max-connections'], 1, 1_000_000));
  return { options, help: false };
}

/** `imds-cache-proxy simulate`: runs until SIGINT or SIGTERM. */
export async function runSimulateCommand(argv: string[]): Promise<number> {
  const { options, help } = parseSimulateArgs(argv);
  if (help) {
    process.stdout.write(SIMULATE_HELP);
    return 0;
  }
  const sim = await startSimulator(options);
  process.stdout.write(
    `IMDS simulator on ${sim.url} (control API ${sim.controlUrl}); role ${options.roles?.join(', ')}` +
      `${options.throttleRps ? `; throttled to ${options.throttleRps} req/s (${options.throttleMode})` : ''}\n`,
  );
  await untilStopSignal();
  await sim.close();
  return 0;
}

function untilStopSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
