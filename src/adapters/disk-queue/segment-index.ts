/**
 * The sparse index of one segment: every {@link INDEX_INTERVAL_BYTES} of log, the position of the record
 * that starts there. Seeking by seq reads from the nearest entry at or before it.
 *
 * File layout (`<base>.idx`, little-endian), written once when a segment is sealed:
 *
 * ```
 * 0   4 bytes  "SQIX"
 * 4   u32      format version (1)
 * 8   n × (u32 seq − base, u32 byte offset)
 * end u32 n, u32 record count, u32 segment bytes, u32 0, f64 first publish time, f64 last publish time,
 *     u32 CRC-32C of every byte before it
 * ```
 *
 * An index whose checksum fails, or whose segment size or record count disagrees with the segment, is
 * stale and is rebuilt by scanning the segment.
 *
 * @module
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { crc32c } from './crc32c.js';

/** Log bytes between index entries. */
export const INDEX_INTERVAL_BYTES = 16 * 1024;

const MAGIC = 0x58495153; // "SQIX" read as little-endian u32
const TRAILER_BYTES = 36;

/** Positions of some records of a segment, in order. */
export class SegmentIndex {
  /** seq − base of each entry. */
  readonly rel: number[] = [];
  /** Byte offset of each entry. */
  readonly offsets: number[] = [];
  #nextAt = 0;
  /** Publish time of the first record (NaN when empty). */
  firstTs = Number.NaN;
  /** Publish time of the last record (NaN when empty). */
  lastTs = Number.NaN;

  /** Notes a record at `offset`; keeps it when it starts a new interval. */
  note(rel: number, offset: number, ts: number): void {
    if (rel === 0) this.firstTs = ts;
    this.lastTs = ts;
    if (offset >= this.#nextAt) {
      this.rel.push(rel);
      this.offsets.push(offset);
      this.#nextAt = offset + INDEX_INTERVAL_BYTES;
    }
  }

  /**
   * Forgets the records from `records` on, after a failed write was cut off the segment.
   *
   * @param lastTs - The publish time of the last record kept (NaN when none is).
   */
  cut(records: number, lastTs: number): void {
    while (this.rel.length > 0 && (this.rel[this.rel.length - 1] as number) >= records) {
      this.rel.pop();
      this.offsets.pop();
    }
    // Records after the last entry kept were all within one interval of it, as before the write.
    this.#nextAt = this.offsets.length > 0 ? (this.offsets[this.offsets.length - 1] as number) + INDEX_INTERVAL_BYTES : 0;
    if (records === 0) this.firstTs = Number.NaN;
    this.lastTs = lastTs;
  }

  /** The entry at or before `rel`: where to start reading to find it. */
  seek(rel: number): { rel: number; offset: number } {
    let lo = 0;
    let hi = this.rel.length - 1;
    if (hi < 0 || (this.rel[0] as number) > rel) return { rel: 0, offset: 0 };
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.rel[mid] as number) <= rel) lo = mid;
      else hi = mid - 1;
    }
    return { rel: this.rel[lo] as number, offset: this.offsets[lo] as number };
  }

  /** Writes the index file atomically (temporary file, then rename). No fsync: it can always be rebuilt. */
  async save(path: string, records: number, segmentBytes: number): Promise<void> {
    const n = this.rel.length;
    const buf = Buffer.alloc(8 + n * 8 + TRAILER_BYTES);
    buf.writeUInt32LE(MAGIC, 0);
    buf.writeUInt32LE(1, 4);
    for (let i = 0; i < n; i++) {
      buf.writeUInt32LE(this.rel[i] as number, 8 + i * 8);
      buf.writeUInt32LE(this.offsets[i] as number, 12 + i * 8);
    }
    const t = 8 + n * 8;
    buf.writeUInt32LE(n, t);
    buf.writeUInt32LE(records, t + 4);
    buf.writeUInt32LE(segmentBytes, t + 8);
    buf.writeUInt32LE(0, t + 12);
    buf.writeDoubleLE(this.firstTs, t + 16);
    buf.writeDoubleLE(this.lastTs, t + 24);
    buf.writeUInt32LE(crc32c(buf, 0, t + 32), t + 32);
    try {
      await writeFile(`${path}.tmp`, buf, { mode: 0o600 });
      await rename(`${path}.tmp`, path);
    } catch (err) {
      // A full disk leaves part of the temporary file: give the space back.
      await rm(`${path}.tmp`, { force: true });
      throw err;
    }
  }

  /**
   * Loads an index file; undefined when it is missing, damaged, or does not describe a segment of
   * `segmentBytes` bytes and `records` records (stale).
   */
  static async load(path: string, records: number, segmentBytes: number): Promise<SegmentIndex | undefined> {
    let buf: Buffer;
    try {
      buf = await readFile(path);
    } catch {
      return undefined;
    }
    if (buf.length < 8 + TRAILER_BYTES || (buf.length - 8 - TRAILER_BYTES) % 8 !== 0) return undefined;
    const t = buf.length - TRAILER_BYTES;
    if (buf.readUInt32LE(0) !== MAGIC || buf.readUInt32LE(4) !== 1) return undefined;
    if (crc32c(buf, 0, t + 32) !== buf.readUInt32LE(t + 32)) return undefined;
    const n = buf.readUInt32LE(t);
    if (n !== (t - 8) / 8 || buf.readUInt32LE(t + 4) !== records || buf.readUInt32LE(t + 8) !== segmentBytes) return undefined;
    const index = new SegmentIndex();
    for (let i = 0; i < n; i++) {
      index.rel.push(buf.readUInt32LE(8 + i * 8));
      index.offsets.push(buf.readUInt32LE(12 + i * 8));
    }
    index.firstTs = buf.readDoubleLE(t + 16);
    index.lastTs = buf.readDoubleLE(t + 24);
    return index;
  }
}
