import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { formatListen, parseListen, parseServeConfig, SERVE_OPTIONS } from '../../src/config/proxyConfig.js';
import { takeInheritedListeners } from '../../src/server/inheritedListeners.js';
import { silentLogger } from '../../src/runtime/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';

const DIR = fileURLToPath(new URL('../../deploy/systemd/', import.meta.url));
const UNIT_PATH = join(DIR, 'imds-cache-proxy.service');
const UNIT_TEXT = readFileSync(UNIT_PATH, 'utf8');
const ENV_TEXT = readFileSync(join(DIR, 'imds-cache-proxy.env'), 'utf8');

const has = (cmd: string, ...args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const HAS_ANALYZE = has('systemd-analyze', '--version');
const HAS_SYSUSERS = has('systemd-sysusers', '--version');
const HAS_CURL = has('curl', '--version');
const SKIP_ANALYZE = 'systemd-analyze not installed (apt-get install systemd); CI installs it';
const SKIP_SYSUSERS = 'systemd-sysusers not installed (apt-get install systemd); CI installs it';
const SKIP_CURL = 'curl not installed (apt-get install curl): the unit\'s readiness check runs it';
const note = (ok: boolean, why: string) => (ok ? '' : ` — skipped: ${why}`);

type Unit = Record<string, Record<string, string[]>>;

/** A systemd unit file: sections of keys, each with every value it was given, in order. */
function parseUnit(text: string): Unit {
  const unit: Unit = {};
  let section: Record<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = unit[header[1]!] ??= {};
      continue;
    }
    expect(line.endsWith('\\'), `no line continuations expected: ${line}`).toBe(false);
    const eq = line.indexOf('=');
    expect(eq, `not KEY=VALUE: ${line}`).toBeGreaterThan(0);
    expect(section, `key outside a section: ${line}`).toBeDefined();
    (section![line.slice(0, eq)] ??= []).push(line.slice(eq + 1));
  }
  return unit;
}

/** An environment file's VAR=value lines (systemd's simple form: no quotes, no expansion). */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    expect(match, `not VAR=value: ${line}`).not.toBeNull();
    expect(match![2], `${match![1]}: keep values unquoted`).not.toMatch(/^["']/);
    env[match![1]!] = match![2]!;
  }
  return env;
}

const SOCKET_UNITS = ['imds-cache-proxy.socket', 'imds-cache-proxy-metrics.socket'];
const socketUnit = (name: string) => parseUnit(readFileSync(join(DIR, name), 'utf8'));

const unit = parseUnit(UNIT_TEXT);
const service = unit.Service ?? {};
const one = (key: string) => {
  const values = service[key];
  expect(values, `[Service] ${key}=`).toBeDefined();
  return values![values!.length - 1]!;
};

/** The unit's environment as the service sees it: Environment= lines, then the file wins. */
function serviceEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const assignment of service.Environment ?? []) {
    const eq = assignment.indexOf('=');
    env[assignment.slice(0, eq)] = assignment.slice(eq + 1).replaceAll('%t', '/run');
  }
  return { ...env, ...parseEnvFile(ENV_TEXT) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Runs the unit's ExecStartPost= readiness command, with IMDS_PROXY_LISTEN substituted. */
function runReadinessCheck(listen: string): Promise<{ code: number | null; ms: number; stderr: string }> {
  const words = one('ExecStartPost').split(/\s+/).map((w) => w.replace('${IMDS_PROXY_LISTEN}', listen));
  const t0 = Date.now();
  const child = spawn(words[0]!, words.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, ms: Date.now() - t0, stderr })));
}

