/**
 * Durable file writing for adapters that keep data in local files: whole writes (a short write is never taken
 * for a complete one), atomic replacement, folder syncs, and one mapping of file-system failures to
 * {@link StowageError}s that name the file.
 *
 * Every standalone store acknowledges a write only after these helpers return, so a crash-safety fix made here
 * lands in all of them at once.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { constants, type FileHandle, link, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { StowageError, type StowageErrorCode } from '../ports/errors.js';
import type { ErrorReason } from './errors.js';

/**
 * Writes all of `data` at `position` of an open file, or throws.
 *
 * `FileHandle.write` may write fewer bytes than asked (a file system that is almost full does, and the next
 * write then fails with ENOSPC); this loops until every byte is written, so a caller never acknowledges a
 * record whose tail is missing. On a throw, part of `data` may be in the file: the caller restores the file's
 * previous end (see {@link truncateQuietly}).
 *
 * @param handle - An open file handle, writable.
 * @param data - The bytes to write.
 * @param position - Where in the file to write them.
 */
export async function writeFully(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let offset = 0;
  while (offset < data.byteLength) {
    const { bytesWritten } = await handle.write(data, offset, data.byteLength - offset, position + offset);
    if (bytesWritten <= 0) {
      throw Object.assign(new Error(`write made no progress at byte ${position + offset}`), { code: 'EIO' });
    }
    offset += bytesWritten;
  }
}

/**
 * Cuts a file back to `length` bytes after a failed write, and syncs the cut. Errors are swallowed: the
 * caller is already reporting the write's own failure, and a file left longer than `length` is cut again by
 * the caller's next attempt or its recovery scan.
 *
 * @returns Whether the file is now `length` bytes long on disk.
 */
export async function truncateQuietly(handle: FileHandle, length: number): Promise<boolean> {
  try {
    await handle.truncate(length);
    await handle.sync();
    return true;
  } catch {
    return false;
  }
}

/** Flushes a folder's entries (a file created, renamed or removed is durable only once its folder is). */
export async function syncDirectory(dir: string): Promise<void> {
  await syncOpenDirectory(await open(dir, 'r'));
}

/** Flushes the folder open as `handle`, then closes it. */
async function syncOpenDirectory(handle: FileHandle): Promise<void> {
  try {
    await handle.sync();
  } catch (err) {
    // Some file systems refuse fsync on a folder; the entry is then as durable as they make it.
    const code = (err as { code?: string }).code;
    if (code !== 'EINVAL' && code !== 'EISDIR') throw err;
  } finally {
    // Nothing waits for the close: the folder is durable once sync returned, and each awaited file-system
    // call is a round trip through libuv's thread pool, which on a loaded machine costs about what the
    // call itself does.
    handle.close().catch(() => undefined);
  }
}

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /**
   * Permission bits of a file that does not exist yet. An existing file keeps its own.
   * @default 0o600
   */
  readonly mode?: number;
  /**
   * Whether to keep the permission bits of the file being replaced.
   * @default true
   */
  readonly keepMode?: boolean;
  /**
   * Whether to return the written file's stat (taken while it is synced, so at no extra wait): its inode,
   * size and modification time stay the same through the rename.
   * @default false
   */
  readonly stat?: boolean;
}

/**
 * Replaces `path` with `data` atomically and durably: a temporary file created exclusively (never through a
 * planted link) in the same folder, every byte written and synced, renamed over `path`, the folder synced.
 * A reader, or a crash, sees the old file or the new one, never a mix. On failure the temporary file is
 * removed and `path` is as it was.
 *
 * @returns the written file's stat when `options.stat` is true, else undefined.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<BigIntStats | undefined> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let mode = options.mode ?? 0o600;
  if (options.keepMode ?? true) {
    try {
      mode = (await stat(path)).mode & 0o777;
    } catch {
      // No file yet: the given mode applies.
    }
  }
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  // The folder is opened alongside the file, so its sync after the rename waits for no open. (Syncing a
  // folder's handle flushes its entries as they are at the sync, the rename's included.)
  const folder = open(dir, 'r');
  // Handled here too: a failure to open it is reported where it is awaited, not as an unhandled rejection.
  folder.catch(() => undefined);
  const dropFolder = (): void => void folder.then((h) => h.close()).catch(() => undefined);
  let handle: FileHandle;
  try {
    handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  } catch (err) {
    dropFolder();
    throw err;
  }
  let written: BigIntStats | undefined;
  try {
    try {
      // open() applies the umask; the mode asked for is what the file gets. The calls that do not depend on
      // each other run together: each awaited call is a round trip through the thread pool. (A handle is
      // closed only once its calls in flight are done, so a failure of one cannot close it under the other.)
      await Promise.all([handle.chmod(mode), writeFully(handle, bytes, 0)]);
      if (options.stat === true) [, written] = await Promise.all([handle.sync(), handle.stat({ bigint: true })]);
      else await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    dropFolder();
    throw err;
  }
  await syncOpenDirectory(await folder);
  return written;
}

/** Options of {@link createFileExclusive}. */
export interface CreateExclusiveOptions {
  /**
   * Permission bits of the new file (the umask does not narrow them).
   * @default 0o600
   */
  readonly mode?: number;
  /**
   * Whether the file and its folder entry are synced before this returns (a lock file need not be).
   * @default true
   */
  readonly sync?: boolean;
}

