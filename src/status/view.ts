import { CACHE_RESULTS, METRIC_NAMES, UPSTREAM_OUTCOMES } from '../metrics/names.js';
import { sumOf, type Sample } from './exposition.js';

/** Exit codes of `status`, so it can serve as a health check. */
export const STATUS_EXIT = { ready: 0, notReady: 1, usage: 2, unreachable: 3 } as const;

/** The same thresholds as deploy/prometheus/alerts.yml, so `status` and the alerts agree. */
export const EXPIRING_SOON_SECONDS = 900;
export const NO_REFRESH_SECONDS = 1800;

export interface RoleView {
  role: string;
  /** Last 4 characters of the cached AccessKeyId; null when the proxy does not say. */
  accessKeyIdSuffix: string | null;
  expiresInSeconds: number | null;
  lastRefreshSecondsAgo: number | null;
}

export interface CacheView {
  /** Hits over lookups in the last interval; null when there was no lookup. */
  hitRatio: number | null;
  hitRatioSinceStart: number | null;
  perSecond: Record<string, number>;
}

export interface StatusView {
  endpoint: string;
  reachable: true;
  ready: boolean;
  /** /readyz's own words, e.g. "ready" or "not ready: no valid credentials cached yet". */
  readiness: string;
  /** False when the proxy runs with --metrics off: only readiness is known. */
  metrics: boolean;
  version: string | null;
  intervalSeconds: number;
  roles: RoleView[];
  upstream: { perSecond: Record<string, number>; sinceStart: Record<string, number> };
  cache: { credentials: CacheView; metadata: CacheView };
  tokens: { issued: number; perSecond: number };
  /** Why not ready, and what else needs a look; empty when all is well. */
  problems: string[];
  exitCode: number;
}

export interface UnreachableView {
  endpoint: string;
  reachable: false;
  error: string;
  exitCode: number;
}

export interface Observation {
  readiness: { status: number; body: string };
  /** Samples from /metrics, or undefined when the proxy serves none. */
  samples: Sample[] | undefined;
  /** Epoch ms at which /metrics was read. */
  at: number;
}

/**
 * What a human (or a script) wants from two looks at a proxy: rates come from the counters'
 * difference between `previous` and `current`, gauges and readiness from `current`.
 */
export function buildStatusView(endpoint: string, previous: Observation, current: Observation): StatusView {
  const now = current.at;
  const seconds = Math.max(0.001, (current.at - previous.at) / 1000);
  const ready = current.readiness.status === 200;
  const readiness = current.readiness.body.trim() || (ready ? 'ready' : `not ready (HTTP ${current.readiness.status})`);
  const samples = current.samples ?? [];
  const before = previous.samples ?? [];
  const rate = (name: string, match: Record<string, string>) => {
    const delta = sumOf(samples, name, match) - sumOf(before, name, match);
    // A counter that went down means the proxy restarted in between: count from zero.
    return (delta >= 0 ? delta : sumOf(samples, name, match)) / seconds;
  };

  const upstreamPerSecond: Record<string, number> = {};
  const upstreamSinceStart: Record<string, number> = {};
  for (const outcome of UPSTREAM_OUTCOMES) {
    upstreamPerSecond[outcome] = rate(METRIC_NAMES.upstreamRequests, { outcome });
    upstreamSinceStart[outcome] = sumOf(samples, METRIC_NAMES.upstreamRequests, { outcome });
  }
  const cacheView = (cache: string): CacheView => {
    const perSecond: Record<string, number> = {};
    for (const result of CACHE_RESULTS) perSecond[result] = rate(METRIC_NAMES.cacheRequests, { cache, result });
    const lookups = Object.values(perSecond).reduce((a, b) => a + b, 0);
    const totalLookups = sumOf(samples, METRIC_NAMES.cacheRequests, { cache });
    return {
      hitRatio: lookups > 0 ? perSecond.hit! / lookups : null,
      hitRatioSinceStart: totalLookups > 0 ? sumOf(samples, METRIC_NAMES.cacheRequests, { cache, result: 'hit' }) / totalLookups : null,
      perSecond,
    };
  };

  const roles = rolesOf(samples, now);
  const view: StatusView = {
    endpoint,
    reachable: true,
    ready,
    readiness,
    metrics: current.samples !== undefined,
    version: samples.find((s) => s.name === METRIC_NAMES.buildInfo)?.labels.version ?? null,
    intervalSeconds: seconds,
    roles,
    upstream: { perSecond: upstreamPerSecond, sinceStart: upstreamSinceStart },
    cache: { credentials: cacheView('credentials'), metadata: cacheView('metadata') },
    tokens: { issued: sumOf(samples, METRIC_NAMES.tokensIssued), perSecond: rate(METRIC_NAMES.tokensIssued, {}) },
    problems: [],
    exitCode: ready ? STATUS_EXIT.ready : STATUS_EXIT.notReady,
  };
  view.problems = problemsOf(view);
  return view;
}

