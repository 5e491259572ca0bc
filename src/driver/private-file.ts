/**
 * Creating the files of a store that hold data nobody else should read (sealed secrets, documents) before a
 * library that would create them with its own, wider mode opens them.
 *
 * @module
 */
import { chmod, constants, lstat, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Options of {@link ensurePrivateFile}. */
export interface PrivateFileOptions {
  /**
   * Whether an existing file readable or writable by others is narrowed to 0600 (for a file that holds
   * ciphertext, written by an earlier version with a wider mode).
   * @default false
   */
  readonly tighten?: boolean;
}

/**
 * Creates `path` empty with mode 0600 when it does not exist, and its missing folders with mode 0700 (the umask
 * can only narrow these). The file is created exclusively, so a planted link is never followed: it is left
 * to the caller, which then finds a file it did not create. An existing file keeps its content.
 */
export async function ensurePrivateFile(path: string, options: PrivateFileOptions = {}): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    await handle.close();
    return;
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'EEXIST') throw err;
  }
  if (options.tighten !== true) return;
  const info = await lstat(path);
  if (info.isFile() && (info.mode & 0o077) !== 0) await chmod(path, 0o600);
}
