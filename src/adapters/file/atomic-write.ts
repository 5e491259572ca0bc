/**
 * Durable file replacement: temp file → fsync → rename → fsync of the folder. A reader (or a crash) sees
 * either the old file or the new one, never a torn mix, and a write acknowledged is on disk.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Replaces `path` with `data` atomically and durably. The new file keeps the old one's permission bits
 * (or gets `mode` when there was none).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fileMode = mode;
  try {
    fileMode = (await stat(path)).mode & 0o777;
  } catch {
    // No file yet: the default mode applies.
  }
  const handle = await open(temp, 'wx', fileMode);
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await syncDirectory(dir);
}

/** Flushes a folder's entries (a rename is durable only once its folder is). */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some file systems refuse fsync on a folder; the rename is then as durable as they make it.
    if ((err as { code?: string }).code !== 'EINVAL' && (err as { code?: string }).code !== 'EISDIR') throw err;
  } finally {
    await handle.close();
  }
}
