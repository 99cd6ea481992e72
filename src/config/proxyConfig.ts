import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { parseWholeNumber } from './flags.js';
import { LOG_LEVELS, type LogLevel } from './logLevels.js';
import { firstLine, UsageError } from './usageError.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export type ClientTokenMode = 'required' | 'optional';
export type ExtendedCredentialsMode = 'synthesize' | 'passthrough' | 'off';

export interface ProxyConfig {
  listen: ListenAddress;
  /** Origin of the real IMDS, no trailing slash. */
  upstream: string;
  maxAgeSeconds: number;
  refreshBeforeSeconds: number;
  /** Credentials are never served closer than this to their Expiration. */
  expiryMarginSeconds: number;
  upstreamTimeoutMs: number;
  upstreamAttempts: number;
  clientTokens: ClientTokenMode;
  logLevel: LogLevel;
  metricsListen?: ListenAddress;
  /** Serve /metrics and record metrics at all (off only to measure what they cost). */
  metrics: boolean;
  cacheFile?: string;
  allowCidrs: string[];
  /** DNS names besides `localhost` that clients may put in `Host` (the DNS-rebinding guard). */
  allowHosts: string[];
  extendedCredentials: ExtendedCredentialsMode;
  containerAuthTokenFile?: string;
  /** Simultaneous client connections; beyond it new ones are closed at once, cached ones keep being served. */
  maxConnections: number;
  /** Where each option given came from (its flag or its variable), to name it in errors found later. */
  sources?: Partial<Record<ServeOptionName, string>>;
}

export const DEFAULT_LISTEN = '127.0.0.1:8169';
/** Only ever a default for real deployments; tests and demos always pass a loopback upstream. */
export const DEFAULT_UPSTREAM = 'http://169.254.169.254';

export function defaultProxyConfig(): ProxyConfig {
  return {
    listen: parseListen('--listen', DEFAULT_LISTEN),
    upstream: DEFAULT_UPSTREAM,
    maxAgeSeconds: 300,
    refreshBeforeSeconds: 1800,
    expiryMarginSeconds: 60,
    upstreamTimeoutMs: 1000,
    upstreamAttempts: 2,
    clientTokens: 'required',
    logLevel: 'info',
    metrics: true,
    allowCidrs: [],
    allowHosts: [],
    extendedCredentials: 'synthesize',
    maxConnections: 8192,
  };
}

/** Every `serve` option: its flag, its environment variable, and what it takes. */
export const SERVE_OPTIONS = {
  listen: { env: 'IMDS_PROXY_LISTEN', value: 'HOST:PORT', help: `address to serve IMDS on (default ${DEFAULT_LISTEN}; [::1]:PORT for IPv6)` },
  upstream: { env: 'IMDS_PROXY_UPSTREAM', value: 'URL', help: `the real IMDS (default ${DEFAULT_UPSTREAM}; http://[fd00:ec2::254] for IPv6)` },
  'max-age': { env: 'IMDS_PROXY_MAX_AGE', value: 'SECONDS', help: 'refetch credentials at least this often (default 300)' },
  'refresh-before': { env: 'IMDS_PROXY_REFRESH_BEFORE', value: 'SECONDS', help: 'refetch when this little is left before expiry (default 1800)' },
  'expiry-margin': { env: 'IMDS_PROXY_EXPIRY_MARGIN', value: 'SECONDS', help: 'stop serving credentials this long before they expire (default 60)' },
  'upstream-timeout-ms': { env: 'IMDS_PROXY_UPSTREAM_TIMEOUT_MS', value: 'MS', help: 'per-attempt upstream timeout (default 1000)' },
  'upstream-attempts': { env: 'IMDS_PROXY_UPSTREAM_ATTEMPTS', value: 'N', help: 'attempts per upstream request, with backoff (default 2)' },
  'client-tokens': { env: 'IMDS_PROXY_CLIENT_TOKENS', value: 'required|optional', help: 'whether clients must use IMDSv2 tokens (default required)' },
  'log-level': { env: 'IMDS_PROXY_LOG_LEVEL', value: 'LEVEL', help: `${LOG_LEVELS.join('|')} (default info)` },
  'metrics-listen': { env: 'IMDS_PROXY_METRICS_LISTEN', value: 'HOST:PORT', help: 'also serve /metrics and /healthz (nothing else) on this address; refused with --metrics off' },
  metrics: { env: 'IMDS_PROXY_METRICS', value: 'on|off', help: 'record and serve Prometheus metrics (default on)' },
  'cache-file': { env: 'IMDS_PROXY_CACHE_FILE', value: 'PATH', help: 'warm-start file for credentials across restarts (default off)' },
  'allow-cidr': { env: 'IMDS_PROXY_ALLOW_CIDR', value: 'CIDR', help: 'accept clients only from these networks (repeatable; env: comma-separated)' },
  'allow-host': { env: 'IMDS_PROXY_ALLOW_HOST', value: 'NAME', help: 'a DNS name clients may use for the proxy besides localhost (repeatable; env: comma-separated)' },
  'extended-credentials': { env: 'IMDS_PROXY_EXTENDED_CREDENTIALS', value: 'synthesize|passthrough|off', help: 'serve security-credentials-extended (default synthesize)' },
  'max-connections': { env: 'IMDS_PROXY_MAX_CONNECTIONS', value: 'N', help: 'simultaneous client connections before new ones are refused (default 8192)' },
  'container-auth-token-file': { env: 'IMDS_PROXY_CONTAINER_AUTH_TOKEN_FILE', value: 'PATH', help: 'serve container credentials behind the token in this file (created if missing, re-read when it changes)' },
} as const;

