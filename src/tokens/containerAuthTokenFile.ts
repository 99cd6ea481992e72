import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/log.js';
import { UsageError } from '../config/usageError.js';

/** What the container-credentials route asks: is this Authorization value the token? */
export interface ContainerAuthCheck {
  accepts(given: string): Promise<boolean>;
}

/** How often, at most, the file is looked at again for a rotation (one stat per interval). */
export const TOKEN_FILE_RECHECK_MS = 1_000;
const MIN_TOKEN_LENGTH = 16;

const digest = (value: string) => createHash('sha256').update(value).digest();

interface Options {
  path: string;
  /** The flag or variable the path came from, named in every complaint about it. */
  source: string;
  clock: Clock;
  logger: Logger;
  /** Start-up warnings also go to stderr, where an operator starting it by hand sees them. */
  warn?: (line: string) => void;
  recheckMs?: number;
}

/**
 * The container-credentials Authorization token, kept in a file shared with the clients
 * (`AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`). A missing file is created (random, no newline,
 * 0600); a rotated file is picked up without a restart: a request looks at the file again
 * when the last look is older than `recheckMs`, and at once when its token does not match,
 * so a new token works immediately and the old one stops working within `recheckMs`.
 */
export class ContainerAuthTokenFile implements ContainerAuthCheck {
  private expected: Buffer;
  private version: string;
  private lastCheck: number;
  private checking: Promise<void> | undefined;

  private constructor(
    private readonly options: Options,
    token: string,
    version: string,
  ) {
    this.expected = digest(token);
    this.version = version;
    this.lastCheck = options.clock.now();
  }

  /** Reads (or creates) the file; anything wrong with it is a UsageError naming `source`. */
  static async open(options: Options): Promise<ContainerAuthTokenFile> {
    const { path, source, logger } = options;
    if (await createIfMissing(path, source)) {
      logger.info({ event: 'container_auth_token_created', path }, 'created a container auth token file (0600, no newline)');
    }
    const read = await readToken(path);
    if ('problem' in read) throw new UsageError(`${source}: ${read.problem}`);
    if (read.trailingNewline) {
      const warning = newlineWarning(path);
      logger.warn({ event: 'container_auth_token_newline', path }, warning);
      options.warn?.(`WARNING: ${warning}`);
    }
    return new ContainerAuthTokenFile(options, read.token, read.version);
  }

  async accepts(given: string): Promise<boolean> {
    const recheckMs = this.options.recheckMs ?? TOKEN_FILE_RECHECK_MS;
    // A clock stepped back must not stop the rechecks: any distance that large counts.
    const due = Math.abs(this.options.clock.now() - this.lastCheck) >= recheckMs;
    if (due) await this.recheck();
    if (this.matches(given)) return true;
    if (due) return false;
    // A token we do not know may be the one just written: look before refusing it.
    await this.recheck();
    return this.matches(given);
  }

  private matches(given: string): boolean {
    return timingSafeEqual(digest(given), this.expected);
  }

  /** One look at the file at a time, however many requests wait for it. */
  private recheck(): Promise<void> {
    this.checking ??= this.reload().finally(() => {
      this.lastCheck = this.options.clock.now();
      this.checking = undefined;
    });
    return this.checking;
  }

  private async reload(): Promise<void> {
    const { path, logger } = this.options;
    const version = await fileVersion(path).catch(() => undefined);
    if (version === this.version) return;
    const read = await readToken(path);
    if ('problem' in read) {
      // Keep serving with the token we have: a file caught mid-rewrite or deleted by
      // mistake must not lock every container out. The next look tries again.
      if (this.version !== `problem:${read.problem}`) {
        logger.warn({ event: 'container_auth_token_unreadable', path, reason: read.problem }, 'container auth token file not usable; keeping the previous token');
      }
      this.version = `problem:${read.problem}`;
      return;
    }
    if (read.trailingNewline) logger.warn({ event: 'container_auth_token_newline', path }, newlineWarning(path));
    this.expected = digest(read.token);
    this.version = read.version;
    logger.info({ event: 'container_auth_token_reloaded', path }, 'container auth token file changed; using the new token');
  }
}

function newlineWarning(path: string): string {
  return (
    `the container auth token file "${path}" ends in a newline; SDKs send the file as it is and botocore ` +
    `and the JS SDK v3 refuse a header with a newline. Rewrite it without one (printf '%s' "$(cat ${path})" > ${path}.new && mv ${path}.new ${path}), ` +
    'or delete it and let the proxy create one'
  );
}

async function fileVersion(path: string): Promise<string> {
  const s = await stat(path, { bigint: true });
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

/**
 * Creates the file with a fresh random token unless it exists; true when it created it.
 * Not cache/privateFile.ts: this file is shared with the clients (a group may read it), and
 * creating it must never replace one that exists, which O_EXCL ('wx') guarantees.
 */
async function createIfMissing(path: string, source: string): Promise<boolean> {
  try {
    await stat(path);
    return false;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return false; // readToken reports it
  }
  try {
    // 'wx': never overwrite a file that appeared meanwhile; 0600: the token is a secret.
    await writeFile(path, randomBytes(32).toString('hex'), { flag: 'wx', mode: 0o600 });
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    if (code === 'EEXIST') return false;
    const hint = code === 'ENOENT' ? `; the directory "${dirname(path)}" does not exist` : '';
    throw new UsageError(`${source}: cannot create "${path}" (${code})${hint}`);
  }
}

type TokenRead = { token: string; version: string; trailingNewline: boolean } | { problem: string };

async function readToken(path: string): Promise<TokenRead> {
  let raw: string;
  let version: string;
  try {
    version = await fileVersion(path);
    raw = await readFile(path, 'utf8');
  } catch (error) {
    return { problem: `cannot read "${path}" (${(error as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  const token = raw.trim();
  if (token.length < MIN_TOKEN_LENGTH) return { problem: `"${path}" holds no token of at least ${MIN_TOKEN_LENGTH} characters` };
  // Anything an HTTP header cannot carry would be refused by every client before it is sent.
  if (!/^[\x21-\x7e]+$/.test(token)) return { problem: `"${path}" holds characters an HTTP header cannot carry (spaces, control or non-ASCII characters)` };
  return { token, version, trailingNewline: /[\r\n]$/.test(raw) };
}
