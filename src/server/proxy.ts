import type { Server } from 'node:http';
import { Hono } from 'hono';
import { systemClock, type Clock } from '../runtime/clock.js';
import { formatListen, type ProxyConfig } from '../config/proxyConfig.js';
import { createLogger, type Logger } from '../runtime/log.js';
import { noopMetrics, type MetricsRecorder } from '../metrics/recorder.js';
import { PrometheusMetrics } from '../metrics/prometheus.js';
import { VERSION } from '../runtime/version.js';
import { CredentialCache } from '../cache/credentialCache.js';
import { startBackgroundRefresher } from '../cache/backgroundRefresher.js';
import { MetadataCache } from '../cache/metadataCache.js';
import { WarmStartWriter, readWarmStartFile, warmStartEntriesFrom } from '../cache/warmStartFile.js';
import { removeStaleTempFiles } from '../cache/privateFile.js';
import { DEFAULT_METADATA_TTLS } from '../cache/metadataPolicy.js';
import { DEFAULT_REFRESH_SETTINGS, type RefreshSettings } from '../cache/refreshPolicy.js';
import { ImdsClient } from '../upstream/imdsClient.js';
import { fetchRoleCredentials, fetchRoleNames } from '../upstream/instanceProfile.js';
import { ClientTokenAuthority } from '../tokens/clientTokens.js';
import { loadTokenKey, tokenKeyPathFor } from '../tokens/tokenKeyFile.js';
import { getRequestListener } from '@hono/node-server';
import type { ProxyServices } from './context.js';
import { createFrontDoor } from './frontDoor.js';
import { boundPort, closeGracefully, listen } from './httpServer.js';
import type { InheritedListeners } from './inheritedListeners.js';
import { createSourceFilter, isLoopbackHost } from './sourceFilter.js';
import { ContainerAuthTokenFile } from '../tokens/containerAuthTokenFile.js';
import { UsageError } from '../config/usageError.js';

type ExposedMetrics = MetricsRecorder & { exposition?: () => Promise<{ contentType: string; body: string }> };

export interface ProxyDependencies {
  clock?: Clock;
  logger?: Logger;
  /** A recorder with an exposition is served at /metrics. */
  metrics?: ExposedMetrics;
  random?: () => number;
  /** Listening sockets passed by systemd (socket activation), accepted on instead of binding. */
  inherited?: InheritedListeners;
}

export interface RunningProxy {
  /** e.g. http://127.0.0.1:8169, the value for AWS_EC2_METADATA_SERVICE_ENDPOINT. */
  readonly url: string;
  readonly metricsUrl: string | undefined;
  readonly services: ProxyServices;
  isReady(): boolean;
  /** Stops accepting, finishes requests in flight, stops refreshing. Resolves within 5 s. */
  close(): Promise<void>;
}

/** How long a stop waits for connections to finish before cutting them (see closeGracefully). */
export const SHUTDOWN_GRACE_MS = 4_000;
/** Clients still waiting on upstream get a 503 this long before the drain closes their connections. */
const UPSTREAM_ABORT_BEFORE_DEADLINE_MS = 1_000;

export function refreshSettingsOf(config: ProxyConfig): RefreshSettings {
  return {
    ...DEFAULT_REFRESH_SETTINGS,
    maxAgeMs: config.maxAgeSeconds * 1000,
    refreshBeforeMs: config.refreshBeforeSeconds * 1000,
    safetyMarginMs: config.expiryMarginSeconds * 1000,
  };
}

