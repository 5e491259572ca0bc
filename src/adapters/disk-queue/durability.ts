/**
 * The `fsync` policy of a disk queue, parsed from its URL.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';

/**
 * When written bytes are forced to the disk.
 *
 * - `always`: every publish is written durably on its own before it is acknowledged (the active segment is
 *   opened with `O_DSYNC`, so each write returns once it is on the disk, as a write then `fdatasync` would).
 * - `batch` (default): group commit — publishes that arrive while a write is in progress share the next
 *   write and `fdatasync`; each is acknowledged after the `fdatasync` that covers it.
 * - `interval`: publishes are acknowledged once written to the OS (they survive a process crash) and an
 *   `fdatasync` runs every `intervalMs`; a power loss or kernel crash can lose up to `intervalMs` of
 *   acknowledged publishes and acks.
 */
export type Durability =
  | {
      /** Every publish written and synced on its own. */
      mode: 'always';
    }
  | {
      /** Group commit. */
      mode: 'batch';
    }
  | {
      /** Acknowledge once written; sync on a timer. */
      mode: 'interval';
      /** Milliseconds between syncs: the loss window on power failure. */
      intervalMs: number;
    };

/** Parses `always`, `batch` or `interval:<ms>`. */
export function parseDurability(raw: string | undefined): Durability {
  if (raw === undefined || raw === 'batch') return { mode: 'batch' };
  if (raw === 'always') return { mode: 'always' };
  const m = /^interval:(\d{1,7})$/.exec(raw);
  if (m) {
    const intervalMs = Number(m[1]);
    if (intervalMs >= 1) return { mode: 'interval', intervalMs };
  }
  throw new StowageError('INVALID_ARGUMENT', `query parameter "fsync" must be always, batch or interval:<ms> (1 to 9999999), got ${JSON.stringify(raw)}`);
}
