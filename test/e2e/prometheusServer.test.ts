import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { writeWarmStartFile } from '../../src/cache/warmStartFile.js';
import { spawnServe, type ServeProcess } from '../../src/child/serveProcess.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { freeLoopbackPort } from '../support/ports.js';

/**
 * deploy/prometheus/alerts.yml and the Grafana dashboard's queries on a real Prometheus
 * scraping real `serve` processes through an incident: healthy, IMDS slow (timeouts), IMDS
 * down while the cached credentials near expiry, recovery. Every `for:` and range window of
 * the shipped rules is divided by TIME_SCALE (the expressions are otherwise as shipped);
 * the proxy's own timings are not scaled, so the play is chosen to fit them (see phases).
 *
 * Targets, all in job imds-cache-proxy: `main` plays the incident; `restarted` is a proxy
 * started from a warm-start file written 31 minutes ago while its IMDS is down (the one way to
 * show NoSuccessfulRefresh firing in seconds without a fake clock); `cold` starts against an
 * IMDS that never answers, with clients asking; `dead` is a port nobody listens on
 * (ImdsProxyDown). Every server is one this file starts on loopback.
 */

const PROMETHEUS = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => existsSync(p));
const SKIP_REASON = "prometheus not installed here; CI installs Debian's prometheus package (.ci/run)";
if (PROMETHEUS === undefined) console.log(`test/e2e/prometheusServer.test.ts skipped: ${SKIP_REASON}`);

const ALERTS_PATH = new URL('../../deploy/prometheus/alerts.yml', import.meta.url);
const METRICS_DOC_PATH = new URL('../../docs/metrics.md', import.meta.url);
const DASHBOARD_PATH = new URL('../../deploy/grafana/imds-cache-proxy.json', import.meta.url);
const ROLE = 'incident-role';
const CREDENTIAL_LIFETIME_MS = 6 * 3600_000;
/** Rule windows and `for:` durations run this many times faster than shipped. */
const TIME_SCALE = 150;
/** alerts.yml's ImdsProxyCredentialsExpiringSoon threshold, in its expression. */
const EXPIRING_SOON_SECONDS = 900;
/**
 * Seconds from handing the proxy short-lived credentials until they cross that threshold:
 * the slow phase must have fired its alerts by then, and the time spent failing must stay
 * short enough that the proxy's own refresh backoff (1 s doubling) retries soon after recovery.
 */
const SLOW_BUDGET_SECONDS = 13;
const SCRAPE_INTERVAL = '1s';
/** Grafana's $__rate_interval for a 1 s scrape interval: four intervals. */
const RATE_INTERVAL = '4s';

const ALERTS = {
  down: 'ImdsProxyDown',
  failureRatio: 'ImdsProxyUpstreamFailureRatioHigh',
  timeouts: 'ImdsProxyUpstreamTimeoutsRising',
  expiring: 'ImdsProxyCredentialsExpiringSoon',
  noRefresh: 'ImdsProxyNoSuccessfulRefresh',
} as const;

// ---------------------------------------------------------------------------------------
// The shipped rules with shorter time windows.
// ---------------------------------------------------------------------------------------

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

function scaledSeconds(duration: string, minimum: number): string {
  const match = /^(\d+)([smhdw])$/.exec(duration);
  if (match === null) throw new Error(`unexpected duration "${duration}" in alerts.yml`);
  return `${Math.max(minimum, Math.ceil((Number(match[1]) * UNIT_SECONDS[match[2]!]!) / TIME_SCALE))}s`;
}

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
}

