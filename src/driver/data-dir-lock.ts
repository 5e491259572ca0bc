/**
 * The exclusive lock on a standalone data folder: one process at a time, and a clear error naming the pid
 * that holds it.
 *
 * @module
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileSystemError } from './durable-file.js';
import { tryLock } from './pid-lock.js';
import { StowageError } from '../ports/errors.js';
import type { ErrorReason } from './errors.js';

/** The lock file's name inside the data folder. */
export const LOCK_FILE = 'stowage.lock';

/** A held lock; `release()` removes it. */
export interface DataDirLock {
  /** The lock file. */
  readonly path: string;
  /** Removes the lock file (only if it is still ours). Idempotent. */
  release(): Promise<void>;
}

/**
 * Takes the lock on `dataDir` (created 0700 if missing). The lock file appears complete, holding this process's
 * pid, or not at all (see `driver/pid-lock.ts`), so two processes can never both take it; a lock left by a
 * process that no longer runs (killed with SIGKILL) is taken over.
 *
 * @throws StowageError UNAVAILABLE naming the pid when another live process holds it.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
    throw fileSystemError(err, 'create the data folder', dataDir);
  });
  const path = join(dataDir, LOCK_FILE);
  const attempt = await tryLock(path, 0o600);
  if (attempt.held) return attempt.held;
  const { pid, self } = attempt.owner;
  const details = { pid, lockFile: path };
  if (self) {
    throw new StowageError('UNAVAILABLE', `data folder ${dataDir} is already open in this process; close the other Stowage first`, { details, retryable: false });
  }
  if (pid === undefined) {
    throw new StowageError(
      'UNAVAILABLE',
      `data folder ${dataDir} has a lock file ${path} that names no process (an older Stowage creating it, or damage); if no process uses the folder, remove it`,
      { details, retryable: false },
    );
  }
  throw new StowageError(
    'UNAVAILABLE',
    `data folder ${dataDir} is in use by process ${pid} (lock file ${path}); stop it, or give this process its own STOWAGE_DATA_DIR`,
    { details: { ...details, reason: 'data-dir-locked' satisfies ErrorReason }, retryable: false },
  );
}
