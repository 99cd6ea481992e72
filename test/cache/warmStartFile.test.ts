import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { threadId } from 'node:worker_threads';
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoleCredentials } from '../../src/imds/credentials.js';
import { removeStaleTempFiles } from '../../src/cache/privateFile.js';
import {
  formatWarmStartDocument,
  readWarmStartFile,
  WARM_START_MAX_BYTES,
  warmStartEntriesFrom,
  WarmStartWriter,
  writeWarmStartFile,
  type WarmStartEntry,
} from '../../src/cache/warmStartFile.js';
import { makeCredentials } from '../support/credentials.js';

const HOUR = 3600_000;
const MIN = 60_000;
const NOW = Date.UTC(2026, 10, 28, 12, 0, 0);
/** The expiry margin the proxy passes: servable is enough. */
const WINDOW = MIN;
const READ = { now: NOW, minValidityMs: WINDOW };

let root: string;
let serial = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'warm-start-test-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const dir = join(root, `case-${++serial}`);
  await mkdir(dir);
  return dir;
}

function entry(role: string, lifetimeMs = 6 * HOUR, extra: Partial<RoleCredentials> = {}): WarmStartEntry {
  return { role, credentials: { ...makeCredentials(NOW + lifetimeMs), ...extra }, fetchedAt: NOW - MIN };
}

function sameValue(a: number, b: number): boolean {
  return Object.is(a, b);
}

/** Field by field, as a boolean: a failing toEqual would print the secrets in its diff. */
function sameEntries(a: readonly WarmStartEntry[], b: readonly WarmStartEntry[]): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i]!;
      const c = x.credentials;
      const d = y.credentials;
      return (
        x.role === y.role &&
        x.fetchedAt === y.fetchedAt &&
        c.accessKeyId === d.accessKeyId &&
        c.secretAccessKey === d.secretAccessKey &&
        c.token === d.token &&
        c.expiration === d.expiration &&
        sameValue(c.lastUpdated, d.lastUpdated) &&
        c.type === d.type &&
        c.accountId === d.accountId &&
        Object.keys(c).length === Object.keys(d).length
      );
    })
  );
}

function secretsOf(entries: readonly WarmStartEntry[]): string[] {
  return entries.flatMap((e) => [e.credentials.secretAccessKey, e.credentials.token]);
}

function ignoredReason(result: Awaited<ReturnType<typeof readWarmStartFile>>): string {
  return 'ignored' in result ? result.ignored : '(read as entries)';
}

/** Writes a document by hand, 0600, as if the proxy had. */
async function plant(path: string, body: string, mode = 0o600): Promise<void> {
  await writeFile(path, body, { mode });
  await chmod(path, mode);
}

