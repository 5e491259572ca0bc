/**
 * The append-only, segmented log of one topic: group-committed appends, recovery on open, reads by seq,
 * the dedupe window, removal tombstones, purge and retention. The segment files themselves (names, scans,
 * indexes, read handles) are in `segment-file.ts`, the write loop in `stowage/driver`'s `GroupCommit`.
 *
 * Longer than most files (~700 lines) on purpose: appends, recovery, reads and removal all move the same
 * few fields (the visible seq and bytes, the active segment, the start), and the invariants between them —
 * only the active segment ever holds bytes not yet acknowledged, a failed write is rolled back to the last
 * visible record, a purge never overlaps a write — are checked by reading one class, not several.
 *
 * @module
 */
import { mkdir, open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileSystemError, syncDirectory, truncateQuietly, writeFully } from '../../driver/durable-file.js';
import { StowageError } from '../../ports/errors.js';
import type { Headers, PublishResult, StoredMessage } from '../../ports/queue.js';
import type { Durability } from './durability.js';
import { GroupCommit } from '../../driver/group-commit.js';
import { EntryJournal, EntryKind } from './entry-journal.js';
import { checkRecord, decodeRecord, encodeRecord, recordBytes, recordId, type EncodedFields } from './record-format.js';
import { SegmentIndex } from './segment-index.js';
import { closeReadHandle, corrupted, firstTimestamp, idxPath, scanSegment, SEGMENT_NAME, segmentIndex, segmentName, segmentOf, writeFlags, type Segment } from './segment-file.js';

/** Limits and policies of a topic log (from the URL). */
export interface TopicLogOptions {
  /** When writes are synced. */
  durability: Durability;
  /** A segment is sealed once it holds this many bytes (a batch never spans two segments). */
  segmentBytes: number;
  /** Messages older than this are removed (0: no limit). */
  retentionMs: number;
  /** Whole oldest segments are removed while the log is larger than this (0: no limit). */
  retentionBytes: number;
  /** At most this many messages are kept (0: no limit). */
  retentionMessages: number;
  /** How long a publish id is remembered for dedupe. */
  dedupeWindowMs: number;
}

/** Records waiting to be written, in one buffer. */
interface Batch {
  buf: Buffer;
  len: number;
  firstSeq: number;
  /** End offset in `buf` of each record. */
  ends: number[];
  /** Publish time of each record. */
  times: number[];
  resolves: Array<(r: PublishResult) => void>;
  rejects: Array<(err: unknown) => void>;
}

/** Where a reader is in the log. */
export interface LogPosition {
  /** The next seq the reader wants. */
  seq: number;
  /** The segment and byte offset to read from (a hint: reseeked when stale). */
  segment: Segment | undefined;
  offset: number;
  /** Seq of the record at `offset`. */
  offsetSeq: number;
}

const SLAB_BYTES = 1024 * 1024;
const READ_CHUNK_BYTES = 256 * 1024;
/**
 * The log of one topic. Appends are group-committed: records appended while a write (and its
 * `fdatasync`) is in progress share the next one. Only records that are durable under the policy are
 * visible to readers.
 */
