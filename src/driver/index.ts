/**
 * `stowage/driver`: everything an adapter may use, and nothing else. An adapter imports only `stowage` (the
 * ports), this module and its own client library; a lint rule keeps the built-in adapters to the same rule,
 * so a third-party adapter has the same toolkit as the built-in ones.
 *
 * What is here:
 * - scheme definitions: {@link SchemeDefinition}, {@link OpenContext}, {@link Logger};
 * - errors: one factory per kind ({@link versionConflict}, {@link revisionConflict}, {@link invalid},
 *   {@link unsupported}, {@link closed}, {@link unavailable}, …; the CONFLICT details in
 *   {@link ConflictDetails}) and {@link toStowageError}/{@link safeCause}/{@link redact} for raw client errors;
 * - URL parameters: {@link intParam}, {@link boolParam}, {@link enumParam}, {@link urlPassword},
 *   {@link standalonePath};
 * - validation and JSON: {@link quote}, {@link validateKey}, {@link serializeJson}, {@link parseStoredJson};
 * - watches: {@link EventQueue}, {@link ConfigEventHistory}, {@link configSnapshot};
 * - subscriptions: {@link PushIterator}, the iterator a producer pushes into and one reader takes from;
 * - files: atomic replacement, exclusive creation, directory sync, pid locks, private files, the data-folder
 *   lock;
 * - documents: filter matching, sort order and {@link sameIndex};
 * - waiting: {@link sleep} and {@link pause}, which an abort ends, and the bounds of a retry loop's backoff,
 *   {@link RETRY_MIN_MS} and {@link RETRY_MAX_MS};
 * - group commit: {@link GroupCommit}, the write loop of an append-only file;
 * - sealing: the AES-GCM envelope and master-key resolution the sealed stores share.
 *
 * @example
 * ```ts
 * import { intParam, type SchemeDefinition } from 'stowage/driver';
 *
 * export const myScheme: SchemeDefinition<'config'> = {
 *   scheme: 'my',
 *   port: 'config',
 *   params: ['limit'],
 *   open: async (url) => openMyDriver({ limit: intParam(url, 'limit', 100) }),
 * };
 * ```
 *
 * @module
 */
export type { SchemeDefinition, OpenContext, Logger, DriverOf, DriverMap } from '../core/registry.js';
export { missingClientError } from '../core/registry.js';
export * from './errors.js';
export * from './url.js';
export * from './validate.js';
export * from './event-queue.js';
export * from './push-iterator.js';
export * from './config-event-history.js';
export * from './config-snapshot.js';
export * from './durable-file.js';
export * from './pid-lock.js';
export * from './private-file.js';
export * from './data-dir-lock.js';
export * from './seal.js';
export * from './sleep.js';
export * from './group-commit.js';
export * from './indexes.js';
// These live in files other work is changing; they move under src/driver/ once that lands.
export { ID_PATH, INDEX_SEGMENT, compareCodePoints, fieldConditions, matchesFilter, regexPrefix, valueAt, type FieldCondition, type JsonTypeName } from '../core/documents/filter.js';
export { comparePosition, compareValues, documentComparator, sortKey, sortValues, typeRank, type SortKeys } from '../core/documents/sort.js';
