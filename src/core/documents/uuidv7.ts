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
  // The id's 16 bytes are pool[o] … pool[o + 15], written in place (no view object per id).
  const o = 16 * poolNext++;
  let ms = Date.now();
  if (ms > lastMs) {
    lastMs = ms;
    counter = ((pool[o + 6] as number) << 4 | ((pool[o + 7] as number) >> 4)) & 0x7ff;
  } else {
    counter++;
    if (counter > 0xfff) {
      lastMs++;
      counter = 0;
    }
    ms = lastMs;
  }
  pool[o] = Math.floor(ms / 2 ** 40) & 0xff;
  pool[o + 1] = Math.floor(ms / 2 ** 32) & 0xff;
  pool[o + 2] = (ms >>> 24) & 0xff;
  pool[o + 3] = (ms >>> 16) & 0xff;
  pool[o + 4] = (ms >>> 8) & 0xff;
  pool[o + 5] = ms & 0xff;
  pool[o + 6] = 0x70 | (counter >> 8);
  pool[o + 7] = counter & 0xff;
  pool[o + 8] = 0x80 | ((pool[o + 8] as number) & 0x3f);
  return (
    `${hex(o)}${hex(o + 1)}${hex(o + 2)}${hex(o + 3)}-${hex(o + 4)}${hex(o + 5)}-${hex(o + 6)}${hex(o + 7)}-` +
    `${hex(o + 8)}${hex(o + 9)}-${hex(o + 10)}${hex(o + 11)}${hex(o + 12)}${hex(o + 13)}${hex(o + 14)}${hex(o + 15)}`
  );
}

/** The two hex digits of pool byte `i`. */
function hex(i: number): string {
  return HEX[pool[i] as number] as string;
}