export class TopicLog {
  readonly topic: string;
  readonly dir: string;
  readonly #opts: TopicLogOptions;
  #segments: Segment[] = [];
  #fh!: FileHandle;
  /** Next seq to assign. */
  #nextSeq = 1;
  /** Seq of the first record not yet written. */
  #writtenNext = 1;
  /**
   * Last visible (durable, acknowledged) seq, the visible bytes of the active segment and the publish time
   * of its last visible record: where a failed write is rolled back to.
   */
  #visibleSeq = 0;
  #visibleBytes = 0;
  #visibleTs = Number.NaN;
  /** First seq that reads may return (purge and retention move it). */
  #start = 1;
  #acc: Batch | undefined;
  #ready: Batch[] = [];
  #slabs: Buffer[] = [];
  /** The write loop (created once the segment is open); its `failure` is a failed background sync. */
  #commit!: GroupCommit;
  /** Set when a failed write's bytes could not be cut off the active segment: cut before the next write. */
  #tailDirty = false;
  /**
   * Set while a roll is under way, and after one that failed once its new file may exist: nothing more may
   * go into the old segment then (recovery would take that file's name for the old segment's end).
   */
  #rolling = false;
  #sweepTimer: NodeJS.Timeout | undefined;
  #exclusive: Promise<void> | undefined;
  #writing: Promise<void> | undefined;
  readonly #dedupe = new Map<string, { seq: number; ts: number }>();
  readonly #durableWaiters: Array<{ seq: number; resolve: () => void; reject: (err: unknown) => void }> = [];
  readonly #removed = new Set<number>();
  #tombstones!: EntryJournal;
  readonly #listeners = new Set<() => void>();
  /** Returns the lowest seq any consumer group still needs (undefined: no group). */
  groupsNeed: () => number | undefined = () => undefined;

  private constructor(topic: string, dir: string, opts: TopicLogOptions) {
    this.topic = topic;
    this.dir = dir;
    this.#opts = opts;
  }

  /** Opens (creating if needed) a topic's log, recovering a torn tail. */
  static async open(topic: string, dir: string, opts: TopicLogOptions): Promise<TopicLog> {
    const log = new TopicLog(topic, dir, opts);
    try {
      await log.#recover();
    } catch (err) {
      await log.#releaseAfterFailedOpen();
      throw fileSystemError(err, 'open disk queue topic', dir);
    }
    return log;
  }

  /** Last visible seq (0 when nothing was ever published). */
  get lastSeq(): number {
    return this.#visibleSeq;
  }

  /** First seq reads may return. */
  get firstSeq(): number {
    return this.#start;
  }

  /** Whether `seq` was removed with {@link TopicLog.remove}. */
  isRemoved(seq: number): boolean {
    return this.#removed.size > 0 && this.#removed.has(seq);
  }

