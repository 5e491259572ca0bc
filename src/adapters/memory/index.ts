/**
 * `mem://` for every port: everything in process memory, every capability, nothing survives a restart.
 * For tests and throwaway use.
 *
 * @module
 */
export { memConfigScheme, MemoryConfigDriver, DEFAULT_MEM_CONFIG_HISTORY, type MemoryConfigOptions } from './config-driver.js';
export { memSecretsScheme, MemorySecretsDriver } from './secrets-driver.js';
export { memQueueScheme, MemQueueDriver, DEFAULT_DEDUPE_WINDOW_MS, type MemQueueOptions } from './queue-driver.js';
export {
  memCacheScheme,
  MemoryCacheDriver,
  DEFAULT_MEM_CACHE_MAX_ENTRIES,
  DEFAULT_MEM_CACHE_MAX_BYTES,
  type MemoryCacheOptions,
} from './cache-driver.js';
export { memDocumentsScheme, MemoryDocumentsDriver } from './documents-driver.js';
