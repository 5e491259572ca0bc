/**
 * Lock files owned by a process on this machine, taken atomically and broken only when their owner is provably
 * dead.
 *
 * A lock file is complete from the moment it exists: its stamp (pid, host, the process's start time, a nonce) is
 * written to a temporary file first, then `link()`ed into place, which fails when the lock exists. No process
 * ever sees a lock that is empty or half written, so none is taken for "being written" or broken by mistake.
 *
 * A lock is stale only when its owner is on this host and its pid no longer runs (or runs a later process
 * that reused the pid). Breaking it takes a marker file named after the stale stamp, with the same `link()`:
 * of the processes that find the same stale lock, one breaks it; the others wait for it. The breaker removes the
 * lock only if it still holds that stamp, and only a breaker holding the marker can remove it, so a lock taken
 * afresh in the meantime is never removed. A marker whose owner died is broken the same way.
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createFileExclusive, fileSystemError } from './durable-file.js';

const HOST = hostname();

/**
 * When a process started, in clock ticks since boot (`/proc/<pid>/stat`, field 22): the same for every thread of
 * a process, different for a later process that reuses the pid. Undefined where there is no `/proc` (then a
 * running pid counts as the owner).
 */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

const MY_START = startTime(process.pid) ?? '';

/**
 * A lock file without a complete stamp is never made by this module. Older versions created the file and then
 * wrote the pid; such a file, when older than this, is left by a crash in between and is stale.
 */
const INCOMPLETE_STALE_MS = 5000;

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

/** Who holds a lock, as its file says. */
export interface LockOwner {
  /** The owner's pid, or undefined when the file holds no complete stamp (left by an older version). */
  readonly pid: number | undefined;
  /** The owner's host. */
  readonly host: string;
  /** Whether the owner is this process. */
  readonly self: boolean;
  /** Whether the owner is provably gone (same host, pid not running or reused), so the lock may be broken. */
  readonly dead: boolean;
}

/** A lock this process holds. */
export interface HeldLock {
  /** The lock file. */
  readonly path: string;
  /** Removes the lock file if it is still this holder's. Idempotent. */
  release(): Promise<void>;
}

/** What {@link tryLock} found: the lock taken, or the live owner that holds it. */
export type LockAttempt =
  | {
      /** The lock, now held by this process. */
      readonly held: HeldLock;
      /** Absent: nobody else holds it. */
      readonly owner?: undefined;
    }
  | {
      /** Absent: the lock was not taken. */
      readonly held?: undefined;
      /** The live process that holds the lock. */
      readonly owner: LockOwner;
    };

/** Whether the process `pid` that started at `started` (as recorded; empty when unknown) still runs. */
function ownerAlive(pid: number, started: string): boolean {
  if (!processAlive(pid)) return false;
  const now = started === '' ? undefined : startTime(pid);
  return now === undefined || now === started;
}

function parseOwner(text: string, mtimeMs: number): LockOwner {
  const [pidText = '', hostText = '', started = ''] = text.split('\n');
  // Older data-folder locks held only the pid: they were always taken on this host.
  const host = hostText === '' ? HOST : hostText;
  const pid = /^\d+$/.test(pidText) ? Number(pidText) : undefined;
  if (pid === undefined) {
    return { pid, host, self: false, dead: Date.now() - mtimeMs > INCOMPLETE_STALE_MS };
  }
  if (host !== HOST) return { pid, host, self: false, dead: false };
  // Older locks held a time in milliseconds on the third line, not a start time in ticks: not comparable.
  const recorded = /^\d+$/.test(started) && started.length < 13 ? started : '';
  if (pid === process.pid) {
    // This pid, recorded by a process that started at another time (or by an older version, which recorded none),
    // is an earlier process that had it (a container's pid 1). Without /proc, a lock with this pid is ours.
    const self = MY_START === '' || recorded === MY_START;
    return { pid, host, self, dead: !self };
  }
  return { pid, host, self: false, dead: !ownerAlive(pid, recorded) };
}

/** The lock file's text and age, or undefined when there is none. */
async function readLock(path: string): Promise<{ text: string; mtimeMs: number } | undefined> {
  try {
    const [text, s] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { text, mtimeMs: s.mtimeMs };
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw fileSystemError(err, 'read the lock file', path);
  }
}

