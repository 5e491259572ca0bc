/**
 * The ports: the interfaces the application calls, the driver interfaces adapters implement, and the
 * error type. Nothing here does I/O or imports a client library.
 *
 * @module
 */
export * from './errors.js';
export * from './common.js';
export * from './config.js';
export * from './secrets.js';
export * from './queue.js';
export * from './cache.js';
export * from './documents.js';
