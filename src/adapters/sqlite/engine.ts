/**
 * The SQLite engines the `sqlite://` adapter runs on, behind one small synchronous interface: better-sqlite3
 * (a native addon, an optional peer dependency) or Node's built-in `node:sqlite` (Node ≥ 22.16 and ≥ 24, where it
 * has every member used here), so that `npm i stowage` alone gives a working standalone profile on those Nodes.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { StowageError } from '../../ports/errors.js';
import { missingClientError } from '../../driver/index.js';

/** Which engine: the `?engine=` values of a `sqlite://` URL. */
export type SqliteEngineName = 'better-sqlite3' | 'node-sqlite';

/** A prepared statement; parameters are whatever the engine binds (strings, numbers, bigints, buffers, null). */
export interface SqliteStatement {
  /** Runs it for its effect. */
  run(...params: unknown[]): void;
  /** The first row, if any. */
  get(...params: unknown[]): unknown;
  /** Every row. */
  all(...params: unknown[]): unknown[];
}

/** An open database. Errors thrown by any member carry SQLite's extended code name as `code` (`SQLITE_CONSTRAINT_UNIQUE`). */
export interface SqliteConnection {
  /** The engine behind it. */
  readonly engine: SqliteEngineName;
  /** Whether the database is open. */
  readonly isOpen: boolean;
  /** Whether a transaction is open (SQLite rolls one back by itself on some I/O errors and a full disk). */
  readonly inTransaction: boolean;
  /** Compiles a statement. */
  prepare(sql: string): SqliteStatement;
  /** Runs one or more statements without results. */
  exec(sql: string): void;
  /** The engine's own handle (a better-sqlite3 `Database` or a `node:sqlite` `DatabaseSync`). */
  readonly native: object;
  /** Closes it. */
  close(): void;
}

/** The members of better-sqlite3 used here. */
interface BetterSqliteDatabase {
  readonly open: boolean;
  readonly inTransaction: boolean;
  prepare(sql: string): { run(...p: unknown[]): unknown; get(...p: unknown[]): unknown; all(...p: unknown[]): unknown[] };
  exec(sql: string): unknown;
  close(): unknown;
}
type BetterSqliteModule = new (file: string) => BetterSqliteDatabase;

/** The members of `node:sqlite` used here. */
interface NodeSqliteDatabase {
  readonly isOpen: boolean;
  readonly isTransaction: boolean;
  prepare(sql: string): { run(...p: unknown[]): unknown; get(...p: unknown[]): unknown; all(...p: unknown[]): unknown[] };
  exec(sql: string): void;
  close(): void;
}
type NodeSqliteModule = { DatabaseSync: new (file: string) => NodeSqliteDatabase };

const require = createRequire(import.meta.url);

function tryRequire<T>(id: string): T | undefined {
  try {
    return require(id) as T;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_UNKNOWN_BUILTIN_MODULE') return undefined;
    throw err;
  }
}

/** `node:sqlite` when this Node has it with `isTransaction` (Node 22.16+, 24+): older builds lack members used here. */
function nodeSqlite(): NodeSqliteModule | undefined {
  if (node === undefined) {
    const mod = tryRequire<NodeSqliteModule>('node:sqlite');
    // The accessors live on each instance, not on the prototype: ask an in-memory database.
    const probe = mod === undefined ? undefined : new mod.DatabaseSync(':memory:');
    node = probe !== undefined && 'isTransaction' in probe && 'isOpen' in probe ? (mod ?? null) : null;
    probe?.close();
  }
  return node ?? undefined;
}
let node: NodeSqliteModule | null | undefined;

let better: BetterSqliteModule | null | undefined;
/** Why an installed better-sqlite3 could not be loaded (its addon built for another Node, typically). */
let betterFailure: string | undefined;
function betterSqlite(): BetterSqliteModule | undefined {
  if (better === undefined) {
    try {
      const mod = tryRequire<BetterSqliteModule>('better-sqlite3');
      // The addon itself loads on first construction: open an in-memory database to know it works here.
      if (mod !== undefined) new mod(':memory:').close();
      better = mod ?? null;
    } catch (err) {
      // An addon compiled for another Node version (ERR_DLOPEN_FAILED) is as good as absent: node:sqlite, when
      // there, opens the same files.
      betterFailure = String((err as { message?: unknown }).message ?? err).split('\n')[0];
      better = null;
    }
  }
  return better ?? undefined;
}

/** The install line's package for better-sqlite3 (the peer dependency's major). */
const BETTER_SQLITE3 = 'better-sqlite3@12';

/**
 * The engine to use: the one asked for, else better-sqlite3 when installed, else `node:sqlite` when this
 * Node has it. Touches nothing on disk, so a profile can be refused before any port is opened.
 *
 * @throws StowageError UNSUPPORTED when the engine asked for (or any engine) is not available here, with the
 *   `npm install` line or the Node version that provides one.
 */