function rolesOf(samples: readonly Sample[], now: number): RoleView[] {
  const byRole = new Map<string, RoleView>();
  const roleOf = (role: string) => {
    let view = byRole.get(role);
    if (view === undefined) {
      view = { role, accessKeyIdSuffix: null, expiresInSeconds: null, lastRefreshSecondsAgo: null };
      byRole.set(role, view);
    }
    return view;
  };
  for (const s of samples) {
    const role = s.labels.role;
    if (role === undefined) continue;
    if (s.name === METRIC_NAMES.credentialsExpiration) roleOf(role).expiresInSeconds = s.value - now / 1000;
    else if (s.name === METRIC_NAMES.credentialsLastRefresh) roleOf(role).lastRefreshSecondsAgo = now / 1000 - s.value;
    else if (s.name === METRIC_NAMES.credentialsInfo) roleOf(role).accessKeyIdSuffix = s.labels.access_key_id_suffix ?? null;
  }
  return [...byRole.values()].sort((a, b) => a.role.localeCompare(b.role));
}

function problemsOf(view: StatusView): string[] {
  const problems: string[] = [];
  if (!view.ready) problems.push(view.readiness);
  if (!view.metrics) problems.push('no /metrics (the proxy runs with --metrics off): only readiness is known');
  for (const role of view.roles) {
    if (role.expiresInSeconds !== null && role.expiresInSeconds < EXPIRING_SOON_SECONDS) {
      problems.push(`credentials for ${role.role} ${role.expiresInSeconds > 0 ? `expire in ${formatDuration(role.expiresInSeconds)}` : 'have expired'} and have not been replaced`);
    }
    if (role.lastRefreshSecondsAgo !== null && role.lastRefreshSecondsAgo > NO_REFRESH_SECONDS) {
      problems.push(`no successful refresh of ${role.role} for ${formatDuration(role.lastRefreshSecondsAgo)}`);
    }
  }
  const failing = Object.entries(view.upstream.perSecond).filter(([outcome, perSecond]) => outcome !== 'success' && perSecond > 0);
  if (failing.length > 0) {
    problems.push(`upstream IMDS failing: ${failing.map(([outcome, perSecond]) => `${outcome} ${formatRate(perSecond)}`).join(', ')}`);
  }
  if ((view.cache.credentials.perSecond.stale ?? 0) > 0) problems.push('serving stale credentials: refreshes are failing');
  return problems;
}

/** 5h 59m, 12m 3s, 42s. */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.round(totalSeconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

function formatRate(perSecond: number): string {
  return `${perSecond < 10 ? perSecond.toFixed(2) : perSecond.toFixed(0)}/s`;
}

function formatRatio(ratio: number | null): string {
  return ratio === null ? '-' : `${(ratio * 100).toFixed(1)}%`;
}

/** The human view: a few lines, widest first column fixed, as varnishstat and top print. */
export function renderStatusText(view: StatusView | UnreachableView): string {
  if (!view.reachable) return `imds-cache-proxy at ${view.endpoint}: NOT REACHABLE: ${view.error}\n`;
  const lines: string[] = [];
  const headline = view.ready ? 'READY' : `NOT READY: ${view.readiness.replace(/^not ready:?\s*/, '')}`;
  lines.push(`imds-cache-proxy${view.version ? ` ${view.version}` : ''} at ${view.endpoint}: ${headline}`);
  lines.push('');
  if (view.metrics) {
    lines.push(`${'role'.padEnd(28)} ${'key'.padEnd(6)} ${'expires in'.padEnd(12)} last refresh`);
    if (view.roles.length === 0) lines.push('(no credentials cached)');
    for (const r of view.roles) {
      lines.push(
        `${r.role.padEnd(28)} ${(r.accessKeyIdSuffix ?? '-').padEnd(6)} ${(r.expiresInSeconds === null ? '-' : r.expiresInSeconds > 0 ? formatDuration(r.expiresInSeconds) : 'expired').padEnd(12)} ${r.lastRefreshSecondsAgo === null ? '-' : `${formatDuration(r.lastRefreshSecondsAgo)} ago`}`,
      );
    }
    lines.push('');
    lines.push(`upstream IMDS requests, per second over the last ${view.intervalSeconds.toFixed(1)} s (since start)`);
    for (const outcome of UPSTREAM_OUTCOMES) {
      lines.push(`  ${outcome.padEnd(18)} ${formatRate(view.upstream.perSecond[outcome] ?? 0).padStart(9)}  (${view.upstream.sinceStart[outcome] ?? 0})`);
    }
    lines.push('');
    for (const cache of ['credentials', 'metadata'] as const) {
      const c = view.cache[cache];
      lines.push(`${`${cache} cache hit ratio`.padEnd(28)} ${formatRatio(c.hitRatio).padStart(6)}  (${formatRatio(c.hitRatioSinceStart)} since start)`);
    }
    lines.push(`${'tokens issued'.padEnd(28)} ${formatRate(view.tokens.perSecond).padStart(6)}  (${view.tokens.issued} since start)`);
  }
  if (view.problems.length > 0) {
    lines.push('');
    for (const problem of view.problems) lines.push(`! ${problem}`);
  }
  return `${lines.join('\n')}\n`;
}
