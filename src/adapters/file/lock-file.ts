/**
 * An inter-process lock on one file, for processes on the same machine: `<file>.lock` created with O_EXCL,
 * holding the owner's pid and host. A lock whose owner process is gone (same host, pid not alive) is stale
 * and is broken; a live owner is waited for until the caller's signal aborts.
 *
 * @module
 */
import { hostname } from 'node:os';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { StowageError } from '../../ports/errors.js';

const HOST = hostname();

/** Whether a process with this pid exists on this machine. */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as { code?: string }).code === 'EPERM';
  }
}

/** The host name recorded in lock files and lease records. */
export function hostName(): string {
  return HOST;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Takes the lock `lockPath`, runs `fn`, and releases it. Waits (polling with backoff) while another live
 * process holds it; gives up when `signal` aborts.
 */
export async function withLockFile<T>(lockPath: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  const stamp = `${process.pid}\n${HOST}\n${Date.now()}\n`;
  let delay = 1;
  while (true) {
    if (signal.aborted) {
      throw StowageError.is(signal.reason)
        ? signal.reason
        : new StowageError('TIMEOUT', `lock ${lockPath} is held by another process`, { details: { lockPath } });
    }
    try {
      const handle = await open(lockPath, 'wx', 0o644);
      try {
        await handle.writeFile(stamp);
      } finally {
        await handle.close();
      }
      break;
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
    }
    let owner = '';
    try {
      owner = await readFile(lockPath, 'utf8');
    } catch {
      continue; // released meanwhile
    }
    const [pidText, host] = owner.split('\n');
    // An empty file is a lock being written right now; only a complete stamp can be judged stale.
    if (pidText !== undefined && pidText !== '' && host === HOST && !processAlive(Number(pidText))) {
      // Re-check right before breaking it, to narrow the window in which two breakers race.
      const again = await readFile(lockPath, 'utf8').catch(() => '');
      if (again === owner) await rm(lockPath, { force: true });
      continue;
    }
    if (pidText === '' || pidText === undefined) {
      // A lock file left empty by a crash between create and write: stale once it is clearly not in progress.
      const age = await stat(lockPath).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > 5000) await rm(lockPath, { force: true });
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 20);
  }
  try {
    return await fn();
  } finally {
    await rm(lockPath, { force: true });
  }
}
