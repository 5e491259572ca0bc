/**
 * UUIDv7 ids (RFC 9562): a 48-bit millisecond timestamp, then random bits, so ids sort by creation time.
 *
 * @module
 */
import { randomFillSync } from 'node:crypto';

let lastMs = 0;
let counter = 0;

// Random bytes are drawn 4 KiB at a time (as Node's randomUUID does): one call per 256 ids instead of one each.
const POOL_IDS = 256;
const pool = Buffer.alloc(16 * POOL_IDS);
let poolNext = POOL_IDS;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * A new UUIDv7. Within one millisecond the 12-bit `rand_a` field is a counter started at a random value
 * below 2048 (RFC 9562 method 1), so ids made by this process are strictly increasing; when the counter runs
 * out, or the clock steps back, the timestamp is advanced by one instead.
 */
export function uuidv7(): string {
  if (poolNext === POOL_IDS) {
    randomFillSync(pool);
    poolNext = 0;
  }
  const bytes = pool.subarray(16 * poolNext, 16 * ++poolNext);
  let ms = Date.now();
  if (ms > lastMs) {
    lastMs = ms;
    counter = ((bytes[6] ?? 0) << 4 | ((bytes[7] ?? 0) >> 4)) & 0x7ff;
  } else {
    counter++;
    if (counter > 0xfff) {
      lastMs++;
      counter = 0;
    }
    ms = lastMs;
  }
  bytes[0] = Math.floor(ms / 2 ** 40) & 0xff;
  bytes[1] = Math.floor(ms / 2 ** 32) & 0xff;
  bytes[2] = (ms >>> 24) & 0xff;
  bytes[3] = (ms >>> 16) & 0xff;
  bytes[4] = (ms >>> 8) & 0xff;
  bytes[5] = ms & 0xff;
  bytes[6] = 0x70 | (counter >> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
  const h = (i: number): string => HEX[bytes[i] ?? 0] ?? '00';
  return `${h(0)}${h(1)}${h(2)}${h(3)}-${h(4)}${h(5)}-${h(6)}${h(7)}-${h(8)}${h(9)}-${h(10)}${h(11)}${h(12)}${h(13)}${h(14)}${h(15)}`;
}
