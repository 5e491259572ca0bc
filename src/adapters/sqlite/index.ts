/**
 * The SQLite adapter: `sqlite://` documents (embedded, standalone mode).
 *
 * @module
 */
import type { SchemeDefinition } from '../../driver/index.js';
import type { StowageUrl } from '../../driver/url.js';
import { enumParam, intParam, standalonePath } from '../../driver/url.js';
import { ensurePrivateFile } from '../../driver/private-file.js';
import { SqliteDocumentsDriver } from './documents-driver.js';
import { chooseSqliteEngine, type SqliteEngineName } from './engine.js';

export { SqliteDocumentsDriver, sqliteFile, type SqliteDocumentsOptions, type SqliteSynchronous } from './documents-driver.js';
export { chooseSqliteEngine, type SqliteConnection, type SqliteEngineName, type SqliteStatement } from './engine.js';

function engineParam(url: StowageUrl): SqliteEngineName | undefined {
  return url.params.has('engine') ? enumParam(url, 'engine', ['better-sqlite3', 'node-sqlite'] as const, 'better-sqlite3') : undefined;
}

/**
 * `sqlite:///abs/path/documents.db` (or `sqlite://` for `<dataDir>/documents.db`, or a relative path under
 * the data folder). Parameters: `synchronous` (`full`, the default: every commit fsynced; or `normal`),
 * `busyTimeoutMs` (default 5000), `engine` (`better-sqlite3` or `node-sqlite`; default better-sqlite3 when it is
 * installed, else Node's built-in `node:sqlite` on Node 22.16 or later).
 */
export const sqliteDocumentsScheme: SchemeDefinition<'documents'> = {
  port: 'documents',
  scheme: 'sqlite',
  params: ['synchronous', 'busyTimeoutMs', 'engine'],
  preflight: (url) => void chooseSqliteEngine(engineParam(url)),
  localPath: (url, dataDir) => standalonePath(url, dataDir, 'documents.db'),
  open: async (url, context) => {
    const file = standalonePath(url, context.dataDir, 'documents.db');
    // SQLite creates a database 0644 (and its -wal and -shm files with the database's mode): created first, 0600.
    await ensurePrivateFile(file);
    return new SqliteDocumentsDriver({
      file,
      synchronous: enumParam(url, 'synchronous', ['full', 'normal'] as const, 'full'),
      busyTimeoutMs: intParam(url, 'busyTimeoutMs', 5000, { min: 0, max: 600_000 }),
      engine: chooseSqliteEngine(engineParam(url)),
    });
  },
};
