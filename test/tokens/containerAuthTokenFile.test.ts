import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { createLogger } from '../../src/runtime/log.js';
import { ContainerAuthTokenFile, TOKEN_FILE_RECHECK_MS } from '../../src/tokens/containerAuthTokenFile.js';
import { UsageError } from '../../src/config/usageError.js';

const OLD = 'old-token-0123456789abcdef';
const NEW = 'new-token-fedcba9876543210';

function recordingLogger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger('debug', sink), events: () => lines.map((l) => l.event), lines };
}

describe('the container auth token file', () => {
  let dir: string;
  let path: string;
  let clock: ManualClock;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'imds-container-token-'));
    path = join(dir, 'token');
    clock = new ManualClock();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const open = (log = recordingLogger(), warnings: string[] = []) =>
    ContainerAuthTokenFile.open({ path, source: 'IMDS_PROXY_CONTAINER_AUTH_TOKEN_FILE', clock, logger: log.logger, warn: (l) => warnings.push(l) });

  it('is created when missing: random, no newline, 0600, owned by the proxy, and that token is accepted', async () => {
    const log = recordingLogger();
    const check = await open(log);
    const token = readFileSync(path, 'utf8');
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    const s = statSync(path);
    expect(s.mode & 0o777).toBe(0o600);
    expect(s.uid).toBe(process.getuid!());
    expect(await check.accepts(token)).toBe(true);
    expect(await check.accepts(`${token}\n`)).toBe(false);
    expect(log.events()).toContain('container_auth_token_created');
    expect(JSON.stringify(log.lines)).not.toContain(token);

    // A second start keeps the file it finds, and a second file is another token.
    await open();
    expect(readFileSync(path, 'utf8')).toBe(token);
    rmSync(path);
    await open();
    expect(readFileSync(path, 'utf8')).not.toBe(token);
  });

  it('warns at start, naming the fix, when an existing file ends in a newline, and accepts the token without it', async () => {
    writeFileSync(path, `${OLD}\n`);
    const log = recordingLogger();
    const warnings: string[] = [];
    const check = await open(log, warnings);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^WARNING: .*ends in a newline/);
    expect(warnings[0]).toContain(`printf '%s'`);
    expect(log.events()).toContain('container_auth_token_newline');
    expect(await check.accepts(OLD)).toBe(true);

    writeFileSync(path, OLD);
    const quiet: string[] = [];
    await open(recordingLogger(), quiet);
    expect(quiet).toEqual([]);
  });

  it('a rotated file: the new token works at once, the old one is refused once the recheck interval has passed', async () => {
    writeFileSync(path, OLD);
    const log = recordingLogger();
    const check = await open(log);
    expect(await check.accepts(OLD)).toBe(true);

    // Rotation as recommended: write a new file, rename it over the old one.
    writeFileSync(`${path}.new`, NEW);
    renameSync(`${path}.new`, path);
    expect(await check.accepts(NEW)).toBe(true);
    expect(log.events()).toContain('container_auth_token_reloaded');
    // That look at the file already replaced the old token.
    expect(await check.accepts(OLD)).toBe(false);

    // Rewritten in place, no request with the new token: the old one lasts at most one interval.
    writeFileSync(path, OLD);
    clock.advance(TOKEN_FILE_RECHECK_MS - 1);
    expect(await check.accepts(NEW)).toBe(true);
    clock.advance(1);
    expect(await check.accepts(NEW)).toBe(false);
    expect(await check.accepts(OLD)).toBe(true);
  });

  it('a clock stepped back does not stop the rechecks', async () => {
    writeFileSync(path, OLD);
    const check = await open();
    writeFileSync(path, NEW);
    clock.advance(-3600_000);
    expect(await check.accepts(OLD)).toBe(false);
  });

  it('a file deleted, emptied or caught mid-write keeps the previous token in service, warned once', async () => {
    writeFileSync(path, OLD);
    const log = recordingLogger();
    const check = await open(log);
    for (const broken of ['', 'short', 'has a space in it, 0123456789']) {
      writeFileSync(path, broken);
      clock.advance(TOKEN_FILE_RECHECK_MS);
      expect(await check.accepts(OLD)).toBe(true);
      clock.advance(TOKEN_FILE_RECHECK_MS);
      expect(await check.accepts(OLD)).toBe(true);
    }
    rmSync(path);
    clock.advance(TOKEN_FILE_RECHECK_MS);
    expect(await check.accepts(OLD)).toBe(true);
    // One warning per distinct problem ('' and 'short' are the same one), not one per look.
    expect(log.events().filter((e) => e === 'container_auth_token_unreadable')).toHaveLength(3);
    writeFileSync(path, NEW);
    expect(await check.accepts(NEW)).toBe(true);
  });

  it('refuses at start, naming the variable it came from, a file it cannot use or create', async () => {
    const cases: [() => void, RegExp][] = [
      [() => writeFileSync(path, 'short\n'), /^IMDS_PROXY_CONTAINER_AUTH_TOKEN_FILE: ".*" holds no token of at least 16 characters$/],
      [() => writeFileSync(path, 'two words 0123456789abcdef'), /^IMDS_PROXY_CONTAINER_AUTH_TOKEN_FILE: .*characters an HTTP header cannot carry/],
      [() => (path = join(dir, 'missing-dir', 'token')), /^IMDS_PROXY_CONTAINER_AUTH_TOKEN_FILE: cannot create ".*" \(ENOENT\); the directory ".*missing-dir" does not exist$/],
    ];
    for (const [setUp, message] of cases) {
      setUp();
      const error = await open().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UsageError);
      expect((error as Error).message).toMatch(message);
    }
  });
});
