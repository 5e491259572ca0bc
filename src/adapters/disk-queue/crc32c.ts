/**
 * CRC-32C (Castagnoli), the checksum of every disk-queue record and journal entry.
 *
 * Written by hand because `node:zlib` has only CRC-32 (and only from Node 22). Slicing-by-8 tables make it
 * fast enough to check every record on every read.
 *
 * @module
 */

const POLY = 0x82f63b78;
const T = new Int32Array(256 * 8);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  for (let k = 1; k < 8; k++) {
    const prev = T[(k - 1) * 256 + n] as number;
    T[k * 256 + n] = (prev >>> 8) ^ (T[prev & 0xff] as number);
  }
}

/**
 * The CRC-32C of `buf[start..end)`.
 *
 * @param buf - the bytes
 * @param start - first byte (default 0)
 * @param end - one past the last byte (default `buf.length`)
 * @returns the checksum as an unsigned 32-bit integer
 * @example
 * ```ts
 * crc32c(Buffer.from('123456789')) === 0xe3069283;
 * ```
 */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length): number {
  let c = -1;
  let i = start;
  const t = T;
  for (; i + 8 <= end; i += 8) {
    c ^= (buf[i] as number) | ((buf[i + 1] as number) << 8) | ((buf[i + 2] as number) << 16) | ((buf[i + 3] as number) << 24);
    c =
      (t[1792 + (c & 0xff)] as number) ^
      (t[1536 + ((c >>> 8) & 0xff)] as number) ^
      (t[1280 + ((c >>> 16) & 0xff)] as number) ^
      (t[1024 + (c >>> 24)] as number) ^
      (t[768 + (buf[i + 4] as number)] as number) ^
      (t[512 + (buf[i + 5] as number)] as number) ^
      (t[256 + (buf[i + 6] as number)] as number) ^
      (t[buf[i + 7] as number] as number);
  }
  for (; i < end; i++) c = (t[(c ^ (buf[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}
