import { describe, it } from 'vitest';
import { memCacheScheme } from '../../src/adapters/memory/cache-driver.js';
import { createCache } from '../../src/core/cache/cache.js';
import { defaultLogger, type OpenContext } from '../../src/core/registry.js';
import { parseUrl } from '../../src/driver/url.js';
import { cacheContract } from '../../src/testing/cache.js';

const context: OpenContext = {
  dataDir: process.cwd(),
  env: {},
  logger: defaultLogger,
  openDriver: () => Promise.reject(new Error('mem:// opens no other driver')),
};

cacheContract({
  test: { describe, it },
  name: 'mem://',
  factory: async () => createCache(await memCacheScheme.open(parseUrl('mem://'), context)),
});