/**
 * Creates `path` holding `data` unless it exists, and never leaves it partly written: the bytes go to a
 * temporary file (created exclusively, never through a planted link), which is then hard-linked to `path` —
 * `link()` fails when `path` exists. Another process sees the complete file or none; a failure (a full disk)
 * leaves nothing behind.
 *
 * @returns false when `path` already exists (it is left as it is).
 */
export async function createFileExclusive(path: string, data: string | Uint8Array, options: CreateExclusiveOptions = {}): Promise<boolean> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const mode = options.mode ?? 0o600;
  const sync = options.sync ?? true;
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  try {
    const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    try {
      await handle.chmod(mode);
      await writeFully(handle, bytes, 0);
      if (sync) await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(temp, path);
    } catch (err) {
      if ((err as { code?: string }).code === 'EEXIST') return false;
      throw err;
    }
  } finally {
    await rm(temp, { force: true });
  }
  if (sync) await syncDirectory(dir);
  return true;
}

const FILE_SYSTEM_CODES: Readonly<Record<string, StowageErrorCode>> = {
  ENOSPC: 'RESOURCE_EXHAUSTED',
  EDQUOT: 'RESOURCE_EXHAUSTED',
  EFBIG: 'RESOURCE_EXHAUSTED',
  EMFILE: 'RESOURCE_EXHAUSTED',
  ENFILE: 'RESOURCE_EXHAUSTED',
  EIO: 'UNAVAILABLE',
  EACCES: 'PERMISSION_DENIED',
  EPERM: 'PERMISSION_DENIED',
  EROFS: 'PERMISSION_DENIED',
};

const FILE_SYSTEM_WORDS: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  EIO: 'I/O error',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
};

/**
 * Turns a file-system error into a {@link StowageError} that names the file and says what happened:
 * a full disk or quota is RESOURCE_EXHAUSTED (nothing was acknowledged; retry once space is freed), an I/O error
 * UNAVAILABLE, a refused permission PERMISSION_DENIED. A StowageError passes through; an error with another
 * errno is returned as INTERNAL with the raw error (its message only) as `cause`.
 *
 * @param err - What the file-system call threw.
 * @param action - What was being done, e.g. `"append to"`, `"replace"`.
 * @param path - The file or folder concerned.
 */
export function fileSystemError(err: unknown, action: string, path: string): StowageError {
  if (StowageError.is(err)) return err;
  const errno = (err as { code?: unknown } | null)?.code;
  const code = typeof errno === 'string' ? FILE_SYSTEM_CODES[errno] : undefined;
  const raw = err instanceof Error ? err : new Error(String(err));
  const cause = Object.assign(new Error(raw.message), { name: raw.name, code: errno });
  if (code === undefined) return new StowageError('INTERNAL', `cannot ${action} ${path}: ${raw.message}`, { cause });
  return new StowageError(code, `cannot ${action} ${path}: ${FILE_SYSTEM_WORDS[errno as string]} (${errno as string})`, {
    cause,
    retryable: code !== 'PERMISSION_DENIED',
    ...(code === 'PERMISSION_DENIED' ? { details: { reason: 'file-permission' satisfies ErrorReason } } : {}),
  });
}

/** Whether `err` says the disk (or the user's quota) is full. */
export function isDiskFull(err: unknown): boolean {
  const errno = (err as { code?: unknown } | null)?.code;
  return errno === 'ENOSPC' || errno === 'EDQUOT';
}
