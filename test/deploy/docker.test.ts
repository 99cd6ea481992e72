import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultProxyConfig } from '../../src/config/proxyConfig.js';
import { silentLogger } from '../../src/runtime/log.js';
import { startProxy, type RunningProxy } from '../../src/server/proxy.js';
import { startSimulator, type RunningSimulator } from '../../src/simulator/simulator.js';

// The Dockerfile held to its invariants, and its HEALTHCHECK command run for real against a
// proxy on loopback; building and running the image is test/deploy/dockerImage.test.ts.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCKERFILE = readFileSync(`${ROOT}deploy/docker/Dockerfile`, 'utf8');
const IGNORE = readFileSync(`${ROOT}deploy/docker/Dockerfile.dockerignore`, 'utf8');

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string;
  body: Instruction[];
}

/** Instructions (continuation lines joined, comments dropped), grouped by stage. */
function parseDockerfile(text: string): Stage[] {
  const logical = text
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const stages: Stage[] = [];
  for (const line of logical) {
    const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (op.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      expect(m, `FROM ${args}`).not.toBeNull();
      stages.push({ from: m![1]!, name: m![2] ?? '', body: [] });
    } else {
      expect(stages.length, `${op} before any FROM`).toBeGreaterThan(0);
      stages[stages.length - 1]!.body.push({ op: op.toUpperCase(), args });
    }
  }
  return stages;
}

const stages = parseDockerfile(DOCKERFILE);
const stage = (name: string) => {
  const s = stages.find((x) => x.name === name);
  expect(s, `stage ${name}`).toBeDefined();
  return s!;
};
const all = (s: Stage, op: string) => s.body.filter((i) => i.op === op).map((i) => i.args);

