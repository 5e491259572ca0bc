/**
 * An append-only file of fixed 16-byte entries with checksums, written with group commit. It holds a
 * group's acks and delivery counts, and a topic's removed messages.
 *
 * Entry layout (little-endian):
 *
 * ```
 * 0  u32  CRC-32C of bytes 4..15
 * 4  u8   kind (1 ack, 2 delivery count, 3 removed)
 * 5  u8   0
 * 6  u16  delivery count (kind 2), else 0
 * 8  u32  seq, low 32 bits
 * 12 u32  seq, high bits
 * ```
 *
 * @module
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileSystemError, syncDirectory, truncateQuietly, writeFully } from '../../driver/durable-file.js';
import { GroupCommit } from '../../driver/group-commit.js';
import { StowageError } from '../../ports/errors.js';
import { crc32c } from './crc32c.js';
import type { Durability } from './durability.js';

/** Bytes per entry. */
export const ENTRY_BYTES = 16;

/** What an entry says. */
export const EntryKind = {
  /** The group acknowledged `seq`. */
  Ack: 1,
  /** `seq` was delivered to the group for the `count`-th time. */
  Delivered: 2,
  /** `seq` was removed from the topic. */
  Removed: 3,
} as const;

/** One of {@link EntryKind}'s values. */
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

/** Called for every valid entry while a journal is opened. */
export type EntryVisitor = (kind: number, seq: number, count: number) => void;

/** The promise of one group-committed write, settled once for every entry that waits for it. */
class Batch {
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (err: unknown) => void;

  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

/**
 * One journal file. Appends are buffered and written by one loop ({@link GroupCommit}): each write covers
 * every entry appended while the previous one ran, and entries that someone waits for are followed by an
 * `fdatasync` (unless the policy is `interval`, where a timer syncs).
 *
 * A write that fails (a full disk, an I/O error) is cut off the file again and its waiters are refused with
 * the error; the journal stays usable, so the next write succeeds once space is back.
 */
export class EntryJournal {
  readonly #path: string;
  readonly #fh: FileHandle;
  readonly #durability: Durability;
  /** Bytes of the file that are written (and synced, when anyone waited): where the next write goes. */
  #size: number;
  /** Set when a failed write's bytes could not be cut off: cut before the next write. */
  #tailDirty = false;
  #buf = Buffer.allocUnsafe(64 * 1024);
  #spare = Buffer.allocUnsafe(64 * 1024);
  #len = 0;
  /** What the entries appended since the last write wait for: one promise for all of them (group commit). */
  #batch: Batch | undefined;
  /** The write loop; its `failure` (a failed background sync under fsync=interval) refuses appends. */
  readonly #commit: GroupCommit;

