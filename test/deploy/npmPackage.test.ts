import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The package as users get it: `npm pack`, installed from the tarball into an empty folder,
// run through the bin npm links. Needs dist/ (npm test builds it first) and npm's cache or
// registry for the runtime dependencies. Everything it starts listens on 127.0.0.1.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  bin: Record<string, string>;
  engines: Record<string, string>;
};
const NPM_ENV = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
const PATH = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`;

function npm(args: string[], cwd: string) {
  const r = spawnSync('npm', args, { cwd, env: NPM_ENV, encoding: 'utf8', timeout: 100_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

interface Started {
  stdout: () => string;
  exited: Promise<number | string>;
  kill: (signal: NodeJS.Signals) => void;
}
function start(bin: string, args: string[]): Started {
  const child = spawn(bin, args, { env: { PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { stdout: () => out, exited, kill: (s) => child.kill(s) };
}
async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('the npm package', () => {
  let scratch: string;
  let tarball: string;
  let packedFiles: string[];
  let bin: string;
  let globalPrefix: string;
  const running: Started[] = [];

  beforeAll(() => {
    expect(existsSync(join(ROOT, 'dist/cli.js')), 'dist/cli.js: run `npm run build` (npm test does) first').toBe(true);
    scratch = mkdtempSync(join(tmpdir(), 'imds-npm-pack-'));
    const packDir = join(scratch, 'pack');
    const installDir = join(scratch, 'install');
    spawnSync('mkdir', ['-p', packDir, installDir]);

    const packed = npm(['pack', '--json', '--pack-destination', packDir], ROOT);
    expect(packed.status, packed.stderr).toBe(0);
    const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    tarball = join(packDir, info!.filename);
    packedFiles = info!.files.map((f) => f.path);

    writeFileSync(join(installDir, 'package.json'), JSON.stringify({ name: 'install-check', private: true }));
    const installed = npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', tarball], installDir);
    expect(installed.status, installed.stderr).toBe(0);
    bin = join(installDir, 'node_modules/.bin/imds-cache-proxy');

    // As the deploy docs say to install it, `npm install -g`, into a scratch global prefix.
    globalPrefix = join(scratch, 'global');
    const global = npm(['install', '-g', '--prefix', globalPrefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], scratch);
    expect(global.status, global.stderr).toBe(0);
  }, 180_000);

  afterAll(async () => {
    for (const p of running) p.kill('SIGKILL');
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('declares its bin and engines', () => {
    expect(PKG.bin).toEqual({ 'imds-cache-proxy': 'dist/cli.js' });
    expect(PKG.engines.node).toBe('>=20');
    expect(readFileSync(join(ROOT, PKG.bin['imds-cache-proxy']!), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('ships what runs and the deploy files, and nothing of the sources, tests or dev tooling', () => {
    for (const needed of [
      'package.json',
      'README.md',
      'dist/cli.js',
      'deploy/systemd/imds-cache-proxy.service',
      'deploy/systemd/imds-cache-proxy.env',
      'deploy/host/imds-redirect.sh',
    ]) {
      expect(packedFiles, needed).toContain(needed);
    }
    const unwanted = packedFiles.filter(
      (f) => /^(src|test|node_modules|\.ci|\.git)\//.test(f) || f.startsWith('dist/bench/') || f.endsWith('.map') || f.endsWith('.ts'),
    );
    expect(unwanted).toEqual([]);
  });

  it('ships every doc the README, deploy/README.md and the alerts\' runbook links point at', () => {
    const linked = new Set<string>();
    // Markdown links, relative to their file; the runbook annotations, relative to the package.
    const sources = [
      ['README.md', '', /\]\(((?:\.\.\/)*docs\/[\w.-]+\.md)/g],
      ['deploy/README.md', 'deploy/', /\]\(((?:\.\.\/)*docs\/[\w.-]+\.md)/g],
      ['deploy/prometheus/alerts.yml', '', /runbook: "(docs\/[\w.-]+\.md)/g],
    ] as const;
    for (const [file, base, links] of sources) {
      for (const m of readFileSync(join(ROOT, file), 'utf8').matchAll(links)) linked.add(join(base, m[1]!));
    }
    expect([...linked]).toContain('docs/metrics.md');
    for (const doc of linked) expect(packedFiles, `${doc} is linked but not in the package`).toContain(doc);
  });

  it('npm install -g puts the command and the deploy files where the systemd units look, relative to npm\'s prefix', () => {
    const unitText = (name: string) => readFileSync(join(ROOT, 'deploy/systemd', name), 'utf8');
    const execStart = /^ExecStart=(\S+) serve$/m.exec(unitText('imds-cache-proxy.service'))?.[1];
    const script = /^ExecStart=\/bin\/bash (\S+) install /m.exec(unitText('imds-cache-proxy-redirect.service'))?.[1];
    expect(execStart).toBeDefined();
    expect(script).toBeDefined();
    // The units assume npm's usual global prefix; npm itself says where that puts things.
    const usualPrefix = npm(['prefix', '-g', '--prefix', '/usr/local'], scratch).stdout.trim();
    expect(usualPrefix).toBe('/usr/local');
    const installedBin = join(globalPrefix, 'bin/imds-cache-proxy');
    const installedScript = join(npm(['root', '-g', '--prefix', globalPrefix], scratch).stdout.trim(), 'imds-cache-proxy/deploy/host/imds-redirect.sh');
    expect(relative(usualPrefix, execStart!)).toBe(relative(globalPrefix, installedBin));
    expect(relative(usualPrefix, script!)).toBe(relative(globalPrefix, installedScript));
    expect(existsSync(installedScript)).toBe(true);
    expect(existsSync(join(dirname(installedScript), '../../docs/metrics.md'))).toBe(true);
    const r = spawnSync(installedBin, ['--version'], { env: { PATH }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(PKG.version);
  });

  it('installs from the tarball and `imds-cache-proxy --version` prints the package version', () => {
    const r = spawnSync(bin, ['--version'], { env: { PATH }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(PKG.version);
  });

  it(
    'the installed command serves credentials from the installed simulator, then exits 0 on SIGTERM',
    async () => {
      const sim = start(bin, ['simulate', '--listen', '127.0.0.1:0', '--control-listen', '127.0.0.1:0']);
      running.push(sim);
      const simUrl = await waitFor('the simulator', () => /IMDS simulator on (http:\/\/127\.0\.0\.1:\d+)/.exec(sim.stdout())?.[1]);

      const proxy = start(bin, ['serve', '--listen', '127.0.0.1:0', '--upstream', simUrl]);
      running.push(proxy);
      const url = await waitFor('the proxy to start', () => {
        for (const line of proxy.stdout().split('\n')) {
          if (!line.startsWith('{')) continue;
          const event = JSON.parse(line) as { event?: string; listen?: string };
          if (event.event === 'started') return event.listen;
        }
        return undefined;
      });
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

      await waitFor('/readyz 200', async () => ((await fetch(`${url}/readyz`)).status === 200 ? true : undefined));
      const tokenResponse = await fetch(`${url}/latest/api/token`, {
        method: 'PUT',
        headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '21600' },
      });
      expect(tokenResponse.status).toBe(200);
      const token = await tokenResponse.text();
      const headers = { 'X-aws-ec2-metadata-token': token };
      const list = await fetch(`${url}/latest/meta-data/iam/security-credentials/`, { headers });
      expect(list.status).toBe(200);
      const role = await list.text();
      expect(role).toBe('demo-role');
      const creds = await fetch(`${url}/latest/meta-data/iam/security-credentials/${role}`, { headers });
      expect(creds.status).toBe(200);
      const doc = JSON.parse(await creds.text()) as Record<string, string>;
      expect(doc.Code).toBe('Success');
      expect(doc.AccessKeyId).toMatch(/^ASIA/);
      expect(Date.parse(doc.Expiration!)).toBeGreaterThan(Date.now());

      proxy.kill('SIGTERM');
      expect(await proxy.exited).toBe(0);
      sim.kill('SIGTERM');
      expect(await sim.exited).toBe(0);
    },
    60_000,
  );
});