/** The HEALTHCHECK's command as the image runs it, with the image's /app as this checkout. */
function runHealthcheck(listen: string): Promise<number | null> {
  const args = JSON.parse(/^CMD\s+(\[.*\])$/.exec(all(runtime, 'HEALTHCHECK')[0]!.replace(/^(--\S+\s+)*/, ''))![1]!) as string[];
  expect(args[0]).toBe('node');
  const local = args.slice(1).map((a) => a.replace(/^\/app\//, ROOT));
  const child = spawn(process.execPath, local, { env: { IMDS_PROXY_LISTEN: listen }, stdio: 'ignore' });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

const runtime = stages[stages.length - 1]!;

describe('deploy/docker/Dockerfile', () => {
  it('is multi-stage on the official Node 20 slim image, the proxy last (the default target)', () => {
    expect(stages.map((s) => s.name)).toEqual(['build', 'redirect', 'runtime']);
    for (const s of stages) expect(s.from, s.name).toBe('node:20-slim');
    expect(runtime.name).toBe('runtime');
  });

  it('builds with the lockfile and ships only production dependencies and dist/', () => {
    const build = stage('build');
    expect(all(build, 'RUN').join('\n')).toMatch(/npm ci\b/);
    expect(all(build, 'RUN').join('\n')).toContain('npm run build');
    const runs = all(runtime, 'RUN').join('\n');
    expect(runs).toMatch(/npm ci --omit=dev\b/);
    for (const s of stages) expect(all(s, 'RUN').join('\n'), s.name).not.toMatch(/npm (install|i)\b/);
    const copies = all(runtime, 'COPY');
    expect(copies).toContain('--from=build /src/dist ./dist');
    // Nothing else of the source tree reaches the image.
    expect(copies.filter((c) => !c.startsWith('--from='))).toEqual(['package.json package-lock.json ./']);
    expect(all(runtime, 'ENV')).toContain('NODE_ENV=production');
  });

  it('runs the proxy as a numeric non-root user', () => {
    const users = all(runtime, 'USER');
    expect(users).toHaveLength(1);
    const [uid, gid] = users[0]!.split(':').map(Number);
    expect(uid).toBeGreaterThan(0);
    expect(gid).toBeGreaterThan(0);
    // USER comes before the entrypoint is set, and nothing after it switches back.
    const ops = runtime.body.map((i) => i.op);
    expect(ops.lastIndexOf('USER')).toBeLessThan(ops.indexOf('ENTRYPOINT'));
    expect(all(runtime, 'ENTRYPOINT')).toEqual(['["node", "/app/dist/cli.js"]']);
    expect(all(runtime, 'CMD')).toEqual(['["serve"]']);
  });

  it('has a HEALTHCHECK that runs `status` (the configuration serve reads), with a timeout', () => {
    const checks = all(runtime, 'HEALTHCHECK');
    expect(checks).toHaveLength(1);
    expect(checks[0]).toContain('["node", "/app/dist/cli.js", "status"]');
    expect(checks[0]).toMatch(/--timeout=\d+s/);
    expect(checks[0]).toMatch(/CMD \[/);
  });

  it('the redirect stage carries the tested host script and iptables, and is used only as the init container', () => {
    const redirect = stage('redirect');
    expect(all(redirect, 'RUN').join('\n')).toMatch(/apt-get install -y --no-install-recommends iptables/);
    expect(all(redirect, 'COPY')).toEqual(['--chmod=0755 deploy/host/imds-redirect.sh /usr/local/bin/imds-redirect']);
    expect(all(redirect, 'ENTRYPOINT')).toEqual(['["/usr/local/bin/imds-redirect"]']);
  });

  it('the redirect image run without arguments prints its usage and exits 0', () => {
    const cmd = JSON.parse(all(stage('redirect'), 'CMD')[0]!) as string[];
    const r = spawnSync('bash', [`${ROOT}deploy/host/imds-redirect.sh`, ...cmd], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('imds-redirect.sh install|remove|print');
  });

  it('needs nothing from Docker Hub but the base image: no `# syntax=` parser directive', () => {
    // Parser directives are only honoured in the leading comment lines, before anything else.
    const leading = DOCKERFILE.split('\n').filter((l, i, lines) => lines.slice(0, i + 1).every((x) => x.startsWith('#')));
    expect(leading.filter((l) => /^#\s*syntax\s*=/i.test(l))).toEqual([]);
  });

  it('says beside the HEALTHCHECK that it sees variables, not flags, and where podman needs --format docker', () => {
    const beforeCheck = DOCKERFILE.slice(0, DOCKERFILE.indexOf('\nHEALTHCHECK'));
    expect(beforeCheck.slice(beforeCheck.lastIndexOf('\n\n'))).toMatch(/IMDS_PROXY_\*[\s\S]*not with flags/);
    expect(DOCKERFILE).toContain('--format docker');
    const readme = readFileSync(`${ROOT}deploy/README.md`, 'utf8');
    const section = readme.slice(readme.indexOf('## Container image'));
    expect(section).toContain('--format docker');
    expect(section).toMatch(/uid=1000,gid=1000.*\n[\s\S]*podman refuses `uid=`/);
    expect(section).toMatch(/Configure it with `-e IMDS_PROXY_\.\.\.` variables/);
  });

  it('every file it copies from the context exists and is let through Dockerfile.dockerignore', () => {
    const allowed = IGNORE.split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/$/, ''));
    expect(IGNORE.split('\n')).toContain('**');
    for (const s of stages) {
      for (const copy of all(s, 'COPY').filter((c) => !c.includes('--from='))) {
        const words = copy.split(/\s+/).filter((w) => !w.startsWith('--'));
        for (const source of words.slice(0, -1)) {
          expect(existsSync(`${ROOT}${source}`), source).toBe(true);
          expect(allowed, `${source} is ignored`).toContain(source.replace(/\/$/, ''));
        }
      }
    }
  });

  describe('its HEALTHCHECK command, run for real', () => {
    let simulator: RunningSimulator;
    let ready: RunningProxy;
    let cold: RunningProxy;
    beforeAll(async () => {
      simulator = await startSimulator({ port: 0 });
      const loopback = { ...defaultProxyConfig(), listen: { host: '127.0.0.1', port: 0 }, upstreamAttempts: 1 };
      ready = await startProxy({ ...loopback, upstream: simulator.url }, { logger: silentLogger });
      // Nothing listens on port 9: this proxy answers, but never has credentials to serve.
      cold = await startProxy({ ...loopback, upstream: 'http://127.0.0.1:9' }, { logger: silentLogger });
      await waitUntil(() => ready.isReady());
    });
    afterAll(async () => {
      await Promise.all([ready.close(), cold.close()]);
      await simulator.close();
    });

    it('is healthy against a proxy that holds credentials', async () => {
      expect(await runHealthcheck(new URL(ready.url).host)).toBe(0);
    });

    it('is unhealthy against a proxy that answers but has no credentials to serve', async () => {
      expect(await runHealthcheck(new URL(cold.url).host)).toBe(1);
    });

    it('is unhealthy when nothing listens', async () => {
      expect(await runHealthcheck('127.0.0.1:9')).not.toBe(0);
    });
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
