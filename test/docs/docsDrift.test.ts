import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeConfig, SERVE_OPTIONS, type ProxyConfig } from '../../src/config/proxyConfig.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';
import { runCli, type CliRun } from '../support/cliProcess.js';

// What the docs name, held to what the code does, so the next drift fails here with the name
// that drifted: the README's configuration table against `serve --help` and the parser;
// every metric, its labels and their values in README.md and docs/metrics.md against a live
// /metrics of a real `serve`; every log event the docs mention against the code.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');
const README = read('README.md');
const METRICS_DOC = read('docs/metrics.md');

/** The lines of a markdown section, from its heading to the next heading of that level or above. */
function section(text: string, heading: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === heading);
  expect(start, `heading "${heading}" not found`).toBeGreaterThanOrEqual(0);
  const level = /^#+/.exec(heading)![0].length;
  const end = lines.findIndex((l, i) => i > start && /^#+ /.test(l) && /^#+/.exec(l)![0].length <= level);
  return lines.slice(start + 1, end === -1 ? undefined : end).join('\n');
}
/** The cells of each data row of the markdown tables in `text` (header and rule rows dropped). */
function tableRows(text: string): string[][] {
  const rows = text
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .map((l) => l.replace(/\\\|/g, '\u0000').split('|').slice(1, -1).map((c) => c.replace(/\u0000/g, '|').trim()));
  return rows.filter((r, i) => !/^-+$/.test(r[0] ?? '') && !/^-+$/.test(rows[i + 1]?.[0] ?? ''));
}
const backticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
const withoutAsides = (cell: string) => cell.replace(/\([^()]*\)/g, '');

