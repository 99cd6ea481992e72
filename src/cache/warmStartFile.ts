import { constants as fsConstants } from 'node:fs';
import { lstat, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename as pathBasename, dirname, join } from 'node:path';
// Type-only imports: this module has no runtime dependency outside node: built-ins, so the
// crash test can transpile it alone and run it in a child process.
import type { RoleCredentials } from '../imds/credentials.js';
import type { CachedCredentials } from './credentialCache.js';

/**
 * The warm-start file (`--cache-file`): the cached credentials, kept across restarts so a
 * restart does not send every role back to IMDS. The file holds secrets: it is written 0600,
 * atomically (temp file, fsync, rename), and read back only if it is ours, private, well
 * formed and still worth serving. Anything else is ignored with a reason that names no secret.
 * See docs/warm-start.md.
 */

export interface WarmStartEntry {
  role: string;
  credentials: RoleCredentials;
  fetchedAt: number;
}

export type WarmStartReadResult = { entries: WarmStartEntry[] } | { ignored: string };

export interface WarmStartReadOptions {
  /** Epoch ms. */
  now: number;
  /** Credentials must outlive `now` by more than this (the lead passes `refreshBeforeMs`). */
  minValidityMs: number;
  /** The owner the file must have; defaults to `process.getuid()`. */
  uid?: number;
}

export const WARM_START_FORMAT = 'imds-cache-proxy/warm-start';
export const WARM_START_VERSION = 1;
/** A few roles' credentials are a few KiB; anything this large is not ours. */
export const WARM_START_MAX_BYTES = 64 * 1024;

const MAX_ENTRIES = 64;
/** Credentials strings: printable ASCII without spaces (key ids, base64 secrets and tokens). */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;
/** IAM role names: up to 64 of `[\w+=,.@-]`. */
const ROLE_NAME = /^[\w+=,.@-]{1,64}$/;

// ---------------------------------------------------------------------------------------
// Pure: the document format and its validation.
// ---------------------------------------------------------------------------------------

interface StoredCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  token: string;
  expiration: number;
  /** null when IMDS sent no LastUpdated (held as NaN in memory; JSON has no NaN). */
  lastUpdated: number | null;
  type: string;
  accountId?: string;
}

export function formatWarmStartDocument(entries: readonly WarmStartEntry[]): string {
  const doc = {
    format: WARM_START_FORMAT,
    version: WARM_START_VERSION,
    entries: entries.map(({ role, credentials: c, fetchedAt }) => {
      const stored: StoredCredentials = {
        accessKeyId: c.accessKeyId,
        secretAccessKey: c.secretAccessKey,
        token: c.token,
        expiration: c.expiration,
        lastUpdated: Number.isFinite(c.lastUpdated) ? c.lastUpdated : null,
        type: c.type,
        ...(c.accountId !== undefined ? { accountId: c.accountId } : {}),
      };
      return { role, fetchedAt, credentials: stored };
    }),
  };
  return `${JSON.stringify(doc)}\n`;
}

/**
 * Validates a warm-start document. All or nothing: one bad entry and the whole file is
 * ignored (the proxy then simply starts cold). Reasons name fields and indexes, never values.
 */
export function parseWarmStartDocument(
  text: string,
  opts: { now: number; minValidityMs: number },
): WarmStartReadResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { ignored: 'not valid JSON' };
  }
  if (!isObject(doc)) return { ignored: 'not a JSON object' };
  if (doc.format !== WARM_START_FORMAT) return { ignored: 'not a warm-start file (format field missing or wrong)' };
  if (doc.version !== WARM_START_VERSION) {
    const v = typeof doc.version === 'number' && Number.isFinite(doc.version) ? String(doc.version) : 'missing';
    return { ignored: `unsupported version ${v} (expected ${WARM_START_VERSION})` };
  }
  if (!Array.isArray(doc.entries)) return { ignored: 'entries missing or not an array' };
  if (doc.entries.length === 0) return { ignored: 'no entries' };
  if (doc.entries.length > MAX_ENTRIES) return { ignored: `more than ${MAX_ENTRIES} entries` };

  const entries: WarmStartEntry[] = [];
  const seen = new Set<string>();
  for (const [i, raw] of doc.entries.entries()) {
    const parsed = parseEntry(raw, opts);
    if (typeof parsed === 'string') return { ignored: `entry ${i}: ${parsed}` };
    if (seen.has(parsed.role)) return { ignored: `entry ${i}: duplicate role` };
    seen.add(parsed.role);
    entries.push(parsed);
  }
  return { entries };
}