export async function startProxy(config: ProxyConfig, deps: ProxyDependencies = {}): Promise<RunningProxy> {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? createLogger(config.logLevel);
  const metrics: ExposedMetrics = deps.metrics ?? (config.metrics ? new PrometheusMetrics({ version: VERSION }) : noopMetrics);
  const exposition = config.metrics ? metrics.exposition?.bind(metrics) : undefined;
  const inherited = deps.inherited ?? {};
  if (inherited.metrics !== undefined && (config.metricsListen === undefined || exposition === undefined)) {
    // Left alone, systemd would keep queueing connections on it that nothing ever answers.
    throw new UsageError(
      `the inherited socket "${inherited.metrics.name}" (fd ${inherited.metrics.fd}) is for metrics, but no metrics listener is configured: set --metrics-listen to its address (with --metrics on), or remove the socket`,
    );
  }

  // Aborted on close: upstream work in flight ends at once, whatever the timeout and attempts.
  const stopUpstream = new AbortController();
  const upstream = new ImdsClient({
    baseUrl: config.upstream,
    timeoutMs: config.upstreamTimeoutMs,
    maxAttempts: config.upstreamAttempts,
    retryBaseMs: 200,
    retryMaxMs: 2_000,
    clock,
    metrics,
    logger,
    ...(deps.random ? { random: deps.random } : {}),
    signal: stopUpstream.signal,
  });
  const warmStart =
    config.cacheFile === undefined ? undefined : new WarmStartWriter({ path: config.cacheFile, logger });
  const credentials: CredentialCache = new CredentialCache({
    source: {
      listRoles: () => fetchRoleNames(upstream),
      fetchCredentials: (role, usable) => fetchRoleCredentials(upstream, role, usable),
    },
    signal: stopUpstream.signal,
    clock,
    settings: refreshSettingsOf(config),
    metrics,
    logger,
    ...(deps.random ? { random: deps.random } : {}),
    ...(warmStart ? { onChange: () => warmStart.save(warmStartEntriesFrom(credentials.snapshot())) } : {}),
  });
  if (config.cacheFile !== undefined) await warmStartFrom(config.cacheFile, credentials, config, clock, logger);
  const metadata = new MetadataCache({
    fetch: (path, route) => upstream.get(path, route),
    clock,
    metrics,
    ttls: DEFAULT_METADATA_TTLS,
    maxEntries: 1_000,
    maxBytes: 8 * 1024 * 1024,
  });
  const services: ProxyServices = {
    clock,
    logger,
    metrics,
    // With a cache file the key is kept beside it, so tokens survive a restart.
    tokens: new ClientTokenAuthority(
      clock,
      config.cacheFile === undefined ? undefined : await loadTokenKey(tokenKeyPathFor(config.cacheFile), clock, logger),
    ),
    credentials,
    metadata,
    clientTokens: config.clientTokens,
    extendedCredentials: config.extendedCredentials,
    ...(config.containerAuthTokenFile !== undefined
      ? {
          containerAuth: await ContainerAuthTokenFile.open({
            path: config.containerAuthTokenFile,
            source: config.sources?.['container-auth-token-file'] ?? '--container-auth-token-file',
            clock,
            logger,
            warn: (line) => process.stderr.write(`${line}\n`),
          }),
        }
      : {}),
    ...(exposition ? { exposition } : {}),
  };

  if (!isLoopbackHost(config.listen.host) && config.allowCidrs.length === 0) {
    const warning = `listening on ${formatListen(config.listen)}, which is not loopback, with no --allow-cidr: any host that can reach it can take this instance's credentials`;
    logger.warn({ event: 'insecure_listen', listen: formatListen(config.listen) }, warning);
    process.stderr.write(`WARNING: ${warning}\n`);
  }

  const servers: Server[] = [];
  const allowSource = createSourceFilter(config.allowCidrs);
  const frontDoor = createFrontDoor(services, { allowHosts: config.allowHosts, ...(allowSource ? { allowSource } : {}) });
  const server = await listen(frontDoor.listener, config.listen, {
    maxConnections: config.maxConnections,
    clientError: frontDoor.clientError,
    ...(inherited.imds ? { inherited: inherited.imds, listenOption: '--listen' } : {}),
  });
  servers.push(server);
  const url = `http://${formatListen({ host: config.listen.host, port: boundPort(server) })}`;

  let metricsUrl: string | undefined;
  if (config.metricsListen !== undefined && exposition !== undefined) {
    const metricsApp = new Hono();
    metricsApp.get('/metrics', async () => {
      const { contentType, body } = await exposition();
      return new Response(body, { headers: { 'content-type': contentType } });
    });
    metricsApp.get('/healthz', () => new Response('ok\n'));
    // Not behind --allow-cidr (Prometheus scrapes it from elsewhere), but capped like the rest.
    const metricsServer = await listen(getRequestListener(metricsApp.fetch), config.metricsListen, {
      maxConnections: config.maxConnections,
      ...(inherited.metrics ? { inherited: inherited.metrics, listenOption: '--metrics-listen' } : {}),
    }).catch(async (error: unknown) => {
      // The IMDS listener is already open: left so, the process would neither serve nor exit.
      await closeGracefully(server, 0);
      throw error;
    });
    servers.push(metricsServer);
    metricsUrl = `http://${formatListen({ host: config.metricsListen.host, port: boundPort(metricsServer) })}/metrics`;
  }

  logger.info(
    {
      event: 'started',
      listen: url,
      metrics: metricsUrl,
      upstream: config.upstream,
      clientTokens: config.clientTokens,
      ...(inherited.imds || inherited.metrics ? { inheritedSockets: Object.keys(inherited) } : {}),
    },
    'imds-cache-proxy started',
  );
  let announcedReady = false;
  const refresher = startBackgroundRefresher(credentials, () => {
    if (!announcedReady && credentials.isReady()) {
      announcedReady = true;
      logger.info({ event: 'ready' }, 'credentials cached; serving');
    }
  });

  let closing: Promise<void> | undefined;
  return {
    url,
    metricsUrl,
    services,
    isReady: () => credentials.isReady(),
    close() {
      closing ??= (async () => {
        refresher.stop();
        // Requests in flight may still finish on an upstream answer, until shortly before the
        // drain's deadline; then (or once they are done) upstream work in flight is aborted,
        // whatever the timeout and attempts, so the stop stays within its bound and no
        // refresh failure is logged after `stopped`.
        const abortLate = setTimeout(() => stopUpstream.abort(), SHUTDOWN_GRACE_MS - UPSTREAM_ABORT_BEFORE_DEADLINE_MS);
        await Promise.all(servers.map((s) => closeGracefully(s, SHUTDOWN_GRACE_MS)));
        clearTimeout(abortLate);
        stopUpstream.abort();
        await credentials.refreshIfDue();
        await warmStart?.flush();
        logger.info({ event: 'stopped' }, 'imds-cache-proxy stopped');
      })();
      return closing;
    },
  };
}

/** Seeds the cache from the warm-start file when it passes every check; never throws. */
async function warmStartFrom(
  path: string,
  credentials: CredentialCache,
  config: ProxyConfig,
  clock: Clock,
  logger: Logger,
): Promise<void> {
  // Writers killed mid-write leave temp files behind; they hold secrets, so they go.
  await removeStaleTempFiles(path);
  // Anything still servable is seeded, even inside the refresh window: after a restart during
  // an IMDS outage those credentials are all there is; seed() schedules the refresh behind them.
  const read = await readWarmStartFile(path, { now: clock.now(), minValidityMs: config.expiryMarginSeconds * 1000 });
  if ('ignored' in read) {
    const level = read.ignored === 'no file' ? 'info' : 'warn';
    logger[level]({ event: 'warm_start_ignored', path, reason: read.ignored }, 'warm-start file not used; starting cold');
    return;
  }
  const seeded = read.entries.filter((e) => credentials.seed(e.role, e.credentials, e.fetchedAt)).map((e) => e.role);
  logger.info({ event: 'warm_start_loaded', path, roles: seeded }, 'credentials seeded from the warm-start file');
}
