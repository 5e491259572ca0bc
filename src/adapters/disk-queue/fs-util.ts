/**
 * File-system steps the disk queue needs for crash safety.
 *
 * @module
 */
import { open, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Makes a folder's entries (files created, renamed, removed) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Replaces `path` with `data` atomically and durably: temporary file, fdatasync, rename, folder fsync. */
export async function writeFileDurably(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, data, { mode: 0o600 });
  const fh = await open(tmp, 'r+');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}