describe('warm-start file: write and read', () => {
  it('round-trips every field, including a missing LastUpdated and an account id', async () => {
    const path = join(await freshDir(), 'credentials.json');
    const entries = [entry('app-role', 6 * HOUR, { accountId: '123456789012' }), entry('other-role', 2 * HOUR, { lastUpdated: Number.NaN })];
    await writeWarmStartFile(path, entries);
    const result = await readWarmStartFile(path, READ);
    expect(ignoredReason(result)).toBe('(read as entries)');
    expect('entries' in result && sameEntries(result.entries, entries)).toBe(true);
  });

  it('writes mode 0600, also when replacing a file that was 0644, and leaves no temp file', async () => {
    const dir = await freshDir();
    const path = join(dir, 'credentials.json');
    await plant(path, 'old', 0o644);
    await writeWarmStartFile(path, [entry('app-role')]);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['credentials.json']);
  });

  it('serializes concurrent writes from one process: the last call wins, none interleave', async () => {
    const dir = await freshDir();
    const path = join(dir, 'credentials.json');
    const versions = Array.from({ length: 20 }, (_, i) => [entry(`role-${i}`)]);
    await Promise.all(versions.map((v) => writeWarmStartFile(path, v)));
    const text = await readFile(path, 'utf8');
    expect(text === formatWarmStartDocument(versions[19]!)).toBe(true);
    expect(await readdir(dir)).toEqual(['credentials.json']);
  });

  it('rejects a failed write and removes its temp file', async () => {
    const dir = await freshDir();
    const path = join(dir, 'credentials.json');
    // A non-empty directory at the path: the rename fails.
    await mkdir(path);
    await writeFile(join(path, 'keep'), '');
    await expect(writeWarmStartFile(path, [entry('app-role')])).rejects.toThrow();
    expect(await readdir(dir)).toEqual(['credentials.json']);
    // The queue for that path is not stuck on the failure.
    await rm(path, { recursive: true });
    await writeWarmStartFile(path, [entry('app-role')]);
    expect('entries' in (await readWarmStartFile(path, READ))).toBe(true);
  });

  it('replaces a symbolic link at the path with a file, never writing through it', async () => {
    const dir = await freshDir();
    const outside = join(await freshDir(), 'victim.txt');
    await writeFile(outside, 'untouched');
    const path = join(dir, 'credentials.json');
    await symlink(outside, path);
    await writeWarmStartFile(path, [entry('app-role')]);
    expect((await lstat(path)).isFile()).toBe(true);
    expect(await readFile(outside, 'utf8')).toBe('untouched');
    expect('entries' in (await readWarmStartFile(path, READ))).toBe(true);
  });

  it('writes no secret into a link planted at the predictable temp name', async () => {
    const dir = await freshDir();
    const path = join(dir, 'credentials.json');
    await writeWarmStartFile(path, [entry('app-role')]);
    const before = await readFile(path, 'utf8');
    // write-file-atomic names its temp file sha1(its file, pid, thread, call count): the next
    // one can be worked out from the one it reports now.
    const require = createRequire(import.meta.url);
    const wfa = require('write-file-atomic') as { _getTmpname(name: string): string };
    const hashOf = (n: number) =>
      createHash('sha1').update(require.resolve('write-file-atomic')).update(String(process.pid)).update(String(threadId)).update(String(n)).digest().readUInt32BE(0);
    const current = Number(wfa._getTmpname(path).slice(path.length + 1));
    const count = Array.from({ length: 100_000 }, (_, i) => i + 1).find((n) => hashOf(n) === current);
    expect(count).toBeDefined();
    const outside = join(await freshDir(), 'attacker-readable.txt');
    await writeFile(outside, 'planted');
    await symlink(outside, `${path}.${hashOf(count! + 1)}`);
    const secrets = secretsOf([entry('app-role')]);
    await expect(writeWarmStartFile(path, [entry('app-role')])).rejects.toThrow(/temp file/);
    expect(secrets.some((s) => readFileSync(outside, 'utf8').includes(s))).toBe(false);
    expect(await readFile(path, 'utf8')).toBe(before);
    expect(await readdir(dir)).toEqual(['credentials.json']);
  });

  it('ignores a missing file', async () => {
    expect(await readWarmStartFile(join(await freshDir(), 'absent.json'), READ)).toEqual({ ignored: 'no file' });
  });

  it.each([0o644, 0o640, 0o604, 0o660])('ignores a file with mode %o', async (mode) => {
    const path = join(await freshDir(), 'credentials.json');
    await writeWarmStartFile(path, [entry('app-role')]);
    await chmod(path, mode);
    expect(ignoredReason(await readWarmStartFile(path, READ))).toMatch(/open to group or others/);
  });

  it('ignores a symbolic link, even to a good file', async () => {
    const dir = await freshDir();
    const target = join(dir, 'real.json');
    await writeWarmStartFile(target, [entry('app-role')]);
    const path = join(dir, 'credentials.json');
    await symlink(target, path);
    expect(await readWarmStartFile(path, READ)).toEqual({ ignored: 'is a symbolic link' });
  });

  it('ignores a directory', async () => {
    const path = join(await freshDir(), 'credentials.json');
    await mkdir(path, { mode: 0o700 });
    expect(await readWarmStartFile(path, READ)).toEqual({ ignored: 'not a regular file' });
  });

  it('ignores a file owned by another user', async () => {
    const path = join(await freshDir(), 'credentials.json');
    await writeWarmStartFile(path, [entry('app-role')]);
    const me = process.getuid!();
    expect(ignoredReason(await readWarmStartFile(path, { ...READ, uid: me + 1 }))).toBe(`owned by uid ${me}, not ${me + 1}`);
    expect('entries' in (await readWarmStartFile(path, { ...READ, uid: me }))).toBe(true);
  });

  it('ignores a file over the size bound without parsing it', async () => {
    const path = join(await freshDir(), 'credentials.json');
    const doc = formatWarmStartDocument([entry('app-role')]);
    await plant(path, doc + ' '.repeat(WARM_START_MAX_BYTES));
    expect(ignoredReason(await readWarmStartFile(path, READ))).toMatch(/^larger than/);
  });

  it('ignores an empty file', async () => {
    const path = join(await freshDir(), 'credentials.json');
    await plant(path, '');
    expect(await readWarmStartFile(path, READ)).toEqual({ ignored: 'empty file' });
  });

  const good = () => JSON.parse(formatWarmStartDocument([entry('app-role')])) as Record<string, any>;
  const documents: [string, () => string, RegExp][] = [
    ['garbage', () => '{"format": "imds-cache-proxy/warm-st', /^not valid JSON$/],
    ['an array', () => '[]', /^not a JSON object$/],
    ['another format', () => JSON.stringify({ ...good(), format: 'something-else' }), /format/],
    ['a newer version', () => JSON.stringify({ ...good(), version: 2 }), /^unsupported version 2/],
    ['no version', () => JSON.stringify({ ...good(), version: undefined }), /^unsupported version missing/],
    ['no entries', () => JSON.stringify({ ...good(), entries: [] }), /^no entries$/],
    ['entries not an array', () => JSON.stringify({ ...good(), entries: {} }), /^entries missing/],
    [
      'a missing secret',
      () => {
        const d = good();
        delete d.entries[0].credentials.secretAccessKey;
        return JSON.stringify(d);
      },
      /^entry 0: credentials.secretAccessKey missing or malformed$/,
    ],
    [
      'a token with a space in it',
      () => {
        const d = good();
        d.entries[0].credentials.token = `${d.entries[0].credentials.token} x`;
        return JSON.stringify(d);
      },
      /^entry 0: credentials.token missing or malformed$/,
    ],
    [
      'an expiration as a string',
      () => {
        const d = good();
        d.entries[0].credentials.expiration = '2026-11-28T18:00:00Z';
        return JSON.stringify(d);
      },
      /^entry 0: credentials.expiration/,
    ],
    [
      'a bad role name',
      () => {
        const d = good();
        d.entries[0].role = '../../etc';
        return JSON.stringify(d);
      },
      /^entry 0: role/,
    ],
    [
      'a duplicate role',
      () => {
        const d = good();
        d.entries.push(d.entries[0]);
        return JSON.stringify(d);
      },
      /^entry 1: duplicate role$/,
    ],
  ];
  it.each(documents)('ignores %s', async (_name, body, reason) => {
    const path = join(await freshDir(), 'credentials.json');
    await plant(path, body());
    expect(ignoredReason(await readWarmStartFile(path, READ))).toMatch(reason);
  });

  it('ignores credentials that are expired or expire inside the expiry margin; all or nothing', async () => {
    const dir = await freshDir();
    const cases: [WarmStartEntry[], RegExp | undefined][] = [
      [[entry('app-role', -MIN)], /^entry 0: credentials expired$/],
      [[entry('app-role', WINDOW)], /^entry 0: credentials expire in 60s, inside the expiry margin/],
      [[entry('app-role', WINDOW - 1000)], /inside the expiry margin/],
      [[entry('app-role'), entry('short-role', 30_000)], /^entry 1: /],
      [[entry('app-role', WINDOW + 1000)], undefined],
    ];
    for (const [i, [entries, reason]] of cases.entries()) {
      const path = join(dir, `credentials-${i}.json`);
      await writeWarmStartFile(path, entries);
      const result = await readWarmStartFile(path, READ);
      if (reason === undefined) expect('entries' in result).toBe(true);
      else expect(ignoredReason(result)).toMatch(reason);
    }
  });

  it('never puts a secret in a reason', async () => {
    const dir = await freshDir();
    const me = process.getuid!();
    const reasons: string[] = [];
    const secrets: string[] = [];
    const variants: [WarmStartEntry[], (path: string) => Promise<void>, number?][] = [
      [[entry('app-role', -HOUR)], async () => {}],
      [[entry('app-role', 30_000)], async () => {}],
      [[entry('app-role')], (p) => chmod(p, 0o644)],
      [[entry('app-role')], async () => {}, me + 1],
      [
        [entry('app-role')],
        async (p) => {
          // The secret moved into fields that reasons do talk about.
          const d = JSON.parse(await readFile(p, 'utf8'));
          const c = d.entries[0].credentials;
          d.entries[0].role = c.secretAccessKey;
          d.version = c.token;
          await plant(p, JSON.stringify(d));
        },
      ],
      [
        [entry('app-role')],
        async (p) => {
          const d = JSON.parse(await readFile(p, 'utf8'));
          d.entries[0].role = d.entries[0].credentials.token.slice(0, 60).replace(/[^\w]/g, 'x');
          d.entries[0].credentials.type = `${d.entries[0].credentials.secretAccessKey} `;
          await plant(p, JSON.stringify(d));
        },
      ],
      [
        [entry('app-role')],
        async (p) => {
          const text = await readFile(p, 'utf8');
          await plant(p, text.slice(0, text.length / 2));
        },
      ],
    ];
    for (const [i, [entries, spoil, uid]] of variants.entries()) {
      const path = join(dir, `credentials-${i}.json`);
      await writeWarmStartFile(path, entries);
      await spoil(path);
      secrets.push(...secretsOf(entries));
      const result = await readWarmStartFile(path, uid === undefined ? READ : { ...READ, uid });
      reasons.push(ignoredReason(result));
    }
    expect(reasons.includes('(read as entries)')).toBe(false);
    const leaked = reasons.filter((r) => secrets.some((s) => r.includes(s) || r.includes(s.slice(0, 16))));
    expect(leaked.length).toBe(0);
  });
});

