import { constants as fsConstants } from 'node:fs';
import { lstat, open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import writeFileAtomic from 'write-file-atomic';

/**
 * Small files that hold secrets and survive restarts (the warm-start file, the client-token
 * key): read only if they are ours and private, written 0600 and atomically. One
 * implementation for every such file. See docs/warm-start.md.
 */

export type PrivateFileReadResult = { text: string } | { ignored: string };

/**
 * Reads `path` if it is a regular file (never through a symbolic link), owned by `uid`
 * (default: ours), with no group or other permission bits, and 1..`maxBytes` bytes long.
 * Never throws: any failure is `{ ignored: reason }`, and no reason quotes the contents.
 * The checks use fstat on the open descriptor, so they apply to the very file that is read.
 */
export async function readPrivateFile(path: string, opts: { maxBytes: number; uid?: number }): Promise<PrivateFileReadResult> {
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
    if (st.size > opts.maxBytes) return { ignored: `larger than ${opts.maxBytes} bytes` };
    // Read at most one byte past the limit, whatever fstat said: the size may have changed.
    const buffer = Buffer.alloc(opts.maxBytes + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) return { ignored: `larger than ${opts.maxBytes} bytes` };
    }
    if (length === 0) return { ignored: 'empty file' };
    return { text: buffer.toString('utf8', 0, length) };
  } catch (error) {
    return { ignored: `cannot read (${(error as NodeJS.ErrnoException).code ?? 'unknown error'})` };
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Replaces `path` atomically with `data`, mode 0600 and owned by us, via write-file-atomic
 * (temp file beside it, fsync, rename; writes to one path from this process run in call
 * order). A crash leaves the old file or the new one, never a torn one. The directory must
 * exist, and only the proxy's user should be able to write to it (see docs/warm-start.md).
 */
export async function writePrivateFile(path: string, data: string): Promise<void> {
  // write-file-atomic writes through a symbolic link to its target; replace the link instead.
  const existing = await lstat(path).catch(() => undefined);
  if (existing?.isSymbolicLink()) await unlink(path);
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  await writeFileAtomic(path, data, {
    mode: 0o600,
    // Explicit: by default it copies the owner of the file it replaces.
    ...(uid !== undefined && gid !== undefined ? { chown: { uid, gid } } : {}),
    // Its temp name is predictable and opened without O_EXCL: refuse, before a byte is
    // written, anything planted there (a link, a file of someone else's).
    tmpfileCreated: async (temp: string) => {
      const st = await lstat(temp);
      if (!st.isFile() || st.nlink !== 1 || (uid !== undefined && st.uid !== uid)) {
        throw Object.assign(new Error('temp file was not created by this process'), { code: 'EEXIST' });
      }
    },
  });
}

/**
 * Removes what writers killed mid-write (SIGKILL, power loss) left beside `path`: write-file-atomic's
 * `<name>.<digits>` temp files, and the `<name>.<pid>.<hex>.tmp` ones of versions before it.
 * They may hold secrets; the reader never opens them. Only regular files owned by us go.
 * Call it at start, before this process writes `path`. Returns how many went; never throws.
 */
export async function removeStaleTempFiles(path: string): Promise<number> {
  const dir = dirname(path);
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  const uid = process.getuid?.();
  let removed = 0;
  for (const name of names) {
    if (!name.startsWith(prefix) || !/^(\d+|\d+\.[0-9a-f]+\.tmp)$/.test(name.slice(prefix.length))) continue;
    const full = join(dir, name);
    try {
      const st = await lstat(full);
      if (!st.isFile() || (uid !== undefined && st.uid !== uid)) continue;
      await unlink(full);
      removed++;
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}