describe('deploy/systemd/imds-cache-proxy.service', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('has the sandbox the issue asks for, and nothing that would break Node', () => {
    const expected: Record<string, string> = {
      DynamicUser: 'yes',
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
      CapabilityBoundingSet: '',
      AmbientCapabilities: '',
      UMask: '0077',
    };
    for (const [key, value] of Object.entries(expected)) expect(one(key), key).toBe(value);
    expect(one('MemoryMax')).toMatch(/^\d+[KMG]$/);
    // V8's JIT writes executable memory: MemoryDenyWriteExecute=yes would kill the proxy.
    expect(service.MemoryDenyWriteExecute).toBeUndefined();
    // A blocked system call must fail with an error Node handles, not kill the process.
    expect(one('SystemCallErrorNumber')).toBe('EPERM');
    // The static user (created by the sysusers file) keeps the uid stable for the host redirect.
    expect(one('User')).toBe('imds-cache-proxy');
  });

  it('restarts always, never gives up, and stops within the proxy\'s 5 s drain', () => {
    expect(one('Restart')).toBe('always');
    expect(unit.Unit?.StartLimitIntervalSec?.[0]).toBe('0');
    expect(Number(one('TimeoutStopSec'))).toBeGreaterThan(5);
    expect(one('Type')).toBe('exec');
    expect(one('ExecStart')).toMatch(/^\/\S+\/imds-cache-proxy serve$/);
    expect(unit.Install?.WantedBy).toEqual(['multi-user.target']);
  });

  it('keeps the warm-start file in its RuntimeDirectory, private, across restarts', () => {
    const env = serviceEnvironment();
    const dir = one('RuntimeDirectory');
    expect(env.IMDS_PROXY_CACHE_FILE).toBe(`/run/${dir}/credentials.json`);
    expect(one('RuntimeDirectoryMode')).toBe('0700');
    expect(one('RuntimeDirectoryPreserve')).toBe('restart');
  });

  it('its environment (unit plus file) is a valid, loopback-only proxy configuration', () => {
    const env = serviceEnvironment();
    const known = new Set(Object.values(SERVE_OPTIONS).map((o) => o.env));
    for (const name of Object.keys(env)) expect(known, `${name} is not a serve option`).toContain(name);
    const config = parseServeConfig([], env);
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 8169 });
    expect(config.upstream).toBe('http://169.254.169.254');
    expect(config.clientTokens).toBe('required');
    expect(config.cacheFile).toBe('/run/imds-cache-proxy/credentials.json');
    // The unit's own default and the file agree, so the readiness check looks where the proxy listens.
    expect(service.Environment).toContain(`IMDS_PROXY_LISTEN=${parseEnvFile(ENV_TEXT).IMDS_PROXY_LISTEN}`);
  });

  it('the readiness check is bounded below TimeoutStartSec and probes /readyz where the proxy listens', () => {
    const post = one('ExecStartPost');
    expect(post).toContain('http://${IMDS_PROXY_LISTEN}/readyz');
    expect(post).toMatch(/^\/usr\/bin\/curl /);
    expect(post).toContain('--fail');
    expect(post).toContain('--retry-connrefused');
    const maxTime = Number(/--retry-max-time (\d+)/.exec(post)?.[1]);
    const perTry = Number(/--max-time (\d+)/.exec(post)?.[1]);
    expect(maxTime + perTry).toBeLessThan(Number(one('TimeoutStartSec')));
    // No other command is run: readiness is the only thing between start and "active".
    expect(service.ExecStartPre).toBeUndefined();
  });

  it.skipIf(!HAS_ANALYZE)(`systemd-analyze verify finds nothing to say${note(HAS_ANALYZE, SKIP_ANALYZE)}`, () => {
    // verify insists that ExecStart='s binary exists; CI has no global install, so (only) that
    // path points at a stand-in executable in a scratch directory.
    const scratch = mkdtempSync(join(tmpdir(), 'imds-unit-'));
    cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));
    const stub = join(scratch, 'imds-cache-proxy');
    writeFileSync(stub, '#!/bin/sh\nexit 0\n');
    chmodSync(stub, 0o755);
    const copy = join(scratch, 'imds-cache-proxy.service');
    writeFileSync(copy, UNIT_TEXT.replace('ExecStart=/usr/local/bin/imds-cache-proxy ', `ExecStart=${stub} `));
    expect(readFileSync(copy, 'utf8')).not.toBe(UNIT_TEXT);
    const redirect = join(scratch, 'imds-cache-proxy-redirect.service');
    writeFileSync(redirect, readFileSync(join(DIR, 'imds-cache-proxy-redirect.service'), 'utf8'));
    // The socket units next to the service they start, as they are installed.
    const sockets = SOCKET_UNITS.map((name) => {
      const path = join(scratch, name);
      writeFileSync(path, readFileSync(join(DIR, name), 'utf8'));
      return path;
    });
    const result = spawnSync('systemd-analyze', ['verify', copy, redirect, ...sockets], { encoding: 'utf8' });
    // verify exits 0 even for settings it ignores, so any output at all is a failure.
    expect(`${result.stdout}${result.stderr}`.trim()).toBe('');
    expect(result.status).toBe(0);
  });

  it('the optional redirect unit installs with the proxy\'s user, lives with the listening socket (a proxy restart keeps the rules), and removes them when the socket stops', () => {
    const redirect = parseUnit(readFileSync(join(DIR, 'imds-cache-proxy-redirect.service'), 'utf8'));
    // Requires= propagates a restart: on the service, every proxy restart would drop the rules.
    expect(redirect.Unit?.Requires).toEqual(['imds-cache-proxy.socket']);
    expect(redirect.Unit?.Wants).toEqual(['imds-cache-proxy.service']);
    expect(redirect.Unit?.After).toEqual(['imds-cache-proxy.socket imds-cache-proxy.service']);
    expect(redirect.Service?.Type).toEqual(['oneshot']);
    expect(redirect.Service?.RemainAfterExit).toEqual(['yes']);
    const script = '/usr/local/lib/node_modules/imds-cache-proxy/deploy/host/imds-redirect.sh';
    expect(redirect.Service?.ExecStart).toEqual([`/bin/bash ${script} install --proxy-user ${one('User')}`]);
    expect(redirect.Service?.ExecStop?.at(-1)).toBe(`/bin/bash ${script} remove`);
    // Where npm -g puts the package whose bin is ExecStart='s /usr/local/bin/imds-cache-proxy.
    expect(one('ExecStart').startsWith('/usr/local/bin/')).toBe(true);
  });

  it.skipIf(!HAS_ANALYZE)(`systemd-analyze security rates its exposure low${note(HAS_ANALYZE, SKIP_ANALYZE)}`, () => {
    const result = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', UNIT_PATH], { encoding: 'utf8' });
    const level = /Overall exposure level for imds-cache-proxy\.service: ([\d.]+)/.exec(`${result.stdout}${result.stderr}`);
    expect(level, result.stderr).not.toBeNull();
    expect(Number(level![1])).toBeLessThanOrEqual(2.0);
  });

  it.skipIf(!HAS_SYSUSERS)(`the sysusers file creates the unit's User=${note(HAS_SYSUSERS, SKIP_SYSUSERS)}`, () => {
    const result = spawnSync('systemd-sysusers', ['--dry-run', join(DIR, 'imds-cache-proxy.sysusers')], { encoding: 'utf8' });
    const out = `${result.stdout}${result.stderr}`;
    expect(result.status, out).toBe(0);
    // Either it would create the user, or the user already exists on this machine.
    if (out.includes('Creating user')) expect(out).toMatch(/Creating user '?imds-cache-proxy'? /);
    expect(out).not.toMatch(/not a valid|Failed|error/i);
  });

  it.skipIf(!HAS_CURL)(
    `readiness check: waits through "connection refused" and "not ready", succeeds once credentials are cached${note(HAS_CURL, SKIP_CURL)}`,
    async () => {
      const port = await freePort();
      const listen = `127.0.0.1:${port}`;
      // Started before the proxy listens, as ExecStartPost= may be.
      const check = runReadinessCheck(listen);
      await new Promise((r) => setTimeout(r, 1500));
      const sim: RunningSimulator = await startSimulator({ port: 0, controlPort: 0 });
      cleanups.push(() => sim.close());
      const proxy: RunningProxy = await startProxy(parseServeConfig(['--listen', listen, '--upstream', sim.url], {}), {
        logger: silentLogger,
      });
      cleanups.push(() => proxy.close());
      const result = await check;
      expect(result.code, result.stderr).toBe(0);
      expect(result.ms).toBeGreaterThanOrEqual(1500);
      expect(proxy.isReady()).toBe(true);
    },
    60_000,
  );

  it.skipIf(!HAS_CURL)(
    `readiness check: fails, within its bound, when the proxy never gets credentials${note(HAS_CURL, SKIP_CURL)}`,
    async () => {
      // Upstream on a closed loopback port: the proxy serves but is never ready.
      const proxy = await startProxy(
        parseServeConfig(['--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9', '--upstream-attempts', '1'], {}),
        { logger: silentLogger },
      );
      cleanups.push(() => proxy.close());
      const result = await runReadinessCheck(new URL(proxy.url).host);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/503/);
      expect(result.ms).toBeGreaterThan(20_000);
      expect(result.ms).toBeLessThan(Number(one('TimeoutStartSec')) * 1000);
    },
    90_000,
  );
});

