/**
 * `disk://` for the queue port: an embedded, crash-safe, append-only segmented log in one folder.
 *
 * `disk:///abs/folder?fsync=always|batch|interval:<ms>&segmentBytes=&retentionMs=&retentionBytes=&retentionMessages=&dedupeWindowMs=`;
 * a relative or empty path means a folder under the standalone data folder (`<dataDir>/queue` when empty).
 *
 * @module
 */
import type { SchemeDefinition } from '../../driver/index.js';
import { intParam, standalonePath } from '../../driver/url.js';
import { parseDurability } from './durability.js';
import { DEFAULT_DISK_DEDUPE_WINDOW_MS, DEFAULT_SEGMENT_BYTES, DiskQueueDriver } from './queue-driver.js';

export {
  DiskQueueDriver,
  DEFAULT_SEGMENT_BYTES,
  DEFAULT_DISK_DEDUPE_WINDOW_MS,
  type DiskQueueOptions,
  type DiskQueueNative,
} from './queue-driver.js';
export { parseDurability, type Durability } from './durability.js';

/**
 * The `disk://` queue scheme.
 *
 * @example
 * ```ts
 * const queue = createQueue(await registry.open('queue', 'disk:///var/lib/app/queue?fsync=batch', context));
 * ```
 */
export const diskQueueScheme: SchemeDefinition<'queue'> = {
  port: 'queue',
  scheme: 'disk',
  params: ['fsync', 'segmentBytes', 'retentionMs', 'retentionBytes', 'retentionMessages', 'dedupeWindowMs'],
  localPath: (url, dataDir) => standalonePath(url, dataDir, 'queue'),
  open: async (url, context) => {
    const root = standalonePath(url, context.dataDir, 'queue');
    return DiskQueueDriver.open(root, {
      durability: parseDurability(url.params.get('fsync')),
      segmentBytes: intParam(url, 'segmentBytes', DEFAULT_SEGMENT_BYTES, { min: 4096, max: 1024 * 1024 * 1024 }),
      retentionMs: intParam(url, 'retentionMs', 0, { min: 0 }),
      retentionBytes: intParam(url, 'retentionBytes', 0, { min: 0 }),
      retentionMessages: intParam(url, 'retentionMessages', 0, { min: 0 }),
      dedupeWindowMs: intParam(url, 'dedupeWindowMs', DEFAULT_DISK_DEDUPE_WINDOW_MS, { min: 1 }),
    });
  },
};
