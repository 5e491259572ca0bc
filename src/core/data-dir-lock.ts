/**
 * The exclusive lock on a standalone data folder: one process at a time, and a clear error naming the pid
 * that holds it.
 *
 * @module
 */
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { StowageError } from '../ports/errors.js';

/** The lock file's name inside the data folder. */
export const LOCK_FILE = 'stowage.lock';

/** A held lock; `release()` removes it. */
export interface DataDirLock {
  /** The lock file. */
  readonly path: string;
  /** Removes the lock file (only if it is still ours). Idempotent. */
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as { code?: string }).code === 'EPERM';
  }
}

async function readHolder(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(path, 'utf8')).trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock on `dataDir` (created 0700 if missing). A lock left by a process that no longer runs
 * (killed with SIGKILL) is taken over.
 *
 * @throws StowageError UNAVAILABLE naming the pid when another live process holds it.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, LOCK_FILE);
  const mine = String(process.pid);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600);
      try {
        await handle.writeFile(`${mine}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      let released = false;
      return {
        path,
        async release() {
          if (released) return;
          released = true;
          if ((await readHolder(path)) === process.pid) await unlink(path).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
    }
    const holder = await readHolder(path);
    if (holder !== undefined && holder !== process.pid && alive(holder)) {
      throw new StowageError(
        'UNAVAILABLE',
        `data folder ${dataDir} is in use by process ${holder} (lock file ${path}); stop it, or give this process its own STOWAGE_DATA_DIR`,
        { details: { pid: holder, lockFile: path }, retryable: false },
      );
    }
    if (holder === process.pid) {
      throw new StowageError('UNAVAILABLE', `data folder ${dataDir} is already open in this process; close the other Stowage first`, {
        details: { pid: holder, lockFile: path },
        retryable: false,
      });
    }
    // A stale lock (its process is gone, or the file is empty from a crash during creation): move it
    // aside atomically so that two processes taking over at once cannot both win.
    const aside = `${path}.stale-${process.pid}-${attempt}`;
    try {
      await rename(path, aside);
      await unlink(aside).catch(() => undefined);
    } catch {
      // someone else moved it first; try again
    }
  }
  throw new StowageError('UNAVAILABLE', `could not take the lock on data folder ${dataDir} (lock file ${path})`);
}
