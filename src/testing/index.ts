/**
 * The adapter contract suites (`stowage/testing`): the behaviour every adapter of a port must show, ours or
 * a third party's. Each suite takes the test runner's `describe`/`it` and a factory of fresh instances, and
 * tests every capability the instance declares (undeclared ones must reject with UNSUPPORTED).
 *
 * @example
 * ```ts
 * import { describe, it } from 'node:test'; // or vitest's, jest's, mocha's describe/it
 * import { createConfigStore, type ConfigDriver } from 'stowage';
 * import { configContract } from 'stowage/testing';
 *
 * declare const MyConfigDriver: new () => ConfigDriver; // yours: the port's driver interface
 *
 * configContract({ test: { describe, it }, name: 'my://', factory: async () => createConfigStore(new MyConfigDriver()) });
 * ```
 *
 * A test of a capability the instance does not declare is reported as skipped, with the reason, on runners whose
 * test context can skip (vitest, `node:test`, mocha).
 *
 * @module
 */
export { configContract, type ConfigContractOptions } from './config.js';
export { secretsContract } from './secrets.js';
export { queueContract, type QueueContractOptions } from './queue.js';
export { cacheContract, type CacheContractOptions } from './cache.js';
export {
  documentsContract,
  FILTER_CASES,
  FILTER_DATASET,
  SORT_CASES,
  type DocumentsContractOptions,
  type FilterCase,
  type SortCase,
} from './documents.js';
export { rejectsWith, withInstance, sleep, eventually, runnable, skipUnless, SkipTest, type TestApi, type ContractOptions, type Closable } from './harness.js';
