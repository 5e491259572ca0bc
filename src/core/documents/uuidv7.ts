/**
 * UUIDv7 ids (RFC 9562): a 48-bit millisecond timestamp, then random bits, so ids sort by creation time.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';

let lastMs = 0;
let counter = 0;

/**
 * A new UUIDv7. Within one millisecond the 12-bit `rand_a` field is a counter started at a random value
 * below 2048 (RFC 9562 method 1), so ids made by this process are strictly increasing; when the counter runs
 * out, or the clock steps back, the timestamp is advanced by one instead.
 */
export function uuidv7(): string {
  const bytes = randomBytes(16);
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
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