/**
 * Creates the lock file `path` holding `text`, complete, unless it exists.
 *
 * @returns false when `path` exists.
 * @throws StowageError RESOURCE_EXHAUSTED on a full disk, naming `path`; nothing is left behind.
 */
async function createComplete(path: string, text: string, mode: number): Promise<boolean> {
  try {
    // Not synced: after a power loss every owner is gone anyway, and an empty lock is stale after a while.
    return await createFileExclusive(path, text, { mode, sync: false });
  } catch (err) {
    throw fileSystemError(err, 'create the lock file', path);
  }
}

/**
 * Removes the lock file `path` if it still holds `stale`, whose owner is dead. Of several processes calling this
 * for the same stamp, one removes it (under a marker file named after the stamp); the others return at once.
 */
async function breakStale(path: string, stale: string): Promise<boolean> {
  const marker = `${path}.break-${createHash('sha256').update(stale).digest('hex').slice(0, 16)}`;
  if (!(await createComplete(marker, stamp(), 0o600))) {
    const found = await readLock(marker);
    // A breaker that died holding the marker: break its marker first, then the next round breaks the lock.
    if (found !== undefined && parseOwner(found.text, found.mtimeMs).dead) await breakStale(marker, found.text);
    return false;
  }
  try {
    // Only the holder of this marker removes a lock holding `stale`, so it cannot have been replaced by a live one.
    if ((await readLock(path))?.text === stale) await unlink(path).catch(() => undefined);
    return true;
  } finally {
    await unlink(marker).catch(() => undefined);
  }
}

function stamp(): string {
  return `${process.pid}\n${HOST}\n${MY_START}\n${randomBytes(6).toString('hex')}\n`;
}

/** How many times {@link tryLock} waits for another process that is breaking the same stale lock. */
const BREAK_WAITS = 40;
const BREAK_WAIT_MS = 5;

/**
 * Tries once to take the lock file `path`: creates it if absent, or breaks it and tries again when its owner is
 * provably dead. Returns the held lock, or the live owner (possibly this very process) that holds it (or the
 * dead one, when another process has been breaking its lock for longer than a moment).
 *
 * @param mode - Permission bits of the lock file.
 * @throws StowageError RESOURCE_EXHAUSTED (full disk) or UNAVAILABLE (I/O error) naming the lock file; no file
 *   is left behind.
 */
export async function tryLock(path: string, mode = 0o644): Promise<LockAttempt> {
  const mine = stamp();
  let waits = 0;
  for (;;) {
    if (await createComplete(path, mine, mode)) {
      let released = false;
      return {
        held: {
          path,
          async release() {
            if (released) return;
            released = true;
            if ((await readLock(path).catch(() => undefined))?.text === mine) await unlink(path).catch(() => undefined);
          },
        },
      };
    }
    const found = await readLock(path);
    if (found === undefined) continue; // released meanwhile
    const owner = parseOwner(found.text, found.mtimeMs);
    if (!owner.dead) return { owner };
    if (await breakStale(path, found.text)) continue;
    // Another process is breaking it: its outcome (removed, or taken afresh) is a moment away.
    if (++waits > BREAK_WAITS) return { owner };
    await new Promise((resolve) => setTimeout(resolve, BREAK_WAIT_MS));
  }
}

/**
 * Removes the temporary files that a process which died left beside `path`: those of `writeFileAtomic` and
 * `createFileExclusive` for `path` and for its lock file `<path>.lock` (`.<name>[.lock].<pid>.<random>.tmp`). A
 * live process's are left alone: removing one would fail its write.
 */
export async function removeDeadProcessTemps(path: string): Promise<void> {
  const name = basename(path).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^\\.${name}(?:\\.lock)?\\.(\\d+)\\.[0-9a-f]+\\.tmp$`);
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  const stale = names.filter((n) => {
    const pid = pattern.exec(n)?.[1];
    return pid !== undefined && !processAlive(Number(pid));
  });
  await Promise.all(stale.map((n) => rm(join(dirname(path), n), { force: true })));
}
