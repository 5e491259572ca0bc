/**
 * The segment files of a topic log, as files: their names, how they are opened, scanned record by record,
 * indexed (loading or rebuilding the `.idx` beside each), found by seq, and their read handles. The log
 * (`topic-log.ts`) owns which segments exist and what of them is visible.
 *
 * @module
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { StowageError } from '../../ports/errors.js';
import type { Durability } from './durability.js';
import { checkRecord } from './record-format.js';
import { SegmentIndex } from './segment-index.js';

/** One segment file. */
export interface Segment {
  /** Seq of its first record. */
  readonly base: number;
  /** The file. */
  readonly path: string;
  /** Bytes written (for the active segment: written so far, maybe not yet visible). */
  size: number;
  /** Records written. */
  count: number;
  /** Its index once loaded or built (see {@link segmentIndex}). */
  index: SegmentIndex | undefined;
  /** The handle reads of a sealed segment use, opened on the first read. */
  readFh: FileHandle | undefined;
  /** Reads in progress: a deleted segment's handle is closed when the last one ends. */
  readers: number;
  /** Whether retention or purge deleted the file. */
  deleted: boolean;
}

const SCAN_CHUNK_BYTES = 4 * 1024 * 1024;
/** A segment file's name: the seq of its first record, 20 digits. */
export const SEGMENT_NAME = /^(\d{20})\.log$/;
/**
 * How the active segment is opened for writing. Under fsync=always it is opened with `O_DSYNC`: each write
 * returns once its data (and the metadata needed to read it back, such as the file size) is on the disk,
 * which is what a write followed by `fdatasync` guarantees, in one system call instead of two.
 *
 * A new segment is created with `O_TRUNC`: a file of its name can only be left by a roll that failed
 * (a full disk) before anything was written to it.
 */
export function writeFlags(durability: Durability, create: boolean): number {
  const flags = constants.O_RDWR | (create ? constants.O_CREAT | constants.O_TRUNC : 0);
  return durability.mode === 'always' ? flags | constants.O_DSYNC : flags;
}

/** The file name of the segment whose first record is `base`. */
export function segmentName(base: number): string {
  return `${String(base).padStart(20, '0')}.log`;
}

/** The path of a segment's index file. */
export function idxPath(seg: Segment): string {
  return seg.path.slice(0, -4) + '.idx';
}

/** CORRUPTED naming a segment file and the byte offset where it is damaged. */
export function corrupted(file: string, offset: number, reason: string): StowageError {
  return new StowageError('CORRUPTED', `disk queue segment ${file} is damaged at byte offset ${offset} (${reason})`, {
    details: { file, offset },
  });
}

/**
 * Reads `seg[from..to)` record by record, calling `visit` for each valid one; returns where the valid
 * records end. A torn record is allowed only at the end of the active segment (`tornOk`); anything
 * else is CORRUPTED.
 */
export async function scanSegment(
  seg: Segment,
  from: number,
  to: number,
  tornOk: boolean,
  visit: (buf: Buffer, off: number, size: number, seq: number, ts: number) => void,
): Promise<number> {
  const fh = await open(seg.path, 'r');
  try {
    let pos = from;
    let buf = Buffer.allocUnsafe(Math.min(SCAN_CHUNK_BYTES, Math.max(to - from, 1)));
    while (pos < to) {
      const want = Math.min(buf.length, to - pos);
      const { bytesRead } = await fh.read(buf, 0, want, pos);
      const atEof = pos + bytesRead >= to;
      let off = 0;
      while (off < bytesRead) {
        const c = checkRecord(buf, off, bytesRead, atEof);
        if (c.kind === 'ok') {
          visit(buf, off, c.size, c.seq, c.publishedAt);
          off += c.size;
        } else if (c.kind === 'short') {
          if (off === 0) buf = Buffer.allocUnsafe(Math.max(c.need, buf.length * 2));
          break;
        } else if (c.kind === 'torn') {
          if (!tornOk) throw corrupted(seg.path, pos + off, 'record cut short');
          return pos + off;
        } else {
          throw corrupted(seg.path, pos + off, c.reason);
        }
      }
      if (bytesRead === 0) break;
      pos += off;
    }
    return pos;
  } finally {
    await fh.close();
  }
}

/** The publish time of a segment's first record (from its index when loaded), undefined when it is empty. */
export async function firstTimestamp(seg: Segment): Promise<number | undefined> {
  if (seg.index && !Number.isNaN(seg.index.firstTs)) return seg.index.firstTs;
  if (seg.size === 0) return undefined;
  const fh = await open(seg.path, 'r');
  try {
    const buf = Buffer.allocUnsafe(64);
    const { bytesRead } = await fh.read(buf, 0, 64, 0);
    if (bytesRead < 24) return undefined;
    return buf.readDoubleLE(12 + 8);
  } finally {
    await fh.close();
  }
}

/** The segment that holds `seq` (the last whose base is ≤ `seq`; the first when `seq` precedes them all). */
export function segmentOf(segments: readonly Segment[], seq: number): Segment {
  let lo = 0;
  let hi = segments.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if ((segments[mid] as Segment).base <= seq) lo = mid;
    else hi = mid - 1;
  }
  return segments[lo] as Segment;
}

/**
 * A segment's index: the one in memory, else its `.idx` file, else rebuilt by scanning the segment (and saved
 * again). CORRUPTED when the segment does not hold the records its neighbours say it does.
 */
export async function segmentIndex(seg: Segment): Promise<SegmentIndex> {
  if (seg.index) return seg.index;
  let index = await SegmentIndex.load(idxPath(seg), seg.count, seg.size);
  if (!index) {
    const rebuilt = new SegmentIndex();
    let n = 0;
    const end = await scanSegment(seg, 0, seg.size, false, (_b, off, _s, seq, ts) => {
      if (seq !== seg.base + n) throw corrupted(seg.path, off, `expected seq ${seg.base + n}, found ${seq}`);
      rebuilt.note(n++, off, ts);
    });
    if (n !== seg.count || end !== seg.size) {
      throw corrupted(seg.path, end, `holds ${n} records where ${seg.count} were expected`);
    }
    await rebuilt.save(idxPath(seg), seg.count, seg.size).catch(() => undefined);
    index = rebuilt;
  }
  seg.index = index;
  return index;
}

/** Closes a segment's read handle, if open (in the background: nothing waits for it). */
export function closeReadHandle(seg: Segment): void {
  const fh = seg.readFh;
  seg.readFh = undefined;
  if (fh) void fh.close().catch(() => undefined);
}
