/**
 * An inter-process lock on one file, for processes on the same machine: `<file>.lock`, taken with
 * `driver/pid-lock.ts` (complete from the moment it exists, broken only when its owner is provably dead). A live
 * owner is waited for until the caller's signal aborts.
 *
 * @module
 */
import { tryLock, type HeldLock } from '../../driver/pid-lock.js';
import { StowageError } from '../../ports/errors.js';
import { pause } from '../../driver/sleep.js';

/**
 * Takes the lock `lockPath`, runs `fn`, and releases it. Waits (polling with backoff) while another live
 * process holds it; gives up when `signal` aborts.
 *
 * @throws StowageError TIMEOUT when `signal` aborts first; RESOURCE_EXHAUSTED (full disk) or UNAVAILABLE (I/O
 *   error) naming the lock file when it cannot be written, leaving no lock file behind.
 */
export async function withLockFile<T>(lockPath: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  let held: HeldLock | undefined;
  for (let delay = 1; held === undefined; delay = Math.min(delay * 2, 20)) {
    if (signal.aborted) {
      throw StowageError.is(signal.reason)
        ? signal.reason
        : new StowageError('TIMEOUT', `lock ${lockPath} is held by another process`, { details: { lockPath } });
    }
    held = (await tryLock(lockPath)).held;
    if (held === undefined) await pause(delay, signal);
  }
  try {
    return await fn();
  } finally {
    await held.release();
  }
}