describe('deploy/systemd/imds-cache-proxy-redirect.service', () => {
  const REDIRECT_TEXT = readFileSync(join(DIR, 'imds-cache-proxy-redirect.service'), 'utf8');
  const redirect = parseUnit(REDIRECT_TEXT).Service ?? {};
  const SCRIPT = fileURLToPath(new URL('../../deploy/host/imds-redirect.sh', import.meta.url));
  const SANDBOX = fileURLToPath(new URL('../fixtures/unitSandbox.sh', import.meta.url));
  const IS_ROOT = process.getuid?.() === 0;
  const CAN_SANDBOX =
    IS_ROOT &&
    HAS_ANALYZE &&
    has('unshare', '-n', '-m', 'true') &&
    has('setpriv', '--version') &&
    has('iptables', '--version') &&
    has('python3', '-c', 'import ctypes; ctypes.CDLL("libseccomp.so.2")');
  const SKIP_SANDBOX =
    'needs root, unshare (a private network namespace), setpriv, iptables, python3 with libseccomp.so.2 and systemd-analyze';
  const HAS_LEGACY = CAN_SANDBOX && has('iptables-legacy', '--version');
  const FAMILIES: Record<string, number> = { AF_UNIX: 1, AF_INET: 2, AF_INET6: 10, AF_NETLINK: 16 };

  it('is sandboxed down to what iptables needs', () => {
    const expected: Record<string, string> = {
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      CapabilityBoundingSet: 'CAP_NET_ADMIN CAP_NET_RAW',
      AmbientCapabilities: '',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      ProcSubset: 'pid',
      ProtectProc: 'invisible',
      RestrictAddressFamilies: 'AF_INET AF_NETLINK AF_UNIX',
      SystemCallErrorNumber: 'EPERM',
      IPAddressDeny: 'any',
      UMask: '0077',
    };
    for (const [key, value] of Object.entries(expected)) expect(redirect[key]?.at(-1), key).toBe(value);
    // Root, because the script insists and the tables are the host's; no user namespace either.
    expect(redirect.User).toBeUndefined();
    expect(redirect.PrivateUsers).toBeUndefined();
    expect(redirect.PrivateNetwork).toBeUndefined();
    // The legacy backend's lock, created outside the sandbox before each run.
    expect(redirect.ExecStartPre).toEqual(['+/bin/touch /run/xtables.lock']);
    expect(redirect.ExecStop?.[0]).toBe('+/bin/touch /run/xtables.lock');
  });

  it.skipIf(!HAS_ANALYZE)(`systemd-analyze security rates its exposure OK (9.6 before hardening)${note(HAS_ANALYZE, SKIP_ANALYZE)}`, () => {
    const path = join(DIR, 'imds-cache-proxy-redirect.service');
    const result = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', path], { encoding: 'utf8' });
    const level = /Overall exposure level for imds-cache-proxy-redirect\.service: ([\d.]+)/.exec(`${result.stdout}${result.stderr}`);
    expect(level, result.stderr).not.toBeNull();
    expect(Number(level![1])).toBeLessThanOrEqual(2.0);
  });

  /** Every system call a SystemCallFilter= group list allows, as systemd-analyze expands it. */
  function syscallsOf(items: string[]): Set<string> {
    const listing = spawnSync('systemd-analyze', ['syscall-filter', '--no-pager'], { encoding: 'utf8' }).stdout;
    const groups = new Map<string, string[]>();
    let current: string[] | undefined;
    for (const line of listing.split('\n')) {
      if (line.startsWith('@')) groups.set(line.split(/\s/)[0]!, (current = []));
      else if (/^ {4}[@\w]/.test(line)) current?.push(line.trim());
    }
    const expand = (item: string): string[] => (item.startsWith('@') ? (groups.get(item) ?? []).flatMap(expand) : [item]);
    return new Set(items.flatMap(expand));
  }

  /**
   * Plays systemd's part for the unit's commands, in a private network namespace (the host's
   * rules are never touched) and a private /run: "+" commands as they are, the rest under
   * test/fixtures/unitSandbox.sh with the unit's capabilities, writable paths, system-call
   * filter and address families. Returns the exit status and what iptables holds after
   * ExecStart= and after ExecStop=.
   */
  function runUnit(text: string, backend: string) {
    const service = parseUnit(text).Service ?? {};
    const last = (key: string) => service[key]?.at(-1) ?? '';
    const filters = service.SystemCallFilter ?? [];
    const allowed = syscallsOf(filters.filter((f) => !f.startsWith('~')).flatMap((f) => f.split(/\s+/)));
    for (const name of syscallsOf(filters.filter((f) => f.startsWith('~')).flatMap((f) => f.slice(1).split(/\s+/)))) allowed.delete(name);
    const env = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      IMDS_REDIRECT_IPTABLES: backend,
      SANDBOX_CAPS: last('CapabilityBoundingSet').split(/\s+/).filter(Boolean).map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(','),
      SANDBOX_RW_PATHS: (service.ReadWritePaths ?? []).map((p) => p.replace(/^-/, '')).join(' '),
      SANDBOX_ERRNO: last('SystemCallErrorNumber') === 'EPERM' ? '1' : '',
      SANDBOX_SYSCALLS: [...allowed].join(','),
      SANDBOX_FAMILIES: last('RestrictAddressFamilies').split(/\s+/).map((f) => String(FAMILIES[f])).join(','),
    };
    expect(env.SANDBOX_ERRNO).toBe('1');
    const command = (line: string) => {
      // The script from this checkout; a uid, since the proxy's user need not exist here.
      const words = line.replace(/\S*\/deploy\/host\/imds-redirect\.sh/, SCRIPT).replace('--proxy-user imds-cache-proxy', '--proxy-user 4242');
      return words.startsWith('+') ? words.slice(1) : `unshare -m ${SANDBOX} ${words}`;
    };
    const script = [
      'set -e',
      'mount --make-rprivate /',
      'mount -t tmpfs -o mode=0755 tmpfs /run',
      ...(service.ExecStartPre ?? []).map(command),
      command(last('ExecStart')),
      "echo '--- after start'",
      `${backend} -t nat -S`,
      ...(service.ExecStop ?? []).map(command),
      "echo '--- after stop'",
      `${backend} -t nat -S`,
    ].join('\n');
    const result = spawnSync('unshare', ['-n', '-m', 'bash', '-c', script], { encoding: 'utf8', env, timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = `${result.stdout}${result.stderr}`;
    return {
      status: result.status,
      out,
      afterStart: out.split('--- after start')[1]?.split('--- after stop')[0] ?? '',
      afterStop: out.split('--- after stop')[1] ?? '',
    };
  }

  const backends = ['iptables', 'iptables-legacy'];
  it.skipIf(!CAN_SANDBOX).each(backends)(
    `${'%s'}: the redirect script installs and removes its rules under the unit's own sandbox${note(CAN_SANDBOX, SKIP_SANDBOX)}`,
    (backend) => {
      if (backend === 'iptables-legacy' && !HAS_LEGACY) return;
      const run = runUnit(REDIRECT_TEXT, backend);
      expect(run.status, run.out).toBe(0);
      expect(run.afterStart).toMatch(/^-A OUTPUT -d 169\.254\.169\.254\/32 .*-j IMDS_CACHE_PROXY$/m);
      expect(run.afterStart).toMatch(/^-A IMDS_CACHE_PROXY -m owner --uid-owner 4242 -j RETURN$/m);
      expect(run.afterStop).not.toContain('IMDS_CACHE_PROXY');
      expect(run.afterStop).toMatch(/^-P OUTPUT ACCEPT$/m);
    },
  );

  // The same runs with one setting narrowed: each fails, so the sandbox above was really applied.
  const narrowed: [string, string, (text: string) => string, RegExp][] = [
    ['without the lock file made first', 'iptables-legacy', (t) => t.replace(/^Exec(StartPre|Stop)=\+\/bin\/touch .*$/gm, ''), /Read-only file system/],
    ['without CAP_NET_RAW', 'iptables-legacy', (t) => t.replace('CAP_NET_ADMIN CAP_NET_RAW', 'CAP_NET_ADMIN'), /Permission denied|Table does not exist/],
    ['without AF_NETLINK', 'iptables', (t) => t.replace('AF_INET AF_NETLINK AF_UNIX', 'AF_INET AF_UNIX'), /Failed to initialize nft/],
    ['without @network-io', 'iptables', (t) => t.replace('~@privileged @resources', '~@privileged @resources @network-io'), /not permitted|Permission denied/],
  ];
  it.skipIf(!CAN_SANDBOX).each(narrowed)(`fails %s (%s): the sandbox bites${note(CAN_SANDBOX, SKIP_SANDBOX)}`, (_name, backend, narrow, why) => {
    if (backend === 'iptables-legacy' && !HAS_LEGACY) return;
    const text = narrow(REDIRECT_TEXT);
    expect(text).not.toBe(REDIRECT_TEXT);
    const run = runUnit(text, backend);
    expect(run.status, run.out).not.toBe(0);
    expect(run.out).toMatch(why);
  });
});

describe('deploy/systemd socket activation units', () => {
  const imds = socketUnit('imds-cache-proxy.socket');
  const metrics = socketUnit('imds-cache-proxy-metrics.socket');

  it('imds-cache-proxy.socket listens where the service is configured to, and names its socket "imds"', () => {
    const config = parseServeConfig([], serviceEnvironment());
    expect(imds.Socket?.ListenStream).toEqual([formatListen(config.listen)]);
    expect(imds.Socket?.FileDescriptorName).toEqual(['imds']);
    // Same name as the service: systemd passes its socket to imds-cache-proxy.service.
    expect(imds.Socket?.Service).toBeUndefined();
    expect(imds.Socket?.Accept ?? ['no']).toEqual(['no']);
    expect(imds.Install?.WantedBy).toEqual(['sockets.target']);
  });

  it('imds-cache-proxy-metrics.socket: the environment file\'s metrics address, named "metrics", for the same service', () => {
    const example = /^#\s*IMDS_PROXY_METRICS_LISTEN=(\S+)$/m.exec(ENV_TEXT)?.[1];
    expect(example, 'the environment file shows IMDS_PROXY_METRICS_LISTEN').toBeDefined();
    expect(metrics.Socket?.ListenStream).toEqual([formatListen(parseListen('IMDS_PROXY_METRICS_LISTEN', example!))]);
    expect(metrics.Socket?.FileDescriptorName).toEqual(['metrics']);
    expect(metrics.Socket?.Service).toEqual(['imds-cache-proxy.service']);
    expect(metrics.Install?.WantedBy).toEqual(['sockets.target']);
  });

  it('the names the units give are the names serve looks for, in either order systemd passes them', () => {
    const names = [imds.Socket!.FileDescriptorName![0]!, metrics.Socket!.FileDescriptorName![0]!];
    for (const order of [names, [...names].reverse()]) {
      const found = takeInheritedListeners({ LISTEN_FDS: '2', LISTEN_PID: '1', LISTEN_FDNAMES: order.join(':') }, 1);
      expect(found.imds?.fd).toBe(3 + order.indexOf('imds'));
      expect(found.metrics?.fd).toBe(3 + order.indexOf('metrics'));
    }
  });
});