/** alerts.yml with every `for:` and range window divided by TIME_SCALE; nothing else touched. */
function shortenedRules(text: string): { groups: { name: string; rules: Rule[] }[] } {
  const doc = parse(text) as { groups: { name: string; rules: Rule[] }[] };
  for (const group of doc.groups) {
    for (const rule of group.rules) {
      if (rule.for !== undefined) rule.for = scaledSeconds(rule.for, 1);
      // Ranges keep at least three scrapes, so rate() and increase() have points to use.
      rule.expr = rule.expr.replace(/\[(\d+[smhdw])\]/g, (_, d: string) => `[${scaledSeconds(d, 3)}]`);
    }
  }
  return doc;
}

const withoutRanges = (expr: string) => expr.replace(/\[[^\]]*\]/g, '[]');

// ---------------------------------------------------------------------------------------
// Processes and HTTP.
// ---------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, deadline: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

interface PrometheusProcess {
  url: string;
  child: ChildProcess;
  log: () => string;
}

async function startPrometheus(dir: string, configFile: string): Promise<PrometheusProcess> {
  const port = await freeLoopbackPort();
  const child = spawn(
    PROMETHEUS!,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '' } },
  );
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  return { url: `http://127.0.0.1:${port}`, child, log: () => log };
}

async function api<T>(prometheus: PrometheusProcess, path: string): Promise<T> {
  const res = await fetch(`${prometheus.url}${path}`, { signal: AbortSignal.timeout(3_000) });
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`${path}: ${body.error ?? res.status}`);
  return body.data;
}

interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

function query(prometheus: PrometheusProcess, promql: string, at?: number): Promise<{ resultType: string; result: VectorSample[] }> {
  const time = at === undefined ? '' : `&time=${(at / 1000).toFixed(3)}`;
  return api(prometheus, `/api/v1/query?query=${encodeURIComponent(promql)}${time}`);
}

// ---------------------------------------------------------------------------------------
// The play.
// ---------------------------------------------------------------------------------------

type Phase = 'startup' | 'healthy' | 'slow' | 'down' | 'recovery';

interface AlertSighting {
  phase: Phase;
  at: number;
  alert: string;
  instance: string;
  state: string;
}