describe('removeStaleTempFiles', () => {
  it('removes the temp files killed writers left (ours, regular files), keeps everything else', async () => {
    const dir = await freshDir();
    const path = join(dir, 'credentials.json');
    await writeWarmStartFile(path, [entry('app-role')]);
    // write-file-atomic's `<name>.<uint32>`, and the `<name>.<pid>.<hex>.tmp` of earlier versions.
    const stale = ['credentials.json.3735928559', 'credentials.json.12345.00ff.tmp'];
    const unrelated = ['other.json.3735928559', 'credentials.json.bak', 'credentials.json.token-key'];
    for (const name of [...stale, ...unrelated]) await writeFile(join(dir, name), 'partial');
    // A link with a temp file's name is not a file of ours: neither it nor its target goes.
    const outside = join(await freshDir(), 'keep.txt');
    await writeFile(outside, 'keep');
    await symlink(outside, join(dir, 'credentials.json.42'));
    expect(await removeStaleTempFiles(path)).toBe(2);
    expect((await readdir(dir)).sort()).toEqual(['credentials.json', 'credentials.json.42', ...unrelated].sort());
    expect(await readFile(outside, 'utf8')).toBe('keep');
    expect(await removeStaleTempFiles(join(dir, 'missing-dir', 'x.json'))).toBe(0);
  });
});

