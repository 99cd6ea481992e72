// Type-only imports besides privateFile and imds/protocol: the crash test transpiles these alone and
// runs them in a child process.
import type { RoleCredentials } from '../imds/credentials.js';
import { isRoleName } from '../imds/protocol.js';
import type { CachedCredentials } from './credentialCache.js';
import { readPrivateFile, writePrivateFile } from './privateFile.js';

/**
 * The warm-start file (`--cache-file`): the cached credentials, kept across restarts so a
 * restart does not send every role back to IMDS. The file holds secrets: it is written 0600,
 * atomically (src/cache/privateFile.ts), and read back only if it is ours, private, well
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
  /** Credentials must outlive `now` by more than this (the proxy passes the expiry margin: servable is enough). */
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
const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;

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
  if (typeof raw.role !== 'string' || !isRoleName(raw.role)) return 'role missing or not a valid role name';
  if (!isTime(raw.fetchedAt)) return 'fetchedAt missing or not a time';
  const c = raw.credentials;
  if (!isObject(c)) return 'credentials missing or not an object';
  const limits = { accessKeyId: 128, secretAccessKey: 1024, token: 16384 } as const;
  for (const field of ['accessKeyId', 'secretAccessKey', 'token'] as const) {
    const v = c[field];
    if (typeof v !== 'string' || v.length > limits[field] || !PRINTABLE_ASCII.test(v)) {
      return `credentials.${field} missing or malformed`;
    }
  }
  if (typeof c.type !== 'string' || c.type.length > 64 || !PRINTABLE_ASCII.test(c.type)) {
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
      : `credentials expire in ${Math.floor(left / 1000)}s, inside the expiry margin (${Math.floor(opts.minValidityMs / 1000)}s)`;
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

/** Reads and validates the warm-start file. Never throws: any failure is `{ ignored: reason }`. */
export async function readWarmStartFile(path: string, opts: WarmStartReadOptions): Promise<WarmStartReadResult> {
  const read = await readPrivateFile(path, { maxBytes: WARM_START_MAX_BYTES, ...(opts.uid !== undefined ? { uid: opts.uid } : {}) });
  return 'ignored' in read ? read : parseWarmStartDocument(read.text, opts);
}

/** Writes the file atomically, 0600; writes to one path run in call order, so the last call wins. */
export function writeWarmStartFile(path: string, entries: readonly WarmStartEntry[]): Promise<void> {
  return writePrivateFile(path, formatWarmStartDocument(entries));
}

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
 * written once, `debounceMs` after the first unwritten save (later saves replace them, they do
 * not postpone the write). One write at a time; a save during a write is written after it.
 * `flush()` writes anything pending now and resolves when nothing is left to write. Write
 * failures are logged, never thrown: the file is an optimisation.
 */
export class WarmStartWriter {
  private pending: readonly WarmStartEntry[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private readonly debounceMs: number;
  private readonly write: (path: string, entries: readonly WarmStartEntry[]) => Promise<void>;

  constructor(private readonly options: WarmStartWriterOptions) {
    this.debounceMs = options.debounceMs ?? 1000;
    this.write = options.write ?? writeWarmStartFile;
  }

  save(entries: readonly WarmStartEntry[]): void {
    this.pending = entries;
    this.timer ??= setTimeout(() => void this.flush(), this.debounceMs).unref();
  }

  async flush(): Promise<void> {
    // Loop: a save may land while the write we waited for was running.
    while (this.writing !== undefined || this.pending !== undefined) {
      if (this.writing === undefined) this.writing = this.writeLogged(this.takePending());
      await this.writing;
    }
  }

  private takePending(): readonly WarmStartEntry[] {
    clearTimeout(this.timer);
    this.timer = undefined;
    const entries = this.pending ?? [];
    this.pending = undefined;
    return entries;
  }

  private async writeLogged(entries: readonly WarmStartEntry[]): Promise<void> {
    try {
      await this.write(this.options.path, entries);
    } catch (error) {
      this.options.logger?.warn(
        { event: 'warm_start_write_failed', code: (error as NodeJS.ErrnoException)?.code ?? 'unknown', path: this.options.path },
        'could not write the warm-start file; restarts will fetch from IMDS',
      );
    } finally {
      this.writing = undefined;
    }
  }
}
