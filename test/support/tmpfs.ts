/**
 * A small, real file system that fills up: a tmpfs mounted on a temporary folder (the tests run as root).
 * Where mounting is refused the caller skips with {@link TmpfsUnavailable.reason}; CI, which runs as root,
 * requires it through `STOWAGE_TEST_REQUIRE=tmpfs`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, open, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe } from 'vitest';
import { requiredServices } from './servers.js';

const run = promisify(execFile);

/** A mounted tmpfs. */
export interface Tmpfs {
  /** The mount point. */
  readonly dir: string;
  /**
   * Fills what is left of the file system with a ballast file, so that the next write fails with ENOSPC.
   * `leaveBytes` keeps that much free (a write larger than it then fails part way).
   */
  fill(leaveBytes?: number): Promise<void>;
  /** Removes the ballast: space is back. */
  free(): Promise<void>;
  /** Unmounts it and removes the mount point. */
  dispose(): Promise<void>;
}

/** Why a tmpfs could not be had. */
export interface TmpfsUnavailable {
  readonly reason: string;
}

/** Mounts a tmpfs of `sizeBytes` (rounded up to pages) on a fresh temporary folder. */
export async function mountTmpfs(sizeBytes: number): Promise<Tmpfs | TmpfsUnavailable> {
  if (process.platform !== 'linux') return { reason: 'tmpfs needs Linux' };
  if (process.getuid?.() !== 0) return { reason: 'mounting a tmpfs needs root' };
  const dir = await mkdtemp(join(tmpdir(), 'stowage-full-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0700`, 'tmpfs', dir]);
  } catch (err) {
    await rmdir(dir).catch(() => {});
    return { reason: `mount -t tmpfs refused: ${(err as Error).message.split('\n')[0]}` };
  }
  const ballast = join(dir, '.ballast');
  return {
    dir,
    async fill(leaveBytes = 0) {
      const fh = await open(ballast, 'a');
      try {
        const chunk = Buffer.alloc(64 * 1024);
        for (let size = chunk.length; size >= 1; size = Math.floor(size / 2)) {
          for (;;) {
            try {
              const { bytesWritten } = await fh.write(chunk, 0, size);
              if (bytesWritten < size) break;
            } catch {
              break;
            }
          }
        }
        if (leaveBytes > 0) {
          const { size } = await fh.stat();
          await fh.truncate(Math.max(0, size - leaveBytes));
        }
      } finally {
        await fh.close();
      }
    },
    async free() {
      await rm(ballast, { force: true });
    },
    async dispose() {
      await run('umount', ['-l', dir]).catch(() => {});
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/** Whether {@link mountTmpfs} gave a file system. */
export function isTmpfs(value: Tmpfs | TmpfsUnavailable): value is Tmpfs {
  return 'dir' in value;
}

/**
 * A `describe` block whose tests get a fresh tmpfs of `sizeBytes` each. Skipped with the reason where mounting
 * is refused, or failed when `STOWAGE_TEST_REQUIRE` names `tmpfs` (CI does).
 */
export function fullDiskSuite(title: string, sizeBytes: number, fn: (fs: () => Tmpfs) => void): void {
  describe(title, () => {
    let current: Tmpfs | undefined;
    let reason: string | undefined;
    beforeEach(async (context) => {
      const got = await mountTmpfs(sizeBytes);
      if (isTmpfs(got)) {
        current = got;
        return;
      }
      reason = got.reason;
      if (requiredServices().has('tmpfs')) throw new Error(`STOWAGE_TEST_REQUIRE names tmpfs, but it is unavailable: ${reason}`);
      context.skip(reason);
    });
    afterEach(async () => {
      await current?.dispose();
      current = undefined;
    });
    fn(() => {
      if (!current) throw new Error(reason ?? 'no tmpfs mounted');
      return current;
    });
  });
}