describe("README's configuration table", () => {
  const rows = tableRows(section(README, '### Configuration')).map(([flag = '', variable = '', byDefault = '']) => ({
    flag: /^`--([a-z-]+)/.exec(flag)?.[1] ?? flag,
    variable: /^`([A-Z_]+)`/.exec(variable)?.[1] ?? variable,
    byDefault: /^`([^`]+)`$/.exec(byDefault)?.[1],
  }));
  const help = runCli(['serve', '--help']);
  let helpText = '';
  beforeAll(async () => {
    expect(await help.exited).toBe(0);
    helpText = help.stdout();
  });

  it('lists every serve option, and only those, each with its own variable', () => {
    const documented = rows.map((r) => r.flag);
    const options = Object.keys(SERVE_OPTIONS);
    for (const name of options) expect(documented, `--${name} is a serve option missing from README's configuration table`).toContain(name);
    for (const name of documented) expect(options, `README documents --${name}, which serve does not have`).toContain(name);
    for (const { flag, variable } of rows) {
      expect(variable, `README gives --${flag} the variable ${variable}`).toBe(SERVE_OPTIONS[flag as keyof typeof SERVE_OPTIONS].env);
    }
  });

  it('every flag and variable it lists is in `serve --help`, together', () => {
    for (const { flag, variable } of rows) {
      const line = helpText.split('\n').findIndex((l) => l.startsWith(`  --${flag} `));
      expect(line, `--${flag} is not in serve --help`).toBeGreaterThanOrEqual(0);
      expect(helpText.split('\n')[line + 1], `serve --help does not name ${variable} under --${flag}`).toContain(`[${variable}]`);
    }
  });

  it('every default it states is the parser\'s default, given as the flag or as the variable', () => {
    const strip = ({ sources: _sources, ...config }: ProxyConfig) => config;
    const defaults = strip(parseServeConfig([], {}));
    const concrete = rows.filter((r) => r.byDefault !== undefined);
    expect(concrete.length, 'no defaults found in the table').toBeGreaterThan(8);
    for (const { flag, variable, byDefault } of concrete) {
      expect(strip(parseServeConfig([`--${flag}=${byDefault}`], {})), `README's default for --${flag} ("${byDefault}") is not the parser's`).toEqual(defaults);
      expect(strip(parseServeConfig([], { [variable]: byDefault })), `README's default for ${variable} ("${byDefault}") is not the parser's`).toEqual(defaults);
    }
  });
});

interface Series {
  name: string;
  labels: Record<string, string>;
}
/** Family name and type from `# TYPE`, and every sample's labels. */
function parseExposition(text: string) {
  const types = new Map<string, string>();
  const samples: Series[] = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (sample) {
      const labels = Object.fromEntries([...(sample[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
      samples.push({ name: sample[1]!, labels });
    }
  }
  return { types, samples };
}
/** The family a sample belongs to (histograms' _bucket/_sum/_count folded in). */
const familyOf = (name: string, types: Map<string, string>) =>
  types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');

/** Labels whose values are open by nature: numbers, role names, key id suffixes, the version, buckets. */
const OPEN_LABELS = new Set(['status', 'role', 'access_key_id_suffix', 'version', 'le', 'quantile']);

describe('metrics: README.md and docs/metrics.md against a live /metrics', () => {
  let sim: RunningSimulator;
  let proxy: CliRun;
  let scratch: string;
  let exposition = '';
  const families = new Map<string, Set<string>>();
  const liveValues = new Map<string, Set<string>>();

  beforeAll(async () => {
    sim = await startSimulator({ port: 0, controlPort: 0, extendedCredentials: true });
    scratch = mkdtempSync(join(tmpdir(), 'imds-docs-drift-'));
    proxy = runCli([
      'serve', '--listen', '127.0.0.1:0', '--upstream', sim.url, '--metrics-listen', '127.0.0.1:0',
      '--container-auth-token-file', join(scratch, 'token'), '--max-age', '1', '--upstream-attempts', '1',
    ]);
    const started = await proxy.event('started');
    const url = String(started.listen);
    const metricsUrl = String(started.metrics);
    await proxy.event('ready');
    const containerToken = readFileSync(join(scratch, 'token'), 'utf8');

    // Exercise every route, method and outcome a client can cause, so each label value exists.
    const put = (headers: Record<string, string>) => fetch(`${url}/latest/api/token`, { method: 'PUT', headers }).then((r) => r.text());
    const token = await put({ 'x-aws-ec2-metadata-token-ttl-seconds': '21600' });
    await put({ 'x-aws-ec2-metadata-token-ttl-seconds': '0' }); // bad_ttl
    await put({ 'x-aws-ec2-metadata-token-ttl-seconds': '60', 'x-forwarded-for': '10.0.0.1' }); // forwarded
    const get = (path: string, headers: Record<string, string> = { 'x-aws-ec2-metadata-token': token }, method = 'GET') =>
      fetch(`${url}${path}`, { method, headers }).then((r) => r.text());
    const role = await get('/latest/meta-data/iam/security-credentials/');
    const paths = [
      `/latest/meta-data/iam/security-credentials/${role}`,
      `/latest/meta-data/iam/security-credentials-extended/${role}`,
      '/latest/meta-data/iam/info',
      '/latest/meta-data/instance-id',
      '/latest/meta-data/instance-id', // a metadata cache hit
      '/latest/dynamic/instance-identity/document',
      '/latest/user-data',
      '/no-such-path',
    ];
    for (const path of paths) await get(path);
    // Concurrent requests for one metadata path: one fetch, the others join it.
    await Promise.all(Array.from({ length: 5 }, () => get('/latest/meta-data/placement/availability-zone')));
    await get('/latest/meta-data/instance-id', {}); // missing token
    await get('/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': 'not-a-token' }); // invalid
    for (const method of ['HEAD', 'POST', 'DELETE', 'OPTIONS', 'PATCH', 'PROPFIND']) await get('/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': token }, method);
    await get('/container-credentials', { authorization: containerToken });
    await get('/healthz', {});
    await get('/readyz', {});
    await get('/metrics', {});
    // With --max-age 1, a refresh within seconds finds the same credentials: `unchanged`.
    const deadline = Date.now() + 5_000;
    do {
      exposition = await fetch(metricsUrl).then((r) => r.text());
      if (/^imds_proxy_credentials_refreshes_total\{[^}]*outcome="unchanged"[^}]*\} [1-9]/m.test(exposition)) break;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < deadline);
    const { types, samples } = parseExposition(exposition);
    for (const { name, labels } of samples) {
      const family = familyOf(name, types);
      if (!family.startsWith('imds_proxy_')) continue;
      const names = families.get(family) ?? new Set<string>();
      for (const [label, value] of Object.entries(labels)) {
        if (label === 'le') continue;
        names.add(label);
        if (!OPEN_LABELS.has(label)) liveValues.set(label, (liveValues.get(label) ?? new Set()).add(value));
      }
      families.set(family, names);
    }
  }, 60_000);

  afterAll(async () => {
    proxy?.child.kill('SIGTERM');
    await proxy?.exited;
    await sim?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  for (const [doc, text, labelColumn] of [
    ['README.md', () => section(README, '## Metrics and logs'), 1],
    ['docs/metrics.md', () => section(METRICS_DOC, '## Series'), 2],
  ] as const) {
    it(`${doc}: every imds_proxy_ series it lists is served, with the labels it says, and every one served is listed`, () => {
      const rows = tableRows(text())
        .filter((r) => /^`imds_proxy_\w+`$/.test(r[0] ?? ''))
        .map((r) => ({ name: backticked(r[0]!)[0]!, labels: backticked(r[labelColumn] ?? '') }));
      expect(rows.length, `no series table found in ${doc}`).toBeGreaterThan(5);
      for (const { name, labels } of rows) {
        expect(families.has(name), `${doc} lists ${name}, which /metrics does not serve`).toBe(true);
        expect(labels.sort(), `${doc}: the labels of ${name}`).toEqual([...families.get(name)!].sort());
      }
      for (const name of families.keys()) expect(rows.map((r) => r.name), `/metrics serves ${name}, which ${doc} does not list`).toContain(name);
    });
  }

  it('docs/metrics.md: every value its label table gives exists in /metrics, and every value served is in the table', () => {
    const documented = new Map<string, Set<string>>();
    for (const [labelCell = '', valuesCell = ''] of tableRows(section(METRICS_DOC, '## Labels'))) {
      const label = backticked(labelCell)[0];
      if (label === undefined || OPEN_LABELS.has(label)) continue;
      const values = backticked(withoutAsides(valuesCell));
      documented.set(label, new Set([...(documented.get(label) ?? []), ...values]));
    }
    expect([...documented.keys()].sort()).toEqual(['cache', 'method', 'outcome', 'reason', 'result', 'route']);
    for (const [label, values] of documented) {
      for (const value of values) expect([...(liveValues.get(label) ?? [])], `docs/metrics.md gives ${label}="${value}", which /metrics never shows`).toContain(value);
    }
    for (const [label, values] of liveValues) {
      for (const value of values) expect([...(documented.get(label) ?? [])], `/metrics shows ${label}="${value}", which docs/metrics.md's label table does not give`).toContain(value);
    }
  });

  it('README.md: every label value its series table names exists in /metrics', () => {
    const everyValue = new Set([...liveValues.values()].flatMap((s) => [...s]));
    const labelNames = new Set([...families.values()].flatMap((s) => [...s]));
    const rows = tableRows(section(README, '## Metrics and logs')).filter((r) => /^`imds_proxy_\w+`$/.test(r[0] ?? ''));
    for (const [name = '', , meaning = ''] of rows) {
      const words = backticked(withoutAsides(meaning)).flatMap((w) => w.split(/[\s/]+/));
      for (const word of words.filter((w) => !labelNames.has(w))) {
        expect([...everyValue], `README's row for ${name.replace(/`/g, '')} names "${word}", which no label of /metrics has`).toContain(word);
      }
    }
  });
});

/**
 * Log event names in the code: the string literals of every `event:` property in src/, and
 * of the first argument wherever a function taking `event: string` is called.
 */
function codeEvents(): Set<string> {
  const events = new Set<string>();
  const literals = (expression: string) => [...expression.matchAll(/'([a-z_]+)'/g)].map((l) => l[1]!);
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
  for (const file of walk(join(ROOT, 'src'))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\bevent: ([^,}\n]+)/g)) literals(m[1]!).forEach((e) => events.add(e));
    for (const [, fn] of text.matchAll(/(\w+)\(event: string\b/g)) {
      for (const call of text.matchAll(new RegExp(`\\b${fn}\\(([^;{()]*?),\\s*\\{`, 'g'))) literals(call[1]!).forEach((e) => events.add(e));
    }
  }
  return events;
}

/** Every document an operator reads. */
function docs(): [string, string][] {
  const files = ['README.md', 'deploy/README.md', 'deploy/kubernetes/README.md', 'deploy/prometheus/alerts.yml'];
  for (const f of readdirSync(join(ROOT, 'docs'))) if (f.endsWith('.md')) files.push(`docs/${f}`);
  return files.map((f) => [f, read(f)]);
}

/**
 * Event names a document mentions: `x` (or `x` / `y`) followed by "log"/"in the logs",
 * "event `x`", and the words of a `journalctl ... | grep` pattern.
 */
function mentionedEvents(text: string): string[] {
  const found: string[] = [];
  const flat = text.replace(/\s+/g, ' ');
  for (const m of flat.matchAll(/((?:`[a-z]+(?:_[a-z]+)+`(?: ?(?:\/|,|and|or) ?)?)+) (?:log\b|logs\b|log events?\b|in the logs?\b|events?\b)/g)) found.push(...backticked(m[1]!));
  for (const m of flat.matchAll(/\bevents? `([a-z]+(?:_[a-z]+)*)`/g)) found.push(m[1]!);
  for (const m of flat.matchAll(/journalctl[^|"]*\| ?grep (?:-E )?'?([a-z_|]+)'?/g)) found.push(...m[1]!.split('|').filter((w) => w.includes('_')));
  return found;
}

describe('log events: the docs against the code', () => {
  const inCode = codeEvents();

  it("README's list of events is exactly the events the code logs", () => {
    const paragraph = /with an `event` field to filter on:([\s\S]*?)\n\n/.exec(README)?.[1];
    expect(paragraph, "README's event list (\"with an `event` field to filter on: ...\") not found").toBeDefined();
    const listed = new Set(backticked(paragraph!).filter((w) => /^[a-z]+(_[a-z]+)*$/.test(w) && !['debug', 'info', 'warn'].includes(w)));
    for (const event of listed) expect([...inCode], `README lists the event "${event}", which no code logs`).toContain(event);
    for (const event of inCode) expect([...listed], `the code logs the event "${event}", which README's event list does not name`).toContain(event);
  });

  it('every event another document mentions is one the code logs', () => {
    const checked: string[] = [];
    for (const [file, text] of docs()) {
      for (const event of mentionedEvents(text)) {
        expect([...inCode], `${file} mentions the log event "${event}", which no code logs`).toContain(event);
        checked.push(event);
      }
    }
    // The finder itself must keep finding what is there today, or this test checks nothing.
    expect(checked).toEqual(expect.arrayContaining(['credential_refresh_failed', 'upstream_degraded', 'upstream_recovered']));
  });
});