describe('warmStartEntriesFrom', () => {
  it('takes every listed role that has credentials', () => {
    const a = entry('a-role');
    const map = new Map([
      ['a-role', { credentials: a.credentials, body: '', bodyLength: 0, fetchedAt: a.fetchedAt }],
      ['gone-role', { credentials: a.credentials, body: '', bodyLength: 0, fetchedAt: a.fetchedAt }],
    ]);
    const out = warmStartEntriesFrom({ roles: ['a-role', 'new-role'], entries: map });
    expect(out.map((e) => e.role)).toEqual(['a-role']);
    expect(sameEntries(out, [a])).toBe(true);
    expect(warmStartEntriesFrom({ roles: undefined, entries: map })).toEqual([]);
  });
});

describe('WarmStartWriter', () => {
  function recorder() {
    const writes: (readonly WarmStartEntry[])[] = [];
    let release: (() => void) | undefined;
    let hold = false;
    let wrote: () => void = () => {};
    const write = async (_path: string, entries: readonly WarmStartEntry[]) => {
      writes.push(entries);
      wrote();
      if (hold) await new Promise<void>((r) => (release = r));
    };
    return {
      writes,
      write,
      hold: () => (hold = true),
      release: () => {
        hold = false;
        release?.();
      },
      nextWrite: () => new Promise<void>((r) => (wrote = r)),
    };
  }

  it('coalesces saves into one write of the latest entries', async () => {
    const r = recorder();
    const writer = new WarmStartWriter({ path: 'unused', debounceMs: 60_000, write: r.write });
    const versions = [[entry('a')], [entry('b')], [entry('c')]];
    for (const v of versions) writer.save(v);
    expect(r.writes.length).toBe(0);
    await writer.flush();
    expect(r.writes.length).toBe(1);
    expect(r.writes[0] === versions[2]).toBe(true);
    await writer.flush();
    expect(r.writes.length).toBe(1);
  });

  it('writes after the debounce without a flush', async () => {
    const r = recorder();
    const writer = new WarmStartWriter({ path: 'unused', debounceMs: 5, write: r.write });
    const wrote = r.nextWrite();
    const v = [entry('a')];
    writer.save(v);
    await wrote;
    expect(r.writes.length).toBe(1);
    expect(r.writes[0] === v).toBe(true);
  });

  it('writes a save made during a write after it, once; flush waits for both', async () => {
    const r = recorder();
    const writer = new WarmStartWriter({ path: 'unused', debounceMs: 60_000, write: r.write });
    r.hold();
    const first = [entry('a')];
    writer.save(first);
    const flushed = writer.flush();
    expect(r.writes.length).toBe(1);
    const second = [entry('b')];
    const third = [entry('c')];
    writer.save(second);
    writer.save(third);
    r.release();
    await flushed;
    expect(r.writes.length).toBe(2);
    expect(r.writes[0] === first && r.writes[1] === third).toBe(true);
  });

  it('logs a failed write without the secrets and keeps going', async () => {
    const warnings: string[] = [];
    let fail = true;
    let writes = 0;
    const writer = new WarmStartWriter({
      path: '/nonexistent/credentials.json',
      debounceMs: 60_000,
      logger: { warn: (obj, msg) => warnings.push(JSON.stringify(obj) + msg) },
      write: async (path, entries) => {
        writes++;
        if (fail) {
          const e = new Error('ENOENT') as NodeJS.ErrnoException;
          e.code = 'ENOENT';
          throw e;
        }
        void path;
        void entries;
      },
    });
    const v = [entry('a')];
    writer.save(v);
    await writer.flush();
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toContain('warm_start_write_failed');
    expect(secretsOf(v).some((s) => warnings[0]!.includes(s))).toBe(false);
    fail = false;
    writer.save(v);
    await writer.flush();
    expect(writes).toBe(2);
    expect(warnings.length).toBe(1);
  });

  it('writes a real file through writeWarmStartFile by default', async () => {
    const path = join(await freshDir(), 'credentials.json');
    const writer = new WarmStartWriter({ path, debounceMs: 60_000 });
    const v = [entry('app-role')];
    writer.save(v);
    await writer.flush();
    const result = await readWarmStartFile(path, READ);
    expect('entries' in result && sameEntries(result.entries, v)).toBe(true);
  });
});