export type ServeOptionName = keyof typeof SERVE_OPTIONS;
const REPEATABLE: ReadonlySet<ServeOptionName> = new Set(['allow-cidr', 'allow-host']);

/**
 * `serve`'s configuration from its flags and the environment; a flag wins over its
 * variable. Any bad value is a UsageError naming the flag (or variable) and the value.
 */
export function parseServeConfig(argv: string[], env: NodeJS.ProcessEnv): ProxyConfig {
  const options = Object.fromEntries(
    Object.keys(SERVE_OPTIONS).map((name) => [name, { type: 'string', multiple: REPEATABLE.has(name as ServeOptionName) }]),
  ) as Record<ServeOptionName, { type: 'string'; multiple: boolean }>;
  let values: Record<string, string | string[] | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError(ambiguousValue(argv, error) ?? firstLine(error));
  }

  const sources: NonNullable<ProxyConfig['sources']> = {};
  const config: ProxyConfig = { ...defaultProxyConfig(), sources };
  /** The raw value of an option and the name to blame if it is bad. */
  const read = (name: ServeOptionName): [string, string] | undefined => {
    const flag = values[name];
    if (typeof flag === 'string') return [`--${name}`, flag];
    const fromEnv = env[SERVE_OPTIONS[name].env];
    if (fromEnv !== undefined && fromEnv !== '') return [SERVE_OPTIONS[name].env, fromEnv];
    return undefined;
  };
  const with_ = <T>(name: ServeOptionName, parse: (source: string, raw: string) => T, apply: (v: T) => void) => {
    const found = read(name);
    if (found === undefined) return;
    apply(parse(found[0], found[1]));
    sources[name] = found[0];
  };

  with_('listen', parseListen, (v) => (config.listen = v));
  with_('upstream', parseUpstream, (v) => (config.upstream = v));
  with_('max-age', seconds(1, 86_400), (v) => (config.maxAgeSeconds = v));
  with_('refresh-before', seconds(0, 43_200), (v) => (config.refreshBeforeSeconds = v));
  with_('expiry-margin', seconds(0, 3_600), (v) => (config.expiryMarginSeconds = v));
  with_('upstream-timeout-ms', wholeNumber(50, 60_000), (v) => (config.upstreamTimeoutMs = v));
  with_('upstream-attempts', wholeNumber(1, 10), (v) => (config.upstreamAttempts = v));
  with_('client-tokens', oneOf(['required', 'optional'] as const), (v) => (config.clientTokens = v));
  with_('log-level', oneOf(LOG_LEVELS), (v) => (config.logLevel = v));
  with_('metrics-listen', parseListen, (v) => (config.metricsListen = v));
  with_('metrics', oneOf(['on', 'off'] as const), (v) => (config.metrics = v === 'on'));
  with_('cache-file', nonEmpty, (v) => (config.cacheFile = v));
  with_('extended-credentials', oneOf(['synthesize', 'passthrough', 'off'] as const), (v) => (config.extendedCredentials = v));
  with_('max-connections', wholeNumber(1, 1_000_000), (v) => (config.maxConnections = v));
  with_('container-auth-token-file', nonEmpty, (v) => (config.containerAuthTokenFile = v));

  /** A repeatable flag's values, or else its variable's comma-separated ones. */
  const every = <T>(name: ServeOptionName, parse: (source: string, raw: string) => T): T[] | undefined => {
    const flags = values[name];
    if (Array.isArray(flags) && flags.length > 0) return flags.map((v) => parse(`--${name}`, v));
    const fromEnv = env[SERVE_OPTIONS[name].env];
    if (!fromEnv) return undefined;
    return fromEnv
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '')
      .map((v) => parse(SERVE_OPTIONS[name].env, v));
  };
  config.allowCidrs = every('allow-cidr', parseCidr) ?? config.allowCidrs;
  config.allowHosts = every('allow-host', parseHostName) ?? config.allowHosts;

  if (config.metricsListen !== undefined && !config.metrics) {
    // A listener that would serve nothing is a mistake worth stopping for, not a silent no-op.
    throw new UsageError(
      `${sources['metrics-listen']}: a metrics listener with ${sources.metrics} off would serve nothing; drop one of the two`,
    );
  }
  if (config.refreshBeforeSeconds <= config.expiryMarginSeconds && config.refreshBeforeSeconds !== 0) {
    throw new UsageError(
      `--refresh-before: ${config.refreshBeforeSeconds} must be larger than --expiry-margin (${config.expiryMarginSeconds}), or the proxy would stop serving credentials before trying to refresh them`,
    );
  }
  return config;
}