  /** How many removed messages have a seq ≥ `seq` (and are still stored). */
  removedFrom(seq: number): number {
    let n = 0;
    for (const q of this.#removed) if (q >= seq && q >= this.#start && q <= this.#visibleSeq) n++;
    return n;
  }

  /** Messages stored and visible. */
  get messageCount(): number {
    let n = Math.max(0, this.#visibleSeq - this.#start + 1);
    for (const seq of this.#removed) if (seq >= this.#start && seq <= this.#visibleSeq) n--;
    return n;
  }

  /** Calls `fn` whenever new records become visible. */
  onVisible(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  async #releaseAfterFailedOpen(): Promise<void> {
    await (this.#commit as GroupCommit | undefined)?.stop();
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    await (this.#fh as FileHandle | undefined)?.close().catch(() => undefined);
    await (this.#tombstones as EntryJournal | undefined)?.close().catch(() => undefined);
  }

  // ---------------------------------------------------------------- recovery

  async #recover(): Promise<void> {
    if ((await mkdir(this.dir, { recursive: true, mode: 0o700 })) !== undefined) await syncDirectory(dirname(this.dir));
    const names = await readdir(this.dir);
    for (const n of names) if (n.endsWith('.tmp')) await unlink(join(this.dir, n)).catch(() => undefined);
    const bases = names
      .map((n) => SEGMENT_NAME.exec(n)?.[1])
      .filter((b): b is string => b !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    if (bases.length === 0) {
      const fh = await open(join(this.dir, segmentName(1)), 'wx', 0o600);
      await fh.close();
      await syncDirectory(this.dir);
      bases.push(1);
    }
    for (let i = 0; i < bases.length; i++) {
      const base = bases[i] as number;
      const path = join(this.dir, segmentName(base));
      const last = i === bases.length - 1;
      const next = bases[i + 1];
      const fh = await open(path, 'r');
      const size = (await fh.stat()).size;
      await fh.close();
      const count = last ? 0 : (next as number) - base;
      this.#segments.push({ base, path, size, count, index: undefined, readFh: undefined, readers: 0, deleted: false });
    }
    const active = this.#segments[this.#segments.length - 1] as Segment;
    this.#fh = await open(active.path, writeFlags(this.#opts.durability, false));
    await this.#recoverActive(active);
    this.#nextSeq = active.base + active.count;
    this.#writtenNext = this.#nextSeq;
    this.#visibleSeq = this.#nextSeq - 1;
    this.#visibleBytes = active.size;
    this.#visibleTs = (active.index as SegmentIndex).lastTs;
    this.#start = (this.#segments[0] as Segment).base;
    if (this.#opts.retentionMessages > 0) this.#start = Math.max(this.#start, this.#visibleSeq - this.#opts.retentionMessages + 1);

    this.#tombstones = await EntryJournal.open(join(this.dir, 'removed.journal'), this.#opts.durability, (kind, seq) => {
      if (kind === EntryKind.Removed) this.#removed.add(seq);
    });
    await this.#rebuildDedupe();
    const durability = this.#opts.durability;
    this.#commit = new GroupCommit({
      writeRound: () => this.#commitRound(),
      // The file being written: a roll replaces it.
      sync: () => this.#fh.datasync(),
      // Under fsync=always every record is written on its own anyway: a microtask is enough for the
      // appending code to finish, without a turn of the event loop before each write.
      gather: durability.mode === 'always' ? 'microtask' : 'turn',
      ...(durability.mode === 'interval' ? { syncEveryMs: durability.intervalMs } : {}),
    });
    this.#sweepTimer = setInterval(() => void this.sweep().catch(() => undefined), 1000);
    this.#sweepTimer.unref();
  }

  /** Scans the active segment: checks every record, cuts a torn tail, rebuilds its index. */
  async #recoverActive(seg: Segment): Promise<void> {
    const index = new SegmentIndex();
    let count = 0;
    const end = await scanSegment(seg, 0, seg.size, true, (_buf, off, _size, seq, ts) => {
      if (seq !== seg.base + count) throw corrupted(seg.path, off, `expected seq ${seg.base + count}, found ${seq}`);
      index.note(count, off, ts);
      count++;
    });
    if (end < seg.size) {
      // A write that did not finish before a crash; nothing after it was ever acknowledged.
      await this.#fh.truncate(end);
      await this.#fh.datasync();
      seg.size = end;
    }
    seg.count = count;
    seg.index = index;
  }

  async #rebuildDedupe(): Promise<void> {
    if (this.#opts.dedupeWindowMs <= 0) return;
    const cutoff = Date.now() - this.#opts.dedupeWindowMs;
    let first = this.#segments.length - 1;
    while (first > 0) {
      const ts = await firstTimestamp(this.#segments[first] as Segment);
      if (ts !== undefined && ts < cutoff) break;
      first--;
    }
    for (let i = Math.max(first, 0); i < this.#segments.length; i++) {
      const seg = this.#segments[i] as Segment;
      await scanSegment(seg, 0, seg.size, false, (buf, off, _size, seq, ts) => {
        if (ts < cutoff) return;
        const id = recordId(buf, off);
        if (id !== undefined) this.#dedupe.set(id, { seq, ts });
      });
    }
  }

  // ---------------------------------------------------------------- appends

  /**
   * Appends a message; resolves once it is durable under the policy. A repeated `id` within the dedupe
   * window stores nothing and resolves with the first one's seq once that one is durable.
   */
  append(payload: Uint8Array, headers: Headers, id: string | undefined): Promise<PublishResult> {
    if (this.#commit.failure !== undefined) return Promise.reject(this.#failError());
    const now = Date.now();
    let idBuf: Buffer | undefined;
    if (id !== undefined) {
      this.#evictDedupe(now);
      const seen = this.#dedupe.get(id);
      if (seen !== undefined && seen.seq >= this.#start) {
        const result: PublishResult = { seq: seen.seq, duplicate: true };
        if (seen.seq <= this.#visibleSeq) return Promise.resolve(result);
        return this.#whenVisible(seen.seq).then(() => result);
      }
      idBuf = Buffer.from(id, 'utf8');
    }
    let hBuf: Buffer | undefined;
    for (const _ in headers) {
      hBuf = Buffer.from(JSON.stringify(headers), 'utf8');
      break;
    }
    const fields: EncodedFields = { id: idBuf, headers: hBuf, payload };
    const size = recordBytes(fields);
    let batch = this.#acc;
    if (batch === undefined || (batch.len + size > batch.buf.length && batch.len > 0)) {
      if (batch !== undefined) this.#ready.push(batch);
      batch = this.#newBatch(size);
      this.#acc = batch;
    }
    if (batch.len + size > batch.buf.length) {
      // A record larger than the slab gets a buffer of its own.
      batch.buf = Buffer.allocUnsafe(size);
    }
    const seq = this.#nextSeq++;
    if (batch.ends.length === 0) batch.firstSeq = seq;
    batch.len = encodeRecord(batch.buf, batch.len, seq, now, fields);
    batch.ends.push(batch.len);
    batch.times.push(now);
    if (id !== undefined) this.#dedupe.set(id, { seq, ts: now });
    this.#commit.kick();
    return new Promise<PublishResult>((resolve, reject) => {
      batch.resolves.push(resolve);
      batch.rejects.push(reject);
    });
  }

  #newBatch(size: number): Batch {
    const buf = size <= SLAB_BYTES ? (this.#slabs.pop() ?? Buffer.allocUnsafe(SLAB_BYTES)) : Buffer.allocUnsafe(size);
    return { buf, len: 0, firstSeq: 0, ends: [], times: [], resolves: [], rejects: [] };
  }

  #evictDedupe(now: number): void {
    const cutoff = now - this.#opts.dedupeWindowMs;
    for (const [id, e] of this.#dedupe) {
      if (e.ts >= cutoff) break;
      this.#dedupe.delete(id);
    }
  }

  #whenVisible(seq: number): Promise<void> {
    return new Promise((resolve, reject) => this.#durableWaiters.push({ seq, resolve, reject }));
  }

  #failError(): StowageError {
    const e = fileSystemError(this.#commit.failure, 'sync disk queue segment', this.#active().path);
    return new StowageError(e.code, `${e.message}; publishes acknowledged since the last sync may be lost: reopen the queue to recover the topic`, {
      cause: e.cause,
      retryable: false,
    });
  }

  #active(): Segment {
    return this.#segments[this.#segments.length - 1] as Segment;
  }

  /** One round of group commit, once a purge (which must not overlap a write) is done. */
  async #commitRound(): Promise<boolean> {
    if (this.#acc === undefined && this.#ready.length === 0) return false;
    while (this.#exclusive) await this.#exclusive;
    this.#writing = this.#writeRound();
    await this.#writing;
    this.#writing = undefined;
    return true;
  }

  /** Writes every batch waiting, syncs per the policy, and resolves their publishes. */
  async #writeRound(): Promise<void> {
    const batches = this.#ready;
    if (this.#acc) batches.push(this.#acc);
    this.#ready = [];
    this.#acc = undefined;
    try {
      await this.#cutDirtyTail();
      if (this.#opts.durability.mode === 'always') {
        for (const b of batches) await this.#writeEachSynced(b);
      } else {
        let unsettled = 0;
        for (let i = 0; i < batches.length; i++) {
          const b = batches[i] as Batch;
          if (this.#full(b.len)) {
            // What this round wrote to the segment is synced and acknowledged before it is sealed, so
            // that only the active segment ever holds records a failure has to take back.
            await this.#sync();
            for (; unsettled < i; unsettled++) this.#settle(batches[unsettled] as Batch, 0, (batches[unsettled] as Batch).ends.length);
            await this.#roll(b.firstSeq);
          }
          await this.#writeBatch(b, 0, b.ends.length);
        }
        if (this.#opts.durability.mode === 'batch') await this.#sync();
        else this.#commit.unsynced();
        for (; unsettled < batches.length; unsettled++) this.#settle(batches[unsettled] as Batch, 0, (batches[unsettled] as Batch).ends.length);
      }
    } catch (err) {
      await this.#rollBack(err, batches);
      return;
    }
    for (const b of batches) if (b.buf.length === SLAB_BYTES && this.#slabs.length < 4) this.#slabs.push(b.buf);
  }

  async #writeEachSynced(b: Batch): Promise<void> {
    for (let i = 0; i < b.ends.length; i++) {
      // Every earlier record is acknowledged already: the segment can be sealed at once.
      if (this.#full((b.ends[i] as number) - (i === 0 ? 0 : (b.ends[i - 1] as number)))) await this.#roll(b.firstSeq + i);
      // The segment is opened with O_DSYNC under this policy (see writeFlags): the write is the sync.
      await this.#writeBatch(b, i, i + 1);
      this.#settle(b, i, i + 1);
    }
  }

  /** Cuts off the active segment the bytes of a failed write that could not be cut off then. */
  async #cutDirtyTail(): Promise<void> {
    if (!this.#tailDirty) return;
    if (!(await truncateQuietly(this.#fh, this.#visibleBytes))) {
      throw fileSystemError(Object.assign(new Error('the tail of a failed write cannot be cut off'), { code: 'EIO' }), 'cut disk queue segment', this.#active().path);
    }
    this.#tailDirty = false;
  }

  /**
   * Whether a record of `bytes` must go to a new segment: it would overflow the active one (an empty one
   * takes a record of any size), or a roll failed half way.
   */
  #full(bytes: number): boolean {
    const seg = this.#active();
    return this.#rolling || (seg.size > 0 && seg.size + bytes > this.#opts.segmentBytes);
  }

  /** Writes records `[from, to)` of a batch, whole, at the end of the active segment. */
  async #writeBatch(b: Batch, from: number, to: number): Promise<void> {
    const start = from === 0 ? 0 : (b.ends[from - 1] as number);
    const end = b.ends[to - 1] as number;
    const seg = this.#active();
    try {
      await writeFully(this.#fh, b.buf.subarray(start, end), seg.size);
    } catch (err) {
      throw fileSystemError(err, 'append to disk queue segment', seg.path);
    }
    const index = seg.index as SegmentIndex;
    let off = seg.size;
    let prev = start;
    for (let i = from; i < to; i++) {
      index.note(seg.count, off, b.times[i] as number);
      seg.count++;
      const e = b.ends[i] as number;
      off += e - prev;
      prev = e;
    }
    seg.size = off;
    this.#writtenNext = b.firstSeq + to;
  }

  async #sync(): Promise<void> {
    try {
      await this.#fh.datasync();
    } catch (err) {
      throw fileSystemError(err, 'sync disk queue segment', this.#active().path);
    }
  }

  /** Makes records `[from, to)` of a batch visible and resolves their publishes. */
  #settle(b: Batch, from: number, to: number): void {
    const lastSeq = b.firstSeq + to - 1;
    this.#visibleSeq = lastSeq;
    this.#visibleBytes = this.#active().size;
    this.#visibleTs = b.times[to - 1] as number;
    if (this.#opts.retentionMessages > 0) this.#start = Math.max(this.#start, lastSeq - this.#opts.retentionMessages + 1);
    for (let i = from; i < to; i++) (b.resolves[i] as (r: PublishResult) => void)({ seq: b.firstSeq + i, duplicate: false });
    if (this.#durableWaiters.length > 0) {
      for (let i = this.#durableWaiters.length - 1; i >= 0; i--) {
        const w = this.#durableWaiters[i] as { seq: number; resolve: () => void };
        if (w.seq <= lastSeq) {
          this.#durableWaiters.splice(i, 1);
          w.resolve();
        }
      }
    }
    for (const fn of this.#listeners) fn();
  }

  /**
   * After a failed write, sync or roll nothing of the round is acknowledged, and the log is put back as it
   * was after its last acknowledged record: the segment is cut back to that record's end (a short write
   * leaves no torn tail, and the next write lands right after the last good record, never past a gap), seqs
   * and dedupe ids resume from there, and every publish waiting is refused with the error. The next append
   * tries again, so the topic works once space is back, without a reopen.
   */
  async #rollBack(err: unknown, batches: Batch[]): Promise<void> {
    const seg = this.#active();
    const error = fileSystemError(err, 'append to disk queue segment', seg.path);
    const next = this.#visibleSeq + 1;
    seg.size = this.#visibleBytes;
    seg.count = next - seg.base;
    (seg.index as SegmentIndex).cut(seg.count, this.#visibleTs);
    this.#writtenNext = next;
    this.#nextSeq = next;
    // Publishes appended while the write ran got later seqs: they are refused too, so seqs stay gapless.
    for (const b of [...batches, ...this.#ready, ...(this.#acc ? [this.#acc] : [])]) for (const r of b.rejects) r(error);
    this.#ready = [];
    this.#acc = undefined;
    for (const [id, e] of this.#dedupe) if (e.seq >= next) this.#dedupe.delete(id);
    for (let i = this.#durableWaiters.length - 1; i >= 0; i--) {
      const w = this.#durableWaiters[i] as { seq: number; reject: (err: unknown) => void };
      if (w.seq >= next) {
        this.#durableWaiters.splice(i, 1);
        w.reject(error);
      }
    }
    this.#tailDirty = !(await truncateQuietly(this.#fh, seg.size));
  }

  /** Seals the active segment and starts a new one whose first record will be `base`. */
  async #roll(base: number): Promise<Segment> {
    const old = this.#active();
    // Older segments are always complete on disk, so only the last one can have a torn tail.
    await this.#cutDirtyTail();
    await this.#sync();
    // An index is rebuilt from its segment when missing: failing to save one (a full disk) stops nothing.
    await (old.index as SegmentIndex).save(idxPath(old), old.count, old.size).catch(() => undefined);
    const path = join(this.dir, segmentName(base));
    this.#rolling = true;
    let fh: FileHandle;
    try {
      fh = await open(path, writeFlags(this.#opts.durability, true), 0o600);
    } catch (err) {
      throw fileSystemError(err, 'create disk queue segment', path);
    }
    try {
      await syncDirectory(this.dir);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw fileSystemError(err, 'create disk queue segment', path);
    }
    this.#rolling = false;
    const oldFh = this.#fh;
    this.#fh = fh;
    const seg: Segment = { base, path, size: 0, count: 0, index: new SegmentIndex(), readFh: undefined, readers: 0, deleted: false };
    this.#segments.push(seg);
    this.#visibleBytes = 0;
    this.#visibleTs = Number.NaN;
    // Reads of the old segment's tail may be using the write handle: it becomes the read handle.
    old.readFh = oldFh;
    void this.sweep().catch(() => undefined);
    return seg;
  }

  /** Resolves when every append made so far has been written. */
  async idle(): Promise<void> {
    await this.#commit.idle();
  }

  // ---------------------------------------------------------------- reads

  /** A position for reading from `seq`. */
  position(seq: number): LogPosition {
    return { seq, segment: undefined, offset: 0, offsetSeq: 0 };
  }

  /**
   * Reads visible records from `pos` onward (at most about `maxBytes`), skipping removed ones and those
   * before the log's start; advances `pos`. An empty array means the reader is caught up.
   */
  async readNext(pos: LogPosition, maxRecords: number, maxBytes = READ_CHUNK_BYTES): Promise<StoredMessage[]> {
    const out: StoredMessage[] = [];
    while (out.length === 0) {
      if (pos.seq < this.#start) pos.seq = this.#start;
      if (pos.seq > this.#visibleSeq) return out;
      let seg = pos.segment;
      if (seg === undefined || seg.deleted || pos.offsetSeq > pos.seq || pos.seq >= seg.base + seg.count) {
        seg = await this.#seek(pos);
      }
      const active = seg === this.#segments[this.#segments.length - 1];
      const limit = active ? this.#visibleBytes : seg.size;
      if (pos.offset >= limit) {
        if (active) return out;
        pos.segment = undefined;
        continue;
      }
      seg.readers++;
      let buf: Buffer;
      let bytesRead: number;
      try {
        const fh = await this.#readHandle(seg);
        buf = Buffer.allocUnsafe(Math.min(maxBytes, limit - pos.offset));
        ({ bytesRead } = await fh.read(buf, 0, buf.length, pos.offset));
      } finally {
        seg.readers--;
        if (seg.deleted && seg.readers === 0) closeReadHandle(seg);
      }
      let off = 0;
      while (off < bytesRead && out.length < maxRecords) {
        const c = checkRecord(buf, off, bytesRead, pos.offset + bytesRead >= limit);
        if (c.kind === 'short') {
          if (off === 0) maxBytes = c.need;
          break;
        }
        if (c.kind !== 'ok') throw corrupted(seg.path, pos.offset + off, c.kind === 'torn' ? 'record cut short' : c.reason);
        if (c.seq !== pos.offsetSeq) throw corrupted(seg.path, pos.offset + off, `expected seq ${pos.offsetSeq}, found ${c.seq}`);
        if (c.seq >= pos.seq && c.seq >= this.#start && !this.isRemoved(c.seq)) {
          const where = pos.offset + off;
          const path = seg.path;
          out.push(decodeRecord(buf, off, c.size, c.seq, c.publishedAt, () => `disk queue segment ${path} at byte offset ${where}`));
        }
        if (c.seq >= pos.seq) pos.seq = c.seq + 1;
        off += c.size;
        pos.offsetSeq = c.seq + 1;
      }
      pos.offset += off;
      pos.segment = seg;
    }
    return out;
  }

  async #seek(pos: LogPosition): Promise<Segment> {
    const seg = segmentOf(this.#segments, pos.seq);
    const index = await segmentIndex(seg);
    const e = index.seek(pos.seq - seg.base);
    pos.segment = seg;
    pos.offset = e.offset;
    pos.offsetSeq = seg.base + e.rel;
    return seg;
  }

  async #readHandle(seg: Segment): Promise<FileHandle> {
    if (seg === this.#segments[this.#segments.length - 1]) return this.#fh;
    seg.readFh ??= await open(seg.path, 'r');
    return seg.readFh;
  }

  /** Reads up to `limit` stored messages from `fromSeq` (payloads copied: the caller may keep them). */
  async read(fromSeq: number, limit: number): Promise<StoredMessage[]> {
    const pos = this.position(fromSeq);
    const out: StoredMessage[] = [];
    while (out.length < limit) {
      const got = await this.readNext(pos, limit - out.length);
      if (got.length === 0) break;
      for (const m of got) out.push({ ...m, payload: Uint8Array.prototype.slice.call(m.payload) });
    }
    return out;
  }

  // ---------------------------------------------------------------- removal, purge, retention

  /** Marks a message removed (a durable tombstone): reads and deliveries skip it. */
  async remove(seq: number): Promise<void> {
    if (seq < this.#start || seq > this.#visibleSeq || this.#removed.has(seq)) return;
    this.#removed.add(seq);
    try {
      await this.#tombstones.append(EntryKind.Removed, seq, 0, true);
    } catch (err) {
      // The tombstone is not on disk: the message stays, here as after a restart.
      this.#removed.delete(seq);
      throw err;
    }
  }

  /**
   * Removes every visible message: starts a new segment at the next seq (so seqs keep increasing), then
   * deletes the older segments oldest first (a crash in between leaves a shorter suffix, never a gap).
   */
  async purge(): Promise<void> {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    while (this.#exclusive) await this.#exclusive;
    this.#exclusive = gate;
    try {
      while (this.#writing) await this.#writing;
      const base = this.#writtenNext;
      const active = this.#segments[this.#segments.length - 1] as Segment;
      if (active.size > 0) await this.#roll(base);
      this.#start = base;
      await this.#deleteBefore(base);
      for (const [id, e] of this.#dedupe) if (e.seq < base) this.#dedupe.delete(id);
      this.#removed.clear();
      await this.#tombstones.truncate();
    } finally {
      this.#exclusive = undefined;
      release();
    }
  }

  /** Applies retention and removes segments every group is past. Runs every second and after each roll. */
  async sweep(): Promise<void> {
    if (this.#exclusive) return;
    const o = this.#opts;
    if (o.retentionMessages > 0) this.#start = Math.max(this.#start, this.#visibleSeq - o.retentionMessages + 1);
    if (o.retentionMs > 0) await this.#applyAge(Date.now() - o.retentionMs);
    if (o.retentionBytes > 0) {
      let total = 0;
      for (const s of this.#segments) total += s.size;
      for (let i = 0; i < this.#segments.length - 1 && total > o.retentionBytes; i++) {
        const s = this.#segments[i] as Segment;
        total -= s.size;
        this.#start = Math.max(this.#start, s.base + s.count);
      }
    }
    let before = this.#start;
    const need = this.groupsNeed();
    if (need !== undefined) before = Math.max(before, Math.min(need, this.#visibleSeq + 1));
    await this.#deleteBefore(before);
  }

  async #applyAge(cutoff: number): Promise<void> {
    // Whole segments whose newest record is too old; then record by record in the first one kept.
    for (let i = 0; i < this.#segments.length - 1; i++) {
      const s = this.#segments[i] as Segment;
      const idx = await segmentIndex(s);
      if (!(idx.lastTs < cutoff)) break;
      this.#start = Math.max(this.#start, s.base + s.count);
    }
    const pos = this.position(this.#start);
    for (let rounds = 0; rounds < 64; rounds++) {
      const got = await this.readNext(pos, 4096);
      if (got.length === 0) return;
      for (const m of got) {
        if (m.publishedAt.getTime() >= cutoff) return;
        this.#start = Math.max(this.#start, m.seq + 1);
      }
    }
  }

  /** Deletes sealed segments whose every record is before `seq`. */
  async #deleteBefore(seq: number): Promise<void> {
    while (this.#segments.length > 1) {
      const s = this.#segments[0] as Segment;
      if (s.base + s.count > seq) break;
      this.#segments.shift();
      s.deleted = true;
      if (s.readers === 0) closeReadHandle(s);
      await unlink(s.path).catch(() => undefined);
      await unlink(idxPath(s)).catch(() => undefined);
    }
    this.#start = Math.max(this.#start, (this.#segments[0] as Segment).base);
  }

  /** Writes what is pending, syncs, and releases the files. */
  async close(): Promise<void> {
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    await this.#commit.stop();
    if (this.#tailDirty) await truncateQuietly(this.#fh, this.#visibleBytes);
    await this.#commit.syncUnsynced();
    await this.#fh.close().catch(() => undefined);
    for (const s of this.#segments) closeReadHandle(s);
    await this.#tombstones.close();
    for (const w of this.#durableWaiters) w.resolve();
  }
}