describe('warm-start file: crash safety', () => {
  const FIXTURE = fileURLToPath(new URL('../fixtures/warmStartWriteLoop.mjs', import.meta.url));
  const SOURCES = ['cache/warmStartFile', 'cache/privateFile', 'imds/protocol'];
  const REPO = fileURLToPath(new URL('../../', import.meta.url));

  /**
   * The modules under test, transpiled into `dir` as they sit under src/ (their only runtime
   * imports are each other, node: built-ins and packages, which resolve through a node_modules link).
   */
  async function transpiled(dir: string): Promise<string> {
    for (const name of SOURCES) {
      const out = ts.transpileModule(await readFile(join(REPO, 'src', `${name}.ts`), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
      });
      const relative = [...out.outputText.matchAll(/^import .* from '(\.{1,2}\/[^']*)'/gm)].map((m) => m[1]!);
      expect(relative.every((r) => SOURCES.includes(posix.join(posix.dirname(name), r).replace(/\.js$/, '')))).toBe(true);
      await mkdir(join(dir, posix.dirname(name)), { recursive: true });
      await writeFile(join(dir, `${name}.js`), out.outputText);
    }
    await writeFile(join(dir, 'package.json'), '{"type":"module"}');
    await symlink(join(REPO, 'node_modules'), join(dir, 'node_modules'));
    return join(dir, 'cache/warmStartFile.js');
  }

  function runUntilKilled(modulePath: string, cachePath: string, inputPath: string, delayMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [FIXTURE, modulePath, cachePath, inputPath], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      let killed = false;
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (!killed && out.includes('ready\n')) {
          killed = true;
          setTimeout(() => child.kill('SIGKILL'), delayMs);
        }
      });
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        if (signal === 'SIGKILL') resolve(signal);
        // The child prints no secret: its only output is "ready" and Node's own errors.
        else reject(new Error(`writer exited with ${code ?? signal} before the kill: ${err.slice(0, 500)}`));
      });
    });
  }

  it(
    'a writer killed at random moments leaves the old or the new file, never a torn one',
    async () => {
      const dir = await freshDir();
      const modulePath = await transpiled(dir);
      const dataDir = join(dir, 'run');
      await mkdir(dataDir, { mode: 0o700 });
      const cachePath = join(dataDir, 'credentials.json');
      const a = [entry('app-role'), entry('other-role')];
      const b = [entry('app-role'), entry('other-role')];
      const inputPath = join(dir, 'input.json');
      await plant(inputPath, JSON.stringify({ a, b }));
      const textA = formatWarmStartDocument(a);
      const textB = formatWarmStartDocument(b);

      const started = Date.now();
      let kills = 0;
      let torn = 0;
      let unreadable = 0;
      while (kills < 40 && (kills < 10 || Date.now() - started < 30_000)) {
        await runUntilKilled(modulePath, cachePath, inputPath, Math.floor(Math.random() * 25));
        kills++;
        const text = await readFile(cachePath, 'utf8');
        if (!(text === textA || text === textB)) torn++;
        const result = await readWarmStartFile(cachePath, READ);
        if (!('entries' in result && (sameEntries(result.entries, a) || sameEntries(result.entries, b)))) unreadable++;
        expect((await stat(cachePath)).mode & 0o777).toBe(0o600);
      }
      expect(kills).toBeGreaterThanOrEqual(10);
      expect(torn).toBe(0);
      expect(unreadable).toBe(0);

      // Leftover temp files (from kills mid-write) never stopped the next start; now tidy up.
      await removeStaleTempFiles(cachePath);
      expect(await readdir(dataDir)).toEqual(['credentials.json']);
    },
    60_000,
  );
});
