/**
 * The SQLite adapter: `sqlite://` documents (embedded, standalone mode).
 *
 * @module
 */
import type { SchemeDefinition } from '../../driver/index.js';
import { enumParam, intParam, standalonePath } from '../../driver/url.js';
import { ensurePrivateFile } from '../../driver/private-file.js';
import { SqliteDocumentsDriver } from './documents-driver.js';

export { SqliteDocumentsDriver, sqliteFile, type SqliteDocumentsOptions, type SqliteSynchronous } from './documents-driver.js';

/**
 * `sqlite:///abs/path/documents.db` (or `sqlite://` for `<dataDir>/documents.db`, or a relative path under
 * the data folder). Parameters: `synchronous` (`full`, the default: every commit fsynced; or `normal`),
 * `busyTimeoutMs` (default 5000).
 */
export const sqliteDocumentsScheme: SchemeDefinition<'documents'> = {
  port: 'documents',
  scheme: 'sqlite',
  params: ['synchronous', 'busyTimeoutMs'],
  open: async (url, context) => {
    const file = standalonePath(url, context.dataDir, 'documents.db');
    // SQLite creates a database 0644 (and its -wal and -shm files with the database's mode): created first, 0600.
    await ensurePrivateFile(file);
    return new SqliteDocumentsDriver({
      file,
      synchronous: enumParam(url, 'synchronous', ['full', 'normal'] as const, 'full'),
      busyTimeoutMs: intParam(url, 'busyTimeoutMs', 5000, { min: 0, max: 600_000 }),
    });
  },
};
