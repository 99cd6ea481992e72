import { randomBytes } from 'node:crypto';
import type { Clock } from '../runtime/clock.js';
import { readPrivateFile, removeStaleTempFiles, writePrivateFile } from '../cache/privateFile.js';
import { TOKEN_KEY_BYTES } from './clientTokens.js';

/**
 * The client-token key, kept beside the warm-start file so that tokens minted before a restart
 * are still valid after it. Whoever reads it can mint tokens: it gets the warm-start file's
 * protection (0600, owner-checked, never through a link, never logged). See docs/warm-start.md.
 */

export const TOKEN_KEY_FORMAT = 'imds-cache-proxy/token-key';
const TOKEN_KEY_VERSION = 1;
/** A key stamped later than this ahead of now was not made by a clock we trust. */
const FUTURE_SLACK_MS = 5 * 60_000;
const MAX_BYTES = 1024;

/** pino's Logger fits. */
type KeyLogger = Record<'info' | 'warn', (obj: object, msg: string) => void>;

/** One setting for both files: the key lives beside the cache file, with its protection. */
export function tokenKeyPathFor(cacheFile: string): string {
  return `${cacheFile}.token-key`;
}

export function formatTokenKeyDocument(key: Buffer, createdAt: number): string {
  return `${JSON.stringify({ format: TOKEN_KEY_FORMAT, version: TOKEN_KEY_VERSION, createdAt, key: key.toString('base64url') })}\n`;
}

/** The key if the file passes every check; otherwise why not, in words that never quote it. */
export async function readTokenKeyFile(
  path: string,
  opts: { now: number; uid?: number },
): Promise<{ key: Buffer; createdAt: number } | { ignored: string }> {
  const read = await readPrivateFile(path, { maxBytes: MAX_BYTES, ...(opts.uid !== undefined ? { uid: opts.uid } : {}) });
  if ('ignored' in read) return read;
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(read.text) as Record<string, unknown>;
  } catch {
    return { ignored: 'not valid JSON' };
  }
  if (doc?.format !== TOKEN_KEY_FORMAT || doc.version !== TOKEN_KEY_VERSION) return { ignored: 'not a token-key file of this version' };
  const key = typeof doc.key === 'string' ? Buffer.from(doc.key, 'base64url') : undefined;
  // Re-encoding catches characters Buffer.from skips silently.
  if (key?.length !== TOKEN_KEY_BYTES || key.toString('base64url') !== doc.key) return { ignored: `key is not ${TOKEN_KEY_BYTES} bytes of base64url` };
  const createdAt = doc.createdAt;
  if (typeof createdAt !== 'number' || !Number.isSafeInteger(createdAt) || createdAt <= 0) return { ignored: 'createdAt missing or not a time' };
  if (createdAt > opts.now + FUTURE_SLACK_MS) return { ignored: 'created in the future' };
  // No age limit: retiring a key at start 401s every outstanding token (docs/warm-start.md).
  return { key, createdAt };
}

/**
 * The key to mint client tokens with: the one in `path` while it is valid, else a new random
 * key written there (0600). Never throws: if the file cannot be written, the key is simply
 * this process's own, as without a cache file.
 */
export async function loadTokenKey(path: string, clock: Clock, logger: KeyLogger): Promise<Buffer> {
  await removeStaleTempFiles(path);
  const read = await readTokenKeyFile(path, { now: clock.now() });
  if ('key' in read) {
    const ageSeconds = Math.max(0, Math.floor((clock.now() - read.createdAt) / 1000));
    logger.info({ event: 'token_key_loaded', path, ageSeconds }, 'client-token key reused: tokens from before the restart stay valid');
    return read.key;
  }
  const key = randomBytes(TOKEN_KEY_BYTES);
  try {
    await writePrivateFile(path, formatTokenKeyDocument(key, clock.now()));
    if (read.ignored === 'no file') logger.info({ event: 'token_key_created', path }, 'new client-token key');
    else logger.warn({ event: 'token_key_replaced', path, reason: read.ignored }, 'client-token key file not used; replaced with a new key');
  } catch (error) {
    logger.warn(
      { event: 'token_key_write_failed', path, reason: read.ignored, code: (error as NodeJS.ErrnoException).code ?? 'unknown' },
      'could not keep the client-token key; tokens will not survive a restart',
    );
  }
  return key;
}