describe('alerts and dashboard on a real Prometheus', () => {
  it('rule shortening changes only for: and range windows', () => {
    const shipped = parse(readFileSync(ALERTS_PATH, 'utf8')) as { groups: { rules: Rule[] }[] };
    const short = shortenedRules(readFileSync(ALERTS_PATH, 'utf8'));
    const pairs = shipped.groups.flatMap((g, i) => g.rules.map((r, j) => [r, short.groups[i]!.rules[j]!] as const));
    expect(pairs.length).toBeGreaterThanOrEqual(5);
    for (const [original, shortened] of pairs) {
      expect(withoutRanges(shortened.expr), original.alert).toBe(withoutRanges(original.expr));
      expect({ ...shortened, expr: '', for: '' }).toEqual({ ...original, expr: '', for: '' });
      if (original.for !== undefined) expect(shortened.for).toMatch(/^\d+s$/);
    }
    expect(short.groups[0]!.rules.find((r) => r.alert === ALERTS.timeouts)!.expr).toContain('[4s]');
  });

  it.skipIf(PROMETHEUS === undefined)(
    `fires each alert when it should and no other, and every dashboard query returns series${PROMETHEUS ? '' : ` — skipped: ${SKIP_REASON}`}`,
    async () => {
      const started = Date.now();
      const dir = await mkdtemp(join(tmpdir(), 'prometheus-e2e-'));
      let simOffsetMs = 0;
      const cleanups: (() => Promise<unknown>)[] = [];
      let prometheus: PrometheusProcess | undefined;
      const killPrometheus = () => prometheus?.child.kill('SIGKILL');
      process.once('exit', killPrometheus);
      let stopLoops = false;
      const loops: Promise<void>[] = [];
      try {
        // IMDS for `main`, on a clock the test can set back to hand out short-lived credentials.
        const sim = await startSimulator({ port: 0, roles: [ROLE], clock: { now: () => Date.now() + simOffsetMs, monotonic: () => performance.now() } });
        cleanups.push(() => sim.close());
        const downSim = await startSimulator({ port: 0, roles: [ROLE], faults: { down: true } });
        cleanups.push(() => downSim.close());
        // An IMDS that accepts connections and never answers, as behind a DROP rule or a hop limit.
        const heldSockets = new Set<Socket>();
        const blackHole = createServer((socket) => {
          heldSockets.add(socket);
          socket.on('error', () => {});
        });
        await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
        cleanups.push(async () => {
          for (const socket of heldSockets) socket.destroy();
          await new Promise((resolve) => blackHole.close(resolve));
        });

        const serves: ServeProcess[] = [];
        cleanups.unshift(() => Promise.all(serves.map((s) => s.close())));
        const cacheFile = join(dir, 'warm-start.json');
        await writeWarmStartFile(cacheFile, [
          {
            role: ROLE,
            fetchedAt: Date.now() - 31 * 60_000,
            credentials: {
              accessKeyId: 'ASIAWARMSTARTE2E0001',
              secretAccessKey: randomBytes(30).toString('base64'),
              token: randomBytes(120).toString('base64'),
              expiration: Date.now() + 2 * 3600_000,
              lastUpdated: Date.now() - 31 * 60_000,
              type: 'AWS-HMAC',
            },
          },
        ]);
        const [main, restarted, cold] = await Promise.all([
          // --max-age 1: a refresh every second, so failures show at once and recovery is seen
          // soon; --refresh-before 120: the short-lived credentials below are not yet due.
          spawnServe(sim.url, ['--max-age', '1', '--refresh-before', '120', '--upstream-timeout-ms', '250']).then((s) => (serves.push(s), s)),
          spawnServe(downSim.url, ['--cache-file', cacheFile, '--upstream-timeout-ms', '250'], 'started').then((s) => (serves.push(s), s)),
          spawnServe(`http://127.0.0.1:${(blackHole.address() as AddressInfo).port}`, ['--upstream-timeout-ms', '250'], 'started').then(
            (s) => (serves.push(s), s),
          ),
        ]);
        const instance = {
          main: new URL(main.url).host,
          restarted: new URL(restarted.url).host,
          cold: new URL(cold.url).host,
          dead: `127.0.0.1:${await freeLoopbackPort()}`,
        };

        const rulesFile = join(dir, 'alerts.yml');
        await writeFile(rulesFile, stringify(shortenedRules(readFileSync(ALERTS_PATH, 'utf8'))));
        const configFile = join(dir, 'prometheus.yml');
        await writeFile(
          configFile,
          stringify({
            global: { scrape_interval: SCRAPE_INTERVAL, scrape_timeout: '900ms', evaluation_interval: SCRAPE_INTERVAL },
            rule_files: [rulesFile],
            scrape_configs: [
              { job_name: 'imds-cache-proxy', static_configs: [{ targets: [instance.main, instance.restarted, instance.cold, instance.dead] }] },
            ],
          }),
        );
        prometheus = await startPrometheus(dir, configFile);
        const prom = prometheus;
        await until(`prometheus ready (${prom.log()})`, Date.now() + 15_000, async () => {
          const res = await fetch(`${prom.url}/-/ready`).catch(() => undefined);
          return res?.status === 200 ? true : undefined;
        });
        await until('a first scrape of the main proxy', Date.now() + 10_000, async () =>
          (await query(prom, `up{instance="${instance.main}"} == 1`)).result.length > 0 ? true : undefined,
        );

        // Every 200 ms, which alerts are pending or firing, in which phase.
        let phase: Phase = 'startup';
        const phaseEnds: Partial<Record<Phase, number>> = {};
        const enter = (next: Phase) => {
          phaseEnds[phase] = Date.now();
          phase = next;
        };
        const sightings: AlertSighting[] = [];
        loops.push(
          (async () => {
            while (!stopLoops) {
              const at = Date.now();
              const { alerts } = await api<{ alerts: { labels: Record<string, string>; state: string }[] }>(prom, '/api/v1/alerts').catch(
                () => ({ alerts: [] }),
              );
              for (const a of alerts) sightings.push({ phase, at, alert: a.labels.alertname!, instance: a.labels.instance ?? '', state: a.state });
              await sleep(200);
            }
          })(),
        );
        const active = (alert: string, target: string, state?: string) =>
          sightings.some((s) => s.alert === alert && s.instance === target && (state === undefined || s.state === state));
        // Phases move on what the poller has recorded, so every sighting belongs to its phase.
        const firingNow = (alert: string, target: string) =>
          sightings.some((s) => s.alert === alert && s.instance === target && s.state === 'firing' && s.phase === phase);

        // SDK-like clients on each host: a token now and then, credentials, and a spot
        // interruption poller, whose path is cached for a second only and so reaches IMDS.
        const clients = async (url: string) => {
          const token = async () => {
            const res = await fetch(`${url}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '300' } });
            return { 'x-aws-ec2-metadata-token': await res.text() };
          };
          let headers = await token();
          for (let i = 0; !stopLoops && Date.now() - started < 60_000; i++) {
            const signal = AbortSignal.timeout(3_000);
            await Promise.all([
              fetch(`${url}/latest/meta-data/iam/security-credentials/${ROLE}`, { headers, signal }).then((r) => r.arrayBuffer()),
              fetch(`${url}/latest/meta-data/spot/instance-action`, { headers, signal }).then((r) => r.arrayBuffer()),
            ]).catch(() => undefined);
            if (i % 10 === 9) headers = await token().catch(() => headers);
            await sleep(100);
          }
        };
        loops.push(clients(main.url), clients(cold.url));

        // Healthy.
        enter('healthy');
        await sleep(2_500);

        // IMDS hands out credentials it has not rotated, 15 minutes and SLOW_BUDGET_SECONDS
        // from expiry; the proxy takes them at its next refresh.
        simOffsetMs = (EXPIRING_SOON_SECONDS + SLOW_BUDGET_SECONDS) * 1000 - CREDENTIAL_LIFETIME_MS;
        sim.rotate();
        const shortLived = sim.currentCredentials(ROLE)!;
        const rotatedAt = Date.now();
        await until('the proxy to cache the short-lived credentials', rotatedAt + 5_000, async () => {
          const text = await (await fetch(`${main.url}/metrics`)).text();
          return text.includes(`access_key_id_suffix="${shortLived.accessKeyId.slice(-4)}"`) ? true : undefined;
        });

        // Slow: every upstream request times out.
        enter('slow');
        sim.setFaults({ latencyMs: 1_500 });
        await until(
          `${ALERTS.timeouts} and ${ALERTS.failureRatio} firing within the slow phase`,
          rotatedAt + (SLOW_BUDGET_SECONDS - 1) * 1000,
          () => (firingNow(ALERTS.timeouts, instance.main) && firingNow(ALERTS.failureRatio, instance.main) ? true : undefined),
        );

        // Down: connections reset; the cached credentials cross 15 minutes to expiry.
        enter('down');
        sim.setFaults({ latencyMs: 0, down: true });
        await until(`${ALERTS.expiring} firing while IMDS is down`, rotatedAt + (SLOW_BUDGET_SECONDS + 8) * 1000, () =>
          firingNow(ALERTS.expiring, instance.main) ? true : undefined,
        );

        // Recovery: IMDS back, with freshly rotated credentials.
        enter('recovery');
        simOffsetMs = 0;
        sim.rotate();
        sim.resetFaults();
        await until(`every alert on the main proxy to clear (${Math.round((Date.now() - started) / 1000)} s in)`, started + 52_000, async () => {
          const { alerts } = await api<{ alerts: { labels: Record<string, string> }[] }>(prom, '/api/v1/alerts');
          return alerts.some((a) => a.labels.instance === instance.main) ? undefined : true;
        });
        phaseEnds.recovery = Date.now();
        if (process.env.E2E_VERBOSE) console.log(Object.entries(phaseEnds).map(([p, t]) => `${p} ends at ${((t - started) / 1000).toFixed(1)} s`).join(', '));
        stopLoops = true;
        await Promise.all(loops);

        // main: each alert of the incident went pending, then firing, in its phase...
        const firstSeen = (alert: string, target: string, state: string) =>
          sightings.find((s) => s.alert === alert && s.instance === target && s.state === state);
        for (const [alert, inPhase] of [
          [ALERTS.timeouts, 'slow'],
          [ALERTS.failureRatio, 'slow'],
          [ALERTS.expiring, 'down'],
        ] as const) {
          const pending = firstSeen(alert, instance.main, 'pending');
          const firing = firstSeen(alert, instance.main, 'firing');
          expect(pending?.phase, `${alert} pending`).toBe(inPhase);
          expect(firing?.phase, `${alert} firing`).toBe(inPhase);
          expect(pending!.at, `${alert} pending before firing`).toBeLessThan(firing!.at);
        }
        // ...and nothing else: quiet while healthy, no expiry alert before the down phase, and
        // never an alert about a proxy that was up and refreshing.
        expect(sightings.filter((s) => s.instance === instance.main && s.phase === 'healthy')).toEqual([]);
        expect(sightings.filter((s) => s.instance === instance.main && s.alert === ALERTS.expiring && s.phase !== 'down' && s.phase !== 'recovery')).toEqual([]);
        expect(active(ALERTS.down, instance.main)).toBe(false);
        expect(active(ALERTS.noRefresh, instance.main)).toBe(false);

        // restarted: no successful refresh in 31 minutes, credentials still hours from expiry.
        expect(active(ALERTS.noRefresh, instance.restarted, 'pending')).toBe(true);
        expect(active(ALERTS.noRefresh, instance.restarted, 'firing')).toBe(true);
        expect(active(ALERTS.expiring, instance.restarted)).toBe(false);
        expect(active(ALERTS.down, instance.restarted)).toBe(false);
        expect(active(ALERTS.timeouts, instance.restarted)).toBe(false);

        // cold: started against an IMDS that never answers; only its own token PUTs go out, and
        // they count, so the failure-ratio and timeout alerts fire. Nothing about credentials.
        for (const alert of [ALERTS.failureRatio, ALERTS.timeouts]) {
          expect(active(alert, instance.cold, 'pending'), `${alert} pending on the cold proxy`).toBe(true);
          expect(active(alert, instance.cold, 'firing'), `${alert} firing on the cold proxy`).toBe(true);
        }
        for (const alert of [ALERTS.expiring, ALERTS.noRefresh, ALERTS.down]) expect(active(alert, instance.cold), alert).toBe(false);

        // dead: down, and nothing else (it exposes no series).
        expect(active(ALERTS.down, instance.dead, 'pending')).toBe(true);
        expect(active(ALERTS.down, instance.dead, 'firing')).toBe(true);
        expect(new Set(sightings.filter((s) => s.instance === instance.dead).map((s) => s.alert))).toEqual(new Set([ALERTS.down]));

        // Every dashboard query, as Grafana would send it for the main proxy, at the end of
        // each phase: valid PromQL with series behind it.
        const dashboard = JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as { panels: DashboardPanel[] };
        const exprs = panelsOf(dashboard.panels).flatMap((p) => (p.targets ?? []).map((t) => t.expr).filter((e): e is string => !!e));
        expect(exprs.length).toBeGreaterThanOrEqual(10);
        const results = new Map<string, VectorSample[]>();
        for (const p of ['healthy', 'slow', 'down', 'recovery'] as const) {
          const at = phaseEnds[p]!;
          for (const expr of exprs) {
            const promql = grafanaQuery(expr, instance.main, Math.ceil((at - started) / 1000));
            const { result } = await query(prom, promql, at);
            expect(result.length, `${promql} at the end of ${p}`).toBeGreaterThan(0);
            results.set(`${p} ${expr}`, result);
          }
        }
        // The panels show the incident: timeouts while slow, stale serving, expiry under 15 minutes.
        const valueOf = (p: Phase, exprPart: string, match: (m: Record<string, string>) => boolean = () => true) => {
          const expr = exprs.find((e) => e.includes(exprPart))!;
          return Number(results.get(`${p} ${expr}`)!.find((s) => match(s.metric))?.value[1] ?? Number.NaN);
        };
        expect(valueOf('healthy', 'sum by (outcome) (rate(imds_proxy_upstream_requests_total', (m) => m.outcome === 'timeout')).toBe(0);
        expect(valueOf('slow', 'sum by (outcome) (rate(imds_proxy_upstream_requests_total', (m) => m.outcome === 'timeout')).toBeGreaterThan(0);
        expect(valueOf('slow', 'result="stale"')).toBeGreaterThan(0);
        expect(valueOf('down', 'imds_proxy_credentials_expiration_timestamp_seconds')).toBeLessThan(EXPIRING_SOON_SECONDS);
        expect(valueOf('recovery', 'imds_proxy_credentials_expiration_timestamp_seconds')).toBeGreaterThan(5 * 3600);
        // docs/metrics.md's answers to the three questions are PromQL that works too.
        const docQueries = promqlInDocs(readFileSync(METRICS_DOC_PATH, 'utf8'));
        expect(docQueries.length).toBeGreaterThanOrEqual(8);
        for (const promql of docQueries) {
          const { result } = await query(prom, promql, phaseEnds.slow);
          expect(result.length, promql).toBeGreaterThan(0);
        }
        expect(Date.now() - started).toBeLessThan(60_000);
      } catch (error) {
        if (prometheus !== undefined) console.error(`prometheus log tail:\n${prometheus.log()}`);
        throw error;
      } finally {
        stopLoops = true;
        await Promise.allSettled(loops);
        if (prometheus !== undefined && prometheus.child.exitCode === null && prometheus.child.signalCode === null) {
          const exited = new Promise((resolve) => prometheus!.child.once('exit', resolve));
          prometheus.child.kill('SIGKILL');
          await exited;
        }
        process.off('exit', killPrometheus);
        for (const cleanup of cleanups) await cleanup().catch(() => undefined);
        await rm(dir, { recursive: true, force: true });
      }
    },
    60_000,
  );
});

interface DashboardPanel {
  type?: string;
  targets?: { expr?: string }[];
  panels?: DashboardPanel[];
}

function panelsOf(panels: DashboardPanel[]): DashboardPanel[] {
  return panels.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]);
}

/** The backticked PromQL in docs/metrics.md's "Three questions" section. */
function promqlInDocs(markdown: string): string[] {
  const section = markdown.slice(markdown.indexOf('## Three questions'), markdown.indexOf('## Labels'));
  return [...section.matchAll(/`([^`]*imds_proxy_[^`]*)`/g)].map((m) => m[1]!).filter((q) => /^[a-z_]+[ ({]/.test(q) || /^imds_proxy_\w+$/.test(q));
}

/** A dashboard expression as Grafana sends it: its macros and variables filled in. */
function grafanaQuery(expr: string, instance: string, rangeSeconds: number): string {
  return expr
    .replace(/\$\{?__rate_interval\}?/g, RATE_INTERVAL)
    .replace(/\$\{?__interval\}?/g, SCRAPE_INTERVAL)
    .replace(/\$\{?__range\}?/g, `${rangeSeconds}s`)
    .replace(/\$\{?instance\}?/g, instance.replace(/[.]/g, '\\\\.'))
    .replace(/\$\{?\w+\}?/g, '.*');
}