export function chooseSqliteEngine(wanted?: SqliteEngineName): SqliteEngineName {
  const needNode = `node:sqlite needs Node 22.16 or later (this is ${process.version})`;
  if (wanted === 'node-sqlite') {
    if (nodeSqlite() === undefined) throw new StowageError('UNSUPPORTED', `sqlite://?engine=node-sqlite: ${needNode}`, { retryable: false });
    return wanted;
  }
  if (betterSqlite() !== undefined) return 'better-sqlite3';
  if (wanted === undefined && nodeSqlite() !== undefined) return 'node-sqlite';
  const error = missingClientError('sqlite', 'better-sqlite3', [BETTER_SQLITE3]);
  const loadFailure = betterFailure === undefined ? '' : ` (it is installed but does not load: ${betterFailure}; reinstall it for this Node)`;
  const reason = wanted === undefined ? ` (or run on Node 22.16 or later, whose built-in node:sqlite needs nothing installed; this is ${process.version})` : '';
  throw new StowageError('UNSUPPORTED', `${error.message}${loadFailure}${reason}`, { retryable: false, details: error.details });
}

/** SQLite's primary result codes by number, for `node:sqlite` errors (which carry only the number). */
const PRIMARY_CODES: Readonly<Record<number, string>> = {
  1: 'SQLITE_ERROR',
  3: 'SQLITE_PERM',
  5: 'SQLITE_BUSY',
  6: 'SQLITE_LOCKED',
  8: 'SQLITE_READONLY',
  10: 'SQLITE_IOERR',
  11: 'SQLITE_CORRUPT',
  13: 'SQLITE_FULL',
  14: 'SQLITE_CANTOPEN',
  19: 'SQLITE_CONSTRAINT',
  23: 'SQLITE_AUTH',
  26: 'SQLITE_NOTADB',
};
/** The extended codes the adapter tells apart. */
const EXTENDED_CODES: Readonly<Record<number, string>> = { 1555: 'SQLITE_CONSTRAINT_PRIMARYKEY', 2067: 'SQLITE_CONSTRAINT_UNIQUE' };

/** Gives a `node:sqlite` error the `code` better-sqlite3 would give it, so one mapping serves both. */
function withCodeName<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const errcode = (err as { errcode?: unknown }).errcode;
    if (typeof errcode === 'number') {
      const name = EXTENDED_CODES[errcode] ?? PRIMARY_CODES[errcode & 0xff];
      if (name !== undefined) Object.defineProperty(err, 'code', { value: name, configurable: true, writable: true });
    }
    throw err;
  }
}

function fromBetter(db: BetterSqliteDatabase): SqliteConnection {
  return {
    engine: 'better-sqlite3',
    native: db,
    get isOpen() {
      return db.open;
    },
    get inTransaction() {
      return db.inTransaction;
    },
    prepare: (sql) => {
      const s = db.prepare(sql);
      return { run: (...p) => void s.run(...p), get: (...p) => s.get(...p), all: (...p) => s.all(...p) };
    },
    exec: (sql) => void db.exec(sql),
    close: () => void db.close(),
  };
}

function fromNode(db: NodeSqliteDatabase): SqliteConnection {
  return {
    engine: 'node-sqlite',
    native: db,
    get isOpen() {
      return db.isOpen;
    },
    get inTransaction() {
      return db.isTransaction;
    },
    prepare: (sql) => {
      const s = withCodeName(() => db.prepare(sql));
      return {
        run: (...p) => void withCodeName(() => s.run(...p)),
        get: (...p) => withCodeName(() => s.get(...p)),
        all: (...p) => withCodeName(() => s.all(...p)),
      };
    },
    exec: (sql) => withCodeName(() => db.exec(sql)),
    close: () => db.close(),
  };
}

/** Opens (creating) `file` on `engine` (see {@link chooseSqliteEngine}) with a busy timeout. */
export function openSqlite(file: string, engine: SqliteEngineName, busyTimeoutMs: number): SqliteConnection {
  let connection: SqliteConnection;
  if (engine === 'node-sqlite') {
    const mod = nodeSqlite();
    if (mod === undefined) throw new StowageError('UNSUPPORTED', `node:sqlite is not available on Node ${process.version}`);
    connection = fromNode(withCodeName(() => new mod.DatabaseSync(file)));
  } else {
    const Database = betterSqlite();
    if (Database === undefined) throw missingClientError('sqlite', 'better-sqlite3', [BETTER_SQLITE3]);
    connection = fromBetter(new Database(file));
  }
  try {
    connection.exec(`PRAGMA busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
  } catch (err) {
    connection.close();
    throw err;
  }
  return connection;
}
