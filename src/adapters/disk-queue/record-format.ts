/**
 * The byte layout of one disk-queue record, and the scanner that checks records in a segment.
 *
 * A record is a 12-byte frame header followed by its body (all integers little-endian):
 *
 * ```
 * frame   0  u32  bodyLength
 *         4  u32  bodyLength XOR 0xFFFFFFFF   (guards the length: a torn write cannot produce a mismatch)
 *         8  u32  CRC-32C of the body
 * body    0  u32  seq, low 32 bits
 *         4  u32  seq, high 21 bits
 *         8  f64  publish time, ms since the epoch
 *        16  u16  id length in bytes (0: no id)
 *        18  u16  reserved, 0
 *        20  u32  headers length in bytes (0: no headers)
 *        24  …    id (UTF-8), headers (JSON object, UTF-8), payload (the rest)
 * ```
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { Headers, StoredMessage } from '../../ports/queue.js';
import { crc32c } from './crc32c.js';

/** Bytes of the frame header. */
export const FRAME_BYTES = 12;
/** Bytes of the fixed part of the body. */
export const BODY_FIXED_BYTES = 24;
/** Frame and fixed body: the smallest record. */
export const RECORD_OVERHEAD = FRAME_BYTES + BODY_FIXED_BYTES;
/** The largest body the format accepts (a sanity bound when scanning damaged data). */
export const MAX_BODY_BYTES = 256 * 1024 * 1024;

const EMPTY_HEADERS: Headers = Object.freeze({});

/** A record's fields, ready to be written. */
export interface EncodedFields {
  /** UTF-8 of the id, or undefined. */
  id: Buffer | undefined;
  /** UTF-8 JSON of the headers, or undefined when there are none. */
  headers: Buffer | undefined;
  /** The payload. */
  payload: Uint8Array;
}

/** The total bytes a record with these fields takes. */
export function recordBytes(f: EncodedFields): number {
  return RECORD_OVERHEAD + (f.id?.length ?? 0) + (f.headers?.length ?? 0) + f.payload.length;
}

/**
 * Writes one record into `buf` at `offset` (which must have {@link recordBytes} bytes free).
 *
 * @returns the offset after the record
 */
export function encodeRecord(buf: Buffer, offset: number, seq: number, publishedAt: number, f: EncodedFields): number {
  const idLen = f.id?.length ?? 0;
  const hLen = f.headers?.length ?? 0;
  const bodyLen = BODY_FIXED_BYTES + idLen + hLen + f.payload.length;
  const body = offset + FRAME_BYTES;
  buf.writeUInt32LE(bodyLen, offset);
  buf.writeUInt32LE(~bodyLen >>> 0, offset + 4);
  buf.writeUInt32LE(seq >>> 0, body);
  buf.writeUInt32LE(Math.floor(seq / 0x1_0000_0000), body + 4);
  buf.writeDoubleLE(publishedAt, body + 8);
  buf.writeUInt16LE(idLen, body + 16);
  buf.writeUInt16LE(0, body + 18);
  buf.writeUInt32LE(hLen, body + 20);
  let p = body + BODY_FIXED_BYTES;
  if (f.id) p += f.id.copy(buf, p);
  if (f.headers) p += f.headers.copy(buf, p);
  buf.set(f.payload, p);
  p += f.payload.length;
  buf.writeUInt32LE(crc32c(buf, body, p), offset + 8);
  return p;
}

/** What {@link checkRecord} found at an offset. */
export type RecordCheck =
  /** A whole, valid record of `size` bytes. */
  | { kind: 'ok'; size: number; seq: number; publishedAt: number }
  /** The bytes end inside the record (or are all zero): a write that did not finish. */
  | { kind: 'torn' }
  /** The bytes are complete but wrong. */
  | { kind: 'corrupt'; reason: string };

function allZero(buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * Checks the record at `offset` in `buf[..end)`, where `end` is the end of the file's bytes read so far
 * and `atEof` says whether `end` is also the end of the file.
 *
 * A record cut by the end of the file is `torn`; so is an all-zero remainder (blocks a file system
 * allocated but never filled before a power loss). A complete record with a bad length guard or checksum
 * is `corrupt`: recovery never shortens a log because of it.
 */
export function checkRecord(buf: Buffer, offset: number, end: number, atEof: boolean): RecordCheck | { kind: 'short'; need: number } {
  const avail = end - offset;
  if (avail < FRAME_BYTES) {
    if (atEof) return { kind: 'torn' };
    return { kind: 'short', need: FRAME_BYTES };
  }
  const bodyLen = buf.readUInt32LE(offset);
  const guard = buf.readUInt32LE(offset + 4);
  if ((~bodyLen >>> 0) !== guard) {
    if (atEof && allZero(buf, offset, end)) return { kind: 'torn' };
    return { kind: 'corrupt', reason: 'length guard mismatch' };
  }
  if (bodyLen < BODY_FIXED_BYTES || bodyLen > MAX_BODY_BYTES) return { kind: 'corrupt', reason: `impossible body length ${bodyLen}` };
  const size = FRAME_BYTES + bodyLen;
  if (avail < size) {
    if (atEof) return { kind: 'torn' };
    return { kind: 'short', need: size };
  }
  const body = offset + FRAME_BYTES;
  if (crc32c(buf, body, offset + size) !== buf.readUInt32LE(offset + 8)) return { kind: 'corrupt', reason: 'checksum mismatch' };
  const seq = buf.readUInt32LE(body) + buf.readUInt32LE(body + 4) * 0x1_0000_0000;
  return { kind: 'ok', size, seq, publishedAt: buf.readDoubleLE(body + 8) };
}

/**
 * Decodes a record already checked by {@link checkRecord}. The payload is a view of `buf` (no copy).
 *
 * @param where - names the record in the CORRUPTED error if its headers are not JSON
 */
export function decodeRecord(buf: Buffer, offset: number, size: number, seq: number, publishedAt: number, where: () => string): StoredMessage {
  const body = offset + FRAME_BYTES;
  const idLen = buf.readUInt16LE(body + 16);
  const hLen = buf.readUInt32LE(body + 20);
  let p = body + BODY_FIXED_BYTES;
  const id = idLen > 0 ? buf.toString('utf8', p, p + idLen) : undefined;
  p += idLen;
  let headers = EMPTY_HEADERS;
  if (hLen > 0) {
    try {
      headers = JSON.parse(buf.toString('utf8', p, p + hLen)) as Headers;
    } catch (err) {
      throw new StowageError('CORRUPTED', `${where()}: record headers are not valid JSON`, { cause: err });
    }
    p += hLen;
  }
  return { seq, id, headers, payload: buf.subarray(p, offset + size), publishedAt: new Date(publishedAt) };
}

/** Reads only the id of a checked record (for rebuilding the dedupe window). */
export function recordId(buf: Buffer, offset: number): string | undefined {
  const body = offset + FRAME_BYTES;
  const idLen = buf.readUInt16LE(body + 16);
  return idLen > 0 ? buf.toString('utf8', body + BODY_FIXED_BYTES, body + BODY_FIXED_BYTES + idLen) : undefined;
}
