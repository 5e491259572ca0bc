/**
 * The tiered cache adapter: `tiered://?remote=<url-encoded redis URL>&localMaxEntries=10000&localTtlMs=60000`.
 *
 * Each node keeps a memory tier in front of a shared Redis; every write publishes an invalidation on a
 * Redis channel (`channel=`, default `stowage:cache:invalidate:<db>`) and every other node drops its copy.
 * Give the remote's password with `passwordFile=` inside the remote URL, not in its user info, so it never
 * sits in the tiered URL.
 *
 * @example
 * ```ts
 * const remote = encodeURIComponent('redis://cache:6379/0?passwordFile=/run/secrets/redis');
 * const driver = await registry.open('cache', `tiered://?remote=${remote}&localTtlMs=30000`, context);
 * ```
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { CacheDriver } from '../../ports/cache.js';
import type { SchemeDefinition } from '../../driver/index.js';
import { intParam, parseUrl } from '../../driver/url.js';
import { TieredCacheDriver } from './cache-driver.js';

export { TieredCacheDriver, type TieredCacheOptions, type TieredNative } from './cache-driver.js';

/** Default `localMaxEntries`: entries kept in each node's memory tier. */
export const DEFAULT_TIERED_LOCAL_MAX_ENTRIES = 10_000;
/** Default `localTtlMs`: the longest a node keeps a local copy (bounds staleness if an invalidation is lost). */
export const DEFAULT_TIERED_LOCAL_TTL_MS = 60_000;

/** `tiered://?remote=…` — memory in front of Redis, invalidated across nodes. */
export const tieredCacheScheme: SchemeDefinition<'cache'> = {
  port: 'cache',
  scheme: 'tiered',
  params: ['remote', 'localMaxEntries', 'localTtlMs', 'channel'],
  open: async (url, context) => {
    if (url.hosts.length > 0 || url.path !== '') {
      throw new StowageError('INVALID_ARGUMENT', 'tiered:// takes no host or path: tiered://?remote=<url-encoded redis URL>');
    }
    const remoteUrl = url.params.get('remote');
    if (remoteUrl === undefined || remoteUrl === '') {
      throw new StowageError('INVALID_ARGUMENT', 'tiered:// needs ?remote=<url-encoded redis URL>');
    }
    const remoteParsed = parseUrl(remoteUrl);
    if (remoteParsed.scheme === 'tiered') throw new StowageError('INVALID_ARGUMENT', 'tiered:// cannot have a tiered:// remote');
    const localMaxEntries = intParam(url, 'localMaxEntries', DEFAULT_TIERED_LOCAL_MAX_ENTRIES, { min: 1 });
    const localTtlMs = intParam(url, 'localTtlMs', DEFAULT_TIERED_LOCAL_TTL_MS, { min: 1 });
    const db = remoteParsed.path.replace(/^\/+|\/+$/g, '') || '0';
    const channel = url.params.get('channel') ?? `stowage:cache:invalidate:${db}`;

    const local = await context.openDriver('cache', `mem://?maxEntries=${localMaxEntries}`);
    let remote: CacheDriver | undefined;
    try {
      remote = await context.openDriver('cache', remoteUrl);
      return await TieredCacheDriver.open({ local, remote, localTtlMs, channel, logger: context.logger });
    } catch (err) {
      await Promise.allSettled([local.close(), remote?.close()]);
      throw err;
    }
  },
};