  private constructor(path: string, fh: FileHandle, size: number, durability: Durability) {
    this.#path = path;
    this.#fh = fh;
    this.#size = size;
    this.#durability = durability;
    this.#commit = new GroupCommit({
      writeRound: () => this.#writeRound(),
      sync: () => this.#fh.datasync(),
      ...(durability.mode === 'interval' ? { syncEveryMs: durability.intervalMs } : {}),
    });
  }

  /**
   * Opens (creating if needed) a journal and replays its entries into `visit`. A torn last entry is cut
   * off; a damaged complete entry is CORRUPTED naming the file and offset.
   */
  static async open(path: string, durability: Durability, visit: EntryVisitor): Promise<EntryJournal> {
    const created = await stat(path).then(
      () => false,
      () => true,
    );
    let fh: FileHandle;
    try {
      fh = await open(path, 'a+', 0o600);
    } catch (err) {
      throw fileSystemError(err, 'open disk queue journal', path);
    }
    try {
      // A new file's name must be durable before anything written to it is acknowledged.
      if (created) await syncDirectory(dirname(path));
      const data = await fh.readFile();
      const whole = data.length - (data.length % ENTRY_BYTES);
      let keep = whole;
      for (let off = 0; off < whole; off += ENTRY_BYTES) {
        if (crc32c(data, off + 4, off + ENTRY_BYTES) !== data.readUInt32LE(off)) {
          // Zeros to the end are blocks allocated but never written before a power loss: a torn tail.
          if (data.subarray(off).every((b) => b === 0)) {
            keep = off;
            break;
          }
          throw new StowageError('CORRUPTED', `disk queue journal ${path} is damaged at byte offset ${off} (checksum mismatch)`, {
            details: { file: path, offset: off },
          });
        }
        visit(data[off + 4] as number, data.readUInt32LE(off + 8) + data.readUInt32LE(off + 12) * 0x1_0000_0000, data.readUInt16LE(off + 6));
      }
      if (keep !== data.length) {
        await fh.truncate(keep);
        await fh.datasync();
      }
      const size = keep;
      // 'a+' would ignore positions on Linux; reopen for positional writes.
      await fh.close();
      const wfh = await open(path, 'r+');
      return new EntryJournal(path, wfh, size, durability);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw fileSystemError(err, 'open disk queue journal', path);
    }
  }

  /** Bytes in the file (written or buffered). */
  get bytes(): number {
    return this.#size + this.#len;
  }

  /** The file's path. */
  get path(): string {
    return this.#path;
  }

  /**
   * Appends an entry. With `wait`, resolves once it is durable under the policy; without, it rides along
   * with the next write and nobody waits for it.
   */
  append(kind: EntryKind, seq: number, count: number, wait: true): Promise<void>;
  append(kind: EntryKind, seq: number, count: number, wait: false): void;
  append(kind: EntryKind, seq: number, count: number, wait: boolean): Promise<void> | void {
    if (this.#commit.failure !== undefined) {
      if (wait) return Promise.reject(this.#failError());
      return;
    }
    if (this.#len + ENTRY_BYTES > this.#buf.length) {
      const bigger = Buffer.allocUnsafe(this.#buf.length * 2);
      this.#buf.copy(bigger, 0, 0, this.#len);
      this.#buf = bigger;
    }
    const b = this.#buf;
    const o = this.#len;
    b[o + 4] = kind;
    b[o + 5] = 0;
    b.writeUInt16LE(count, o + 6);
    b.writeUInt32LE(seq >>> 0, o + 8);
    b.writeUInt32LE(Math.floor(seq / 0x1_0000_0000), o + 12);
    b.writeUInt32LE(crc32c(b, o + 4, o + ENTRY_BYTES), o);
    this.#len = o + ENTRY_BYTES;
    this.#commit.kick();
    if (!wait) return;
    // Every waited-for entry of the same write shares its promise: no promise per entry.
    return (this.#batch ??= new Batch()).promise;
  }

  /** Resolves once everything appended so far is written (and synced if anyone waited). */
  async idle(): Promise<void> {
    await this.#commit.idle();
  }

  /** Empties the file (after a purge made every entry moot). */
  async truncate(): Promise<void> {
    await this.idle();
    await this.#fh.truncate(0);
    await this.#fh.datasync();
    this.#size = 0;
  }

  /** Writes what is buffered, syncs, and closes the file. */
  async close(): Promise<void> {
    await this.#commit.stop();
    if (this.#tailDirty) await truncateQuietly(this.#fh, this.#size);
    await this.#commit.syncUnsynced();
    await this.#fh.close();
  }

  #failError(): StowageError {
    const e = fileSystemError(this.#commit.failure, 'sync disk queue journal', this.#path);
    return new StowageError(e.code, `${e.message}; entries acknowledged since the last sync may be lost: reopen the queue to recover it`, {
      cause: e.cause,
      retryable: false,
    });
  }

  /** One round of group commit: writes what is buffered, syncs it if anyone waits. */
  async #writeRound(): Promise<boolean> {
    if (this.#len === 0) return false;
    const buf = this.#buf;
    const len = this.#len;
    const batch = this.#batch;
    this.#buf = this.#spare;
    this.#spare = buf;
    this.#len = 0;
    this.#batch = undefined;
    try {
      if (this.#tailDirty) {
        if (!(await truncateQuietly(this.#fh, this.#size))) {
          throw Object.assign(new Error('the tail of a failed write cannot be cut off'), { code: 'EIO' });
        }
        this.#tailDirty = false;
      }
      await writeFully(this.#fh, buf.subarray(0, len), this.#size);
      if (batch !== undefined && this.#durability.mode !== 'interval') {
        await this.#fh.datasync();
      } else {
        this.#commit.unsynced();
      }
    } catch (err) {
      // Nothing of this write is acknowledged: its bytes are cut off, so that the next write lands right
      // after the last good entry. Entries appended meanwhile are independent of these and go next.
      this.#tailDirty = !(await truncateQuietly(this.#fh, this.#size));
      batch?.reject(fileSystemError(err, 'append to disk queue journal', this.#path));
      return true;
    }
    this.#size += len;
    batch?.resolve();
    return true;
  }
}