/** An entry, or the reason it is not one. */
function parseEntry(raw: unknown, opts: { now: number; minValidityMs: number }): WarmStartEntry | string {
  if (!isObject(raw)) return 'not an object';
  if (typeof raw.role !== 'string' || !ROLE_NAME.test(raw.role)) return 'role missing or not a valid role name';
  if (!isTime(raw.fetchedAt)) return 'fetchedAt missing or not a time';
  const c = raw.credentials;
  if (!isObject(c)) return 'credentials missing or not an object';
  const limits = { accessKeyId: 128, secretAccessKey: 1024, token: 16384 } as const;
  for (const field of ['accessKeyId', 'secretAccessKey', 'token'] as const) {
    const v = c[field];
    if (typeof v !== 'string' || v.length > limits[field] || !TOKEN_CHARS.test(v)) {
      return `credentials.${field} missing or malformed`;
    }
  }
  if (typeof c.type !== 'string' || c.type.length > 64 || !TOKEN_CHARS.test(c.type)) {
    return 'credentials.type missing or malformed';
  }
  if (c.accountId !== undefined && (typeof c.accountId !== 'string' || !/^\d{1,32}$/.test(c.accountId))) {
    return 'credentials.accountId malformed';
  }
  if (!isTime(c.expiration)) return 'credentials.expiration missing or not a time';
  if (c.lastUpdated !== null && !isTime(c.lastUpdated)) return 'credentials.lastUpdated not a time';
  const left = c.expiration - opts.now;
  if (left <= opts.minValidityMs) {
    return left <= 0
      ? 'credentials expired'
      : `credentials expire in ${Math.floor(left / 1000)}s, inside the refresh window (${Math.floor(opts.minValidityMs / 1000)}s)`;
  }
  const credentials: RoleCredentials = {
    accessKeyId: c.accessKeyId as string,
    secretAccessKey: c.secretAccessKey as string,
    token: c.token as string,
    expiration: c.expiration,
    lastUpdated: c.lastUpdated === null ? Number.NaN : (c.lastUpdated as number),
    type: c.type,
    ...(typeof c.accountId === 'string' ? { accountId: c.accountId } : {}),
  };
  return { role: raw.role, credentials, fetchedAt: raw.fetchedAt };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

/** The cache's contents as warm-start entries: every listed role that has credentials. */
export function warmStartEntriesFrom(snapshot: {
  roles: readonly string[] | undefined;
  entries: ReadonlyMap<string, CachedCredentials>;
}): WarmStartEntry[] {
  const out: WarmStartEntry[] = [];
  for (const role of snapshot.roles ?? []) {
    const cached = snapshot.entries.get(role);
    if (cached !== undefined) out.push({ role, credentials: cached.credentials, fetchedAt: cached.fetchedAt });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// I/O: reading, atomic writing, stale temp files.
// ---------------------------------------------------------------------------------------

/**
 * Reads the warm-start file. Never throws: any failure is `{ ignored: reason }`.
 *
 * The file is opened with O_NOFOLLOW and checked with fstat on the open descriptor, so the
 * checks apply to the very file that is read (no lstat-then-open race).
 */
export async function readWarmStartFile(path: string, opts: WarmStartReadOptions): Promise<WarmStartReadResult> {
  let handle: FileHandle | undefined;
  try {
    try {
      // O_NONBLOCK: opening a FIFO planted at `path` must not hang the start.
      handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { ignored: 'no file' };
      if (code === 'ELOOP') return { ignored: 'is a symbolic link' };
      return { ignored: `cannot open (${code ?? 'unknown error'})` };
    }
    const st = await handle.stat();
    if (!st.isFile()) return { ignored: 'not a regular file' };
    const uid = opts.uid ?? process.getuid?.();
    if (uid !== undefined && st.uid !== uid) return { ignored: `owned by uid ${st.uid}, not ${uid}` };
    if ((st.mode & 0o077) !== 0) {
      return { ignored: `mode ${(st.mode & 0o777).toString(8).padStart(4, '0')} is open to group or others (want 0600)` };
    }
    if (st.size > WARM_START_MAX_BYTES) return { ignored: `larger than ${WARM_START_MAX_BYTES} bytes` };
    // Read at most one byte past the limit, whatever fstat said: the size may have changed.
    const buffer = Buffer.alloc(WARM_START_MAX_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) return { ignored: `larger than ${WARM_START_MAX_BYTES} bytes` };
    }
    if (length === 0) return { ignored: 'empty file' };
    return parseWarmStartDocument(buffer.toString('utf8', 0, length), opts);
  } catch (error) {
    return { ignored: `cannot read (${(error as NodeJS.ErrnoException).code ?? 'unknown error'})` };
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Temp files of this process's writes in progress: `cleanStaleTempFiles` leaves them alone. */
const inFlightTempFiles = new Set<string>();
/** Per path, the tail of the write queue: one process's writes never interleave. */
const writeQueues = new Map<string, Promise<void>>();

/**
 * Writes the file atomically: a 0600 temp file in the same directory, fsync, rename over
 * `path`, fsync the directory (best effort). A crash at any moment leaves the old file or
 * the new one, never a torn one. Writes to one path from this process run one after
 * another in call order, so the last call wins. The directory must exist.
 */
export function writeWarmStartFile(path: string, entries: readonly WarmStartEntry[]): Promise<void> {
  const body = formatWarmStartDocument(entries);
  const previous = writeQueues.get(path) ?? Promise.resolve();
  const mine = previous.catch(() => undefined).then(() => writeAtomically(path, body));
  const tail = mine.catch(() => undefined);
  writeQueues.set(path, tail);
  void tail.then(() => {
    if (writeQueues.get(path) === tail) writeQueues.delete(path);
  });
  return mine;
}

async function writeAtomically(path: string, body: string): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  inFlightTempFiles.add(temp);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, 'wx', 0o600);
    // The umask may have narrowed the mode; never widened it. Make it exactly 0600.
    await handle.chmod(0o600);
    await handle.writeFile(body, 'utf8');
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  } finally {
    inFlightTempFiles.delete(temp);
  }
  await syncDirectory(dirname(path));
}

/** Makes the rename itself durable. Best effort: some filesystems refuse fsync on a directory. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    await handle.sync();
  } catch {
    // ignored
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Removes temp files a killed writer left next to `path` (`<name>.<pid>.<hex>.tmp`), unless
 * they belong to a live process or to a write of this process in progress. They never
 * affect reading (the reader opens only `path`); this only keeps the directory tidy.
 * Returns how many were removed. Never throws.
 */
export async function cleanStaleTempFiles(path: string): Promise<number> {
  const dir = dirname(path);
  const prefix = `${pathBasename(path)}.`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)\.[0-9a-f]+\.tmp$/.exec(name.slice(prefix.length));
    if (m === null) continue;
    const full = join(dir, name);
    if (inFlightTempFiles.has(full)) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && isAlive(pid)) continue;
    try {
      if (!(await lstat(full)).isFile()) continue;
      await unlink(full);
      removed++;
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ---------------------------------------------------------------------------------------
// The writer the cache drives: coalesces saves, one write at a time, flush on shutdown.
// ---------------------------------------------------------------------------------------

export interface WarmStartWriterOptions {
  path: string;
  /** Saves within this long of the first unwritten one are written together. Default 1000. */
  debounceMs?: number;
  /** Told about failed writes; pino's Logger fits. The message names no secret. */
  logger?: { warn(obj: object, msg: string): void };
  /** For tests. */
  write?: (path: string, entries: readonly WarmStartEntry[]) => Promise<void>;
}

/**
 * Call `save(entries)` after every change of the cached credentials; the latest entries are
 * written once, `debounceMs` after the first unwritten save (saves in between replace them,
 * they do not postpone the write). At most one write runs at a time; a save during a write is
 * written after it. `flush()` writes anything pending now and resolves when nothing is left
 * to write. Write failures are logged, never thrown: the file is an optimisation.
 */
export class WarmStartWriter {
  private pending: readonly WarmStartEntry[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly debounceMs: number;
  private readonly write: (path: string, entries: readonly WarmStartEntry[]) => Promise<void>;

  constructor(private readonly options: WarmStartWriterOptions) {
    this.debounceMs = options.debounceMs ?? 1000;
    this.write = options.write ?? writeWarmStartFile;
  }

  save(entries: readonly WarmStartEntry[]): void {
    this.pending = entries;
    if (this.timer === undefined && this.running === undefined) this.arm();
  }

  async flush(): Promise<void> {
    // Loop: a save may land while the write we waited for was running.
    while (this.running !== undefined || this.pending !== undefined) {
      if (this.running === undefined) this.start();
      await this.running;
    }
  }

  private arm(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.start();
    }, this.debounceMs);
    this.timer.unref();
  }

  private start(): void {
    const entries = this.pending;
    if (entries === undefined || this.running !== undefined) return;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.pending = undefined;
    this.running = this.write(this.options.path, entries)
      .catch((error: unknown) => {
        const e = error as NodeJS.ErrnoException;
        this.options.logger?.warn(
          { event: 'warm_start_write_failed', code: e?.code ?? 'unknown', path: this.options.path },
          'could not write the warm-start file; restarts will fetch from IMDS',
        );
      })
      .finally(() => {
        this.running = undefined;
        if (this.pending !== undefined && this.timer === undefined) this.arm();
      });
  }
}
