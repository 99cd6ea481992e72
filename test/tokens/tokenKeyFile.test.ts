import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { ClientTokenAuthority, TOKEN_KEY_BYTES } from '../../src/tokens/clientTokens.js';
import {
  formatTokenKeyDocument,
  loadTokenKey,
  readTokenKeyFile,
  tokenKeyPathFor,
} from '../../src/tokens/tokenKeyFile.js';

let root: string;
let serial = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'token-key-test-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function keyPath(): Promise<string> {
  const dir = join(root, `case-${++serial}`);
  await mkdir(dir, { mode: 0o700 });
  return tokenKeyPathFor(join(dir, 'credentials.json'));
}

/** Log lines as text, to look for events and for any trace of a key. */
function recordingLogger() {
  const lines: { level: string; event: string; text: string }[] = [];
  const log = (level: string) => (obj: object, msg: string) =>
    lines.push({ level, event: String((obj as { event?: unknown }).event), text: JSON.stringify(obj) + msg });
  return { lines, logger: { info: log('info'), warn: log('warn') } };
}

/** A key in every spelling a log line could carry it. */
function spellings(key: Buffer): string[] {
  return [key.toString('base64url'), key.toString('base64'), key.toString('hex')];
}

function leaks(lines: { text: string }[], keys: Buffer[]): boolean {
  return lines.some((l) => keys.some((k) => spellings(k).some((s) => l.text.includes(s))));
}

describe('token key file', () => {
  it('is made 0600 at the first start and reused by the next: a token minted before verifies after', async () => {
    const path = await keyPath();
    const clock = new ManualClock();
    const first = recordingLogger();
    const key = await loadTokenKey(path, clock, first.logger);
    expect(key.length).toBe(TOKEN_KEY_BYTES);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(first.lines.map((l) => l.event)).toEqual(['token_key_created']);
    const token = new ClientTokenAuthority(clock, key).mint(21600);

    clock.advance(3600_000);
    const second = recordingLogger();
    const again = await loadTokenKey(path, clock, second.logger);
    expect(again.equals(key)).toBe(true);
    expect(second.lines.map((l) => l.event)).toEqual(['token_key_loaded']);
    expect(new ClientTokenAuthority(clock, again).verify(token)).toBe('valid');
    // A process with a key of its own (no cache file) refuses it.
    expect(new ClientTokenAuthority(clock).verify(token)).toBe('invalid');
    expect(leaks([...first.lines, ...second.lines], [key])).toBe(false);
  });

  it('is never retired for age alone (tokens outstanding at a restart stay valid); never reused from the future', async () => {
    const path = await keyPath();
    const clock = new ManualClock();
    const key = await loadTokenKey(path, clock, recordingLogger().logger);
    const token = new ClientTokenAuthority(clock, key);
    clock.advance(30 * 86_400_000);
    const minted = token.mint(21600);
    const log = recordingLogger();
    const again = await loadTokenKey(path, clock, log.logger);
    expect(again.equals(key)).toBe(true);
    expect(log.lines.map((l) => [l.level, l.event])).toEqual([['info', 'token_key_loaded']]);
    expect(new ClientTokenAuthority(clock, again).verify(minted)).toBe('valid');

    await writeFile(path, formatTokenKeyDocument(key, clock.now() + 3600_000), { mode: 0o600 });
    expect(await readTokenKeyFile(path, { now: clock.now() })).toEqual({ ignored: 'created in the future' });
  });

  // Each spoils a good key file; every one is replaced with a warning that names no key.
  const spoilers: [string, (path: string, good: Buffer, now: number) => Promise<void>, RegExp][] = [
    ['mode 0644', (p) => chmod(p, 0o644), /open to group or others/],
    ['mode 0640', (p) => chmod(p, 0o640), /open to group or others/],
    [
      'a symbolic link to a good key file',
      async (p, good, now) => {
        const target = `${p}.elsewhere`;
        await writeFile(target, formatTokenKeyDocument(good, now), { mode: 0o600 });
        await rm(p);
        await symlink(target, p);
      },
      /symbolic link/,
    ],
    ['garbage', (p) => writeFile(p, '\x00\x01 not json', { mode: 0o600 }), /not valid JSON/],
    ['an empty file', (p) => writeFile(p, '', { mode: 0o600 }), /empty file/],
    ['a short key', (p, good, now) => writeFile(p, formatTokenKeyDocument(good.subarray(0, 16), now), { mode: 0o600 }), /not 32 bytes/],
    [
      'a key with characters outside base64url',
      async (p, good, now) => writeFile(p, formatTokenKeyDocument(good, now).replace(/"key":"(.)/, '"key":"*'), { mode: 0o600 }),
      /not 32 bytes/,
    ],
    ['another format', (p, good, now) => writeFile(p, formatTokenKeyDocument(good, now).replace('token-key', 'warm-start'), { mode: 0o600 }), /not a token-key/],
    ['a directory', async (p) => (await rm(p), mkdir(p, { mode: 0o700 })), /not a regular file/],
  ];

  it.each(spoilers)('replaces %s with a new key and a warning that names no key', async (_name, spoil, reason) => {
    const path = await keyPath();
    const clock = new ManualClock();
    const good = await loadTokenKey(path, clock, recordingLogger().logger);
    await spoil(path, good, clock.now());
    const log = recordingLogger();
    const fresh = await loadTokenKey(path, clock, log.logger);
    const isDirectory = (await lstat(path)).isDirectory();
    expect(fresh.equals(good)).toBe(false);
    expect(log.lines[0]?.level).toBe('warn');
    expect(log.lines[0]?.text).toMatch(reason);
    expect(leaks(log.lines, [good, fresh])).toBe(false);
    if (isDirectory) {
      // Cannot be replaced: the key is this process's own, and the warning says so.
      expect(log.lines[0]?.event).toBe('token_key_write_failed');
      return;
    }
    expect(log.lines[0]?.event).toBe('token_key_replaced');
    expect((await lstat(path)).isFile()).toBe(true);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    // What was written is what the next start reads.
    expect((await loadTokenKey(path, clock, recordingLogger().logger)).equals(fresh)).toBe(true);
  });

  it('ignores a key file owned by another user', async () => {
    const path = await keyPath();
    const clock = new ManualClock();
    await loadTokenKey(path, clock, recordingLogger().logger);
    const me = process.getuid!();
    expect(await readTokenKeyFile(path, { now: clock.now(), uid: me + 1 })).toEqual({ ignored: `owned by uid ${me}, not ${me + 1}` });
    expect('key' in (await readTokenKeyFile(path, { now: clock.now(), uid: me }))).toBe(true);
  });

  it('removes temp files a killed writer left, and nothing else', async () => {
    const path = await keyPath();
    await loadTokenKey(path, new ManualClock(), recordingLogger().logger);
    await writeFile(`${path}.1234567`, 'partial', { mode: 0o600 });
    await loadTokenKey(path, new ManualClock(), recordingLogger().logger);
    expect((await readdir(join(path, '..'))).sort()).toEqual(['credentials.json.token-key']);
    expect(await readFile(path, 'utf8')).toMatch(/^\{"format":"imds-cache-proxy\/token-key"/);
  });
});