/**
 * parseArgs refuses `--flag -1` as ambiguous, in a message naming neither the value nor the
 * way out; say both, on one line, like every other bad value.
 */
function ambiguousValue(argv: string[], error: unknown): string | undefined {
  const flag = /^Option '(--[a-z-]+)' argument is ambiguous/.exec(String((error as Error)?.message))?.[1];
  const value = flag === undefined ? undefined : argv[argv.indexOf(flag) + 1];
  if (flag === undefined || value === undefined) return undefined;
  return `${flag}: a value starting with "-" must be given as ${flag}=VALUE, got "${value}"`;
}

export function parseListen(source: string, raw: string): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(raw);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (match === null || host === undefined || !(port >= 0 && port <= 65535)) {
    throw new UsageError(`${source}: expected HOST:PORT or [IPv6]:PORT, got "${raw}"`);
  }
  if (match[1] !== undefined && isIP(host) !== 6) throw new UsageError(`${source}: "${host}" is not an IPv6 address`);
  return { host, port };
}

export function parseUpstream(source: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`${source}: expected an http:// URL, got "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${source}: expected an http:// URL, got "${raw}"`);
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '' || url.username !== '') {
    throw new UsageError(`${source}: give only scheme, host and port (e.g. http://169.254.169.254), got "${raw}"`);
  }
  return url.origin;
}

export function parseCidr(source: string, raw: string): string {
  const [address, bits, ...rest] = raw.split('/');
  const family = isIP(address ?? '');
  const prefix = bits === undefined ? (family === 6 ? 128 : 32) : /^\d{1,3}$/.test(bits) ? Number(bits) : Number.NaN;
  if (family === 0 || rest.length > 0 || !(prefix >= 0 && prefix <= (family === 6 ? 128 : 32))) {
    throw new UsageError(`${source}: expected an address or CIDR like 10.0.0.0/8 or fd00::/8, got "${raw}"`);
  }
  return `${address}/${prefix}`;
}

/** A DNS name, as clients write it in `Host` (without a port); kept lower-case. */
export function parseHostName(source: string, raw: string): string {
  const label = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
  if (raw.length > 253 || !new RegExp(`^${label}(?:\\.${label})*$`, 'i').test(raw)) {
    throw new UsageError(`${source}: expected a DNS name like proxy.internal (no port, no scheme), got "${raw}"`);
  }
  return raw.toLowerCase();
}

function seconds(min: number, max: number) {
  return wholeNumber(min, max, 'whole seconds');
}

function wholeNumber(min: number, max: number, what = 'a whole number') {
  return (source: string, raw: string) => parseWholeNumber(source, raw, min, max, what);
}

function oneOf<const T extends readonly string[]>(allowed: T) {
  return (source: string, raw: string): T[number] => {
    if (!allowed.includes(raw)) throw new UsageError(`${source}: expected one of ${allowed.join('|')}, got "${raw}"`);
    return raw as T[number];
  };
}

function nonEmpty(source: string, raw: string): string {
  if (raw.trim() === '') throw new UsageError(`${source}: must not be empty`);
  return raw;
}

export function formatListen(address: ListenAddress): string {
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
