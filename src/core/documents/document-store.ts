/**
 * The documents port over any {@link DocumentsDriver}: validation of names, ids, data, filters, sorts and
 * cursors; patch as read-merge-compare-and-set; declared indexes and migrations on open; the generic
 * `insertMany`; deadlines, cancellation and the closed state through {@link PortRuntime}.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { CallOptions, HealthReport, JsonObject, JsonValue } from '../../ports/common.js';
import type {
  Collection,
  CollectionDriver,
  CollectionOptions,
  DocumentRecord,
  DocumentStore,
  DocumentsCapability,
  DocumentsDriver,
  Filter,
  FindOptions,
  FindPage,
  IndexSpec,
  Migration,
  VersionedWriteOptions,
} from '../../ports/documents.js';
import { PortRuntime, type RuntimeOptions } from '../runtime.js';
import { MAX_JSON_DEPTH, quote, serializeJson, validateFlatKey, validateOptionalRevision, validatePositiveInt } from '../../driver/validate.js';
import { ID_PATH, validateFilter, validatePath } from './filter.js';
import { decodeCursor, encodeCursor, queryFingerprint, validateSort } from './sort.js';
import { uuidv7 } from './uuidv7.js';
import { invalid, versionConflict } from '../../driver/errors.js';

/** The default largest serialised document: 1 MiB. */
export const DEFAULT_MAX_DOCUMENT_BYTES = 1024 * 1024;
/** The longest document id, in UTF-8 bytes. */
export const MAX_DOCUMENT_ID_BYTES = 255;
/** The default page size of `find`. */
export const DEFAULT_FIND_LIMIT = 100;
/** The largest page size of `find`. */
export const MAX_FIND_LIMIT = 10_000;
/** How often `patch` retries after a concurrent write when the caller gave no `ifVersion`. */
const PATCH_ATTEMPTS = 50;

/**
 * The most indexes a collection may declare: MongoDB allows 64 per collection and MySQL 64 per table, one of
 * them the id's, so 63 is what every adapter can hold.
 */
export const MAX_INDEXES = 63;
/** The most migrations a collection may declare (squash old ones into one that brings data up to date). */
export const MAX_MIGRATIONS = 1000;

const COLLECTION_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const INDEX_NAME = /^[A-Za-z0-9_]{1,64}$/;

/** Options of {@link createDocumentStore}. */
export interface DocumentStoreOptions extends RuntimeOptions {
  /**
   * The largest serialised document accepted, in bytes; larger documents are RESOURCE_EXHAUSTED.
   *
   * @default 1048576
   */
  maxDocumentBytes?: number;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Checks a collection name: 1–64 letters, digits and `_`, starting with a letter. */
export function validateCollectionName(name: unknown): string {
  if (typeof name !== 'string' || !COLLECTION_NAME.test(name)) {
    throw invalid(
      `collection name ${typeof name === 'string' ? quote(name) : typeof name} must be 1 to 64 letters, digits and "_", starting with a letter`,
    );
  }
  return name;
}

/** Resolves on the event loop's next turn, after pending timers and I/O. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The error for a name that differs only by case from an existing one. Names are compared exactly, but two
 * that differ only by case may not live side by side: SQLite table names and MySQL's metadata ignore case,
 * and a store must mean the same on every adapter (so that `stowage migrate` can carry it across).
 */
function caseTwin(what: string, name: string, existing: string): StowageError {
  return new StowageError('ALREADY_EXISTS', `${what} ${quote(name)} differs only by case from the existing ${quote(existing)} (names are unique regardless of case)`, {
    details: { name, existing },
  });
}

/** Checks a document id: a non-empty string of at most 255 UTF-8 bytes without control characters. */
export function validateDocumentId(id: unknown): string {
  return validateFlatKey(id, 'document id', MAX_DOCUMENT_ID_BYTES);
}

/** Whether every key in `value` is one a filter can address (the rule {@link checkKeys} words). */
function keysAddressable(value: JsonValue): boolean {
  if (Array.isArray(value)) {
    for (const v of value) if (!keysAddressable(v)) return false;
    return true;
  }
  if (typeof value !== 'object' || value === null) return true;
  for (const key in value) {
    if (key.startsWith('$') || key.startsWith('-') || key.includes('.') || key.includes('\u0000')) return false;
    if (!keysAddressable(value[key] as JsonValue)) return false;
  }
  return true;
}

// Keys that a filter could not address are refused: `$…` reads as an operator, `.` as a path step, `-…`
// is invisible to MariaDB's JSON paths.
// Inserts are the hot path: the keys are checked without building paths, and walked again with paths only
// to word the error.
function checkKeys(value: JsonValue, path: string): void {
  if (keysAddressable(value)) return;
  checkKeysAt(value, path);
}

function checkKeysAt(value: JsonValue, path: string): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkKeysAt(v, `${path}[${i}]`));
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  for (const [key, child] of Object.entries(value)) {
    if (key.startsWith('$')) throw invalid(`document key ${quote(key)} at ${path} must not start with "$"`);
    // MariaDB cannot address a key starting with "-" in any JSON path form (`$."-1"` reads as missing).
    if (key.startsWith('-')) throw invalid(`document key ${quote(key)} at ${path} must not start with "-"`);
    if (key.includes('.')) throw invalid(`document key ${quote(key)} at ${path} must not contain "."`);
    if (key.includes('\u0000')) throw invalid(`document key ${quote(key)} at ${path} must not contain NUL`);
    checkKeysAt(child, `${path}.${key}`);
  }
}

/**
 * Checks that document data is a plain JSON object and returns its JSON text: the text a driver that stores
 * text receives, and that {@link parseDocument} turns into the copy every driver receives.
 */
function serializeDocument(data: unknown, what: string): string {
  if (!isPlainObject(data)) throw invalid(`${what} must be a plain JSON object`);
  return serializeJson(data, Number.MAX_SAFE_INTEGER, what);
}

/**
 * Returns a private deep copy of a document from its JSON text, after the checks that follow serialisation:
 * addressable keys, no top-level `_id`, at most `maxBytes`.
 */
function parseDocument(json: string, maxBytes: number, what: string): JsonObject {
  return checkDocument(JSON.parse(json) as JsonObject, json, maxBytes, what, true);
}

/** The checks of a document's copy and text: no top-level `_id`, addressable keys (unless `keys` is false), size. */
function checkDocument(copy: JsonObject, json: string, maxBytes: number, what: string, keys: boolean): JsonObject {
  if (Object.prototype.hasOwnProperty.call(copy, ID_PATH)) throw invalid(`${what} must not have a top-level "_id" key (the id is separate)`);
  if (keys) checkKeys(copy, what);
  // A UTF-16 code unit is at most 3 UTF-8 bytes: short text needs no count.
  if (json.length * 3 > maxBytes) {
    const bytes = Buffer.byteLength(json, 'utf8');
    if (bytes > maxBytes) {
      throw new StowageError('RESOURCE_EXHAUSTED', `${what} is ${bytes} bytes serialised; the limit is ${maxBytes}`, {
        details: { limit: maxBytes, size: bytes },
      });
    }
  }
  return copy;
}

/** What {@link copyDocumentValue} returns for a value it refuses. */
const REFUSED: unique symbol = Symbol('refused');

/**
 * A deep copy of `value` if it is plain JSON whose keys are all addressable (the rules of `serializeJson`
 * and {@link checkKeys}), made in one walk that reads every property once; {@link REFUSED} otherwise. `-0`
 * becomes `0`, as in JSON.
 */
function copyDocumentValue(value: unknown, depth: number, ancestors: object[]): JsonValue | typeof REFUSED {
  switch (typeof value) {
    case 'string':
      return (value as string & { isWellFormed(): boolean }).isWellFormed() ? value : REFUSED;
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value + 0 : REFUSED;
    case 'object': {
      if (value === null) return null;
      if (depth >= MAX_JSON_DEPTH || ancestors.includes(value)) return REFUSED;
      ancestors.push(value);
      let copy: JsonValue[] | JsonObject | typeof REFUSED;
      if (Array.isArray(value)) {
        const items: JsonValue[] = [];
        copy = items;
        for (let i = 0; i < value.length; i++) {
          const item = copyDocumentValue(value[i], depth + 1, ancestors);
          if (item === REFUSED) {
            copy = REFUSED;
            break;
          }
          items.push(item);
        }
      } else {
        const proto: unknown = Object.getPrototypeOf(value);
        const fields: JsonObject = {};
        copy = (proto !== Object.prototype && proto !== null) || Object.getOwnPropertySymbols(value).length > 0 ? REFUSED : fields;
        for (const key in value) {
          if (copy === REFUSED) break;
          if (!Object.hasOwn(value, key)) continue;
          const field: JsonValue | typeof REFUSED = keyAddressable(key) ? copyDocumentValue((value as Record<string, unknown>)[key], depth + 1, ancestors) : REFUSED;
          if (field === REFUSED) copy = REFUSED;
          // "__proto__" is an ordinary key in JSON; assigned, it would set the copy's prototype.
          else if (key === '__proto__') Object.defineProperty(fields, key, { value: field, enumerable: true, writable: true, configurable: true });
          else fields[key] = field;
        }
      }
      ancestors.pop();
      return copy;
    }
    default:
      return REFUSED;
  }
}

/** Whether a document key is one a filter can address and JSON can hold (the rules {@link checkKeysAt} words). */
function keyAddressable(key: string): boolean {
  return !key.startsWith('$') && !key.startsWith('-') && !key.includes('.') && !key.includes('\u0000') && (key as string & { isWellFormed(): boolean }).isWellFormed();
}

/**
 * Checks document data and returns a private deep copy and its JSON text: the copy every driver receives,
 * and the text a driver that stores text receives. Refuses what is not plain JSON, keys a filter cannot
 * address, a top-level `_id` and a text over `maxBytes`.
 *
 * Inserts are the hot path. Valid data is copied in one walk that checks as it goes, and the text is made
 * from the copy, so the two cannot differ: 1 to 1.5 µs less per call than serialising, parsing the text back
 * and walking the copy for its keys (8 fields). What the walk refuses goes the slow way, which words the
 * error.
 */
function prepareDocument(data: unknown, maxBytes: number, what: string): { data: JsonObject; json: string } {
  const copy = isPlainObject(data) ? copyDocumentValue(data, 0, []) : REFUSED;
  if (copy !== REFUSED) {
    const json = JSON.stringify(copy);
    return { data: checkDocument(copy as JsonObject, json, maxBytes, what, false), json };
  }
  // Throws the error with its path. (A getter that answered differently the second time gets here without
  // one; what it answered then is checked and stored.)
  const json = serializeDocument(data, what);
  return { data: parseDocument(json, maxBytes, what), json };
}

/** RFC 7386 JSON merge patch: objects merge recursively, `null` removes, anything else replaces. */
export function mergePatch(target: JsonValue | undefined, patch: JsonValue): JsonValue {
  if (!isPlainObject(patch)) return patch;
  const result: JsonObject = isPlainObject(target) ? { ...(target as JsonObject) } : {};
  for (const [key, value] of Object.entries(patch as JsonObject)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

function defaultIndexName(fields: readonly string[], unique: boolean): string {
  const base = `ix_${fields.map((f) => f.replace(/[^A-Za-z0-9_]/g, '_')).join('__')}${unique ? '_u' : ''}`;
  return base.length <= 64 ? base : `${base.slice(0, 55)}_${hashOf(base)}`;
}

function hashOf(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** Checks index specs and fills in names and `unique`. */
export function validateIndexes(indexes: unknown): Required<IndexSpec>[] {
  if (indexes === undefined) return [];
  if (!Array.isArray(indexes)) throw invalid('indexes must be an array of index specs');
  if (indexes.length > MAX_INDEXES) throw invalid(`a collection may declare at most ${MAX_INDEXES} indexes, got ${indexes.length}`);
  const byName = new Map<string, Required<IndexSpec>>();
  for (const [i, spec] of indexes.entries()) {
    if (!isPlainObject(spec)) throw invalid(`indexes[${i}] must be an object`);
    const { fields: given, unique = false, name } = spec as Partial<IndexSpec>;
    if (!Array.isArray(given) || given.length === 0 || given.length > 16) {
      throw invalid(`indexes[${i}].fields must be an array of 1 to 16 paths`);
    }
    // One read of the caller's array: what is checked below is what the adapter is given.
    const fields: unknown[] = [...(given as unknown[])];
    for (const field of fields) {
      validatePath(field, `indexes[${i}] field`);
      if (field === ID_PATH) throw invalid(`indexes[${i}] indexes "_id", which is always indexed and unique`);
    }
    if (new Set(fields).size !== fields.length) throw invalid(`indexes[${i}] names a field twice`);
    if (typeof unique !== 'boolean') throw invalid(`indexes[${i}].unique must be a boolean`);
    const indexName = name ?? defaultIndexName(fields as string[], unique);
    if (typeof indexName !== 'string' || !INDEX_NAME.test(indexName)) {
      throw invalid(`index name ${quote(String(indexName))} must be 1 to 64 letters, digits and "_"`);
    }
    if (byName.has(indexName)) throw invalid(`index name ${quote(indexName)} is declared twice`);
    const twin = [...byName.keys()].find((other) => other.toLowerCase() === indexName.toLowerCase());
    if (twin !== undefined) throw invalid(`index names ${quote(twin)} and ${quote(indexName)} differ only by case (index names are unique regardless of case)`);
    byName.set(indexName, { name: indexName, fields: fields as string[], unique });
  }
  return [...byName.values()];
}

function validateMigrations(migrations: unknown): Migration[] {
  if (migrations === undefined) return [];
  if (!Array.isArray(migrations)) throw invalid('migrations must be an array');
  if (migrations.length > MAX_MIGRATIONS) throw invalid(`a collection may declare at most ${MAX_MIGRATIONS} migrations, got ${migrations.length}`);
  const seen = new Set<number>();
  for (const [i, m] of migrations.entries()) {
    if (typeof m !== 'object' || m === null) throw invalid(`migrations[${i}] must be an object`);
    const { version, up } = m as Partial<Migration>;
    validatePositiveInt(version, `migrations[${i}].version`);
    if (typeof up !== 'function') throw invalid(`migrations[${i}].up must be a function`);
    if (seen.has(version as number)) throw invalid(`migration version ${String(version)} is declared twice`);
    seen.add(version as number);
  }
  return [...(migrations as Migration[])].sort((a, b) => a.version - b.version);
}

function validateLimit(limit: unknown): number {
  if (limit === undefined) return DEFAULT_FIND_LIMIT;
  return validatePositiveInt(limit, 'limit', { min: 1, max: MAX_FIND_LIMIT });
}

function isRetryableConflict(err: unknown): boolean {
  // A unique-index CONFLICT names the index; retrying the same merge would fail the same way.
  return StowageError.is(err, 'CONFLICT') && err.details.index === undefined;
}

class CoreCollection<T extends JsonObject> implements Collection<T> {
  readonly name: string;
  readonly #runtime: PortRuntime;
  readonly #driver: CollectionDriver;
  readonly #maxBytes: number;
  /** Names a document of this collection in messages. */
  readonly #what: string;

  constructor(name: string, runtime: PortRuntime, driver: CollectionDriver, maxBytes: number) {
    this.name = name;
    this.#what = `document in ${name}`;
    this.#runtime = runtime;
    this.#driver = driver;
    this.#maxBytes = maxBytes;
  }

  insert(data: T, options?: CallOptions & { id?: string }): Promise<DocumentRecord<T>> {
    // Not async: a validation error thrown here becomes the call's rejection all the same, and the driver's
    // promise is passed on without another wrapper (this is the hot path).
    return this.#runtime.run('insert', options, (signal) => {
      const id = options?.id === undefined ? uuidv7() : validateDocumentId(options.id);
      const doc = prepareDocument(data, this.#maxBytes, this.#what);
      return this.#driver.insert(id, doc.data, signal, doc.json) as Promise<DocumentRecord<T>>;
    });
  }

  insertMany(docs: readonly T[], options?: CallOptions): Promise<DocumentRecord<T>[]> {
    return this.#runtime.run('insertMany', options, async (signal) => {
      if (!Array.isArray(docs)) throw invalid('insertMany takes an array of documents');
      const clean = docs.map((d, i) => {
        return { id: uuidv7(), ...prepareDocument(d, this.#maxBytes, `document [${i}] in ${this.name}`) };
      });
      if (clean.length === 0) return [];
      if (this.#driver.insertMany) return (await this.#driver.insertMany(clean, signal)) as DocumentRecord<T>[];
      const out: DocumentRecord<T>[] = [];
      for (const doc of clean) {
        signal.throwIfAborted();
        out.push((await this.#driver.insert(doc.id, doc.data, signal, doc.json)) as DocumentRecord<T>);
      }
      return out;
    });
  }

  get(id: string, options?: CallOptions): Promise<DocumentRecord<T> | undefined> {
    if (this.#driver.getSync !== undefined && !this.#runtime.traced) {
      // A synchronous in-process read: no deadline to keep (it cannot be interrupted) and nothing to drain.
      const getSync = this.#driver.getSync;
      try {
        return Promise.resolve(this.#runtime.runSync('get', options, () => getSync.call(this.#driver, validateDocumentId(id))) as DocumentRecord<T> | undefined);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return this.#runtime.run('get', options, (signal) => {
      validateDocumentId(id);
      return this.#driver.get(id, signal) as Promise<DocumentRecord<T> | undefined>;
    });
  }

  put(id: string, data: T, options?: VersionedWriteOptions): Promise<DocumentRecord<T>> {
    return this.#runtime.run('put', options, async (signal) => {
      validateDocumentId(id);
      const ifVersion = validateOptionalRevision(options?.ifVersion, 'ifVersion');
      const doc = prepareDocument(data, this.#maxBytes, this.#what);
      return (await this.#driver.put(id, doc.data, ifVersion, signal, doc.json)) as DocumentRecord<T>;
    });
  }

  patch(id: string, changes: JsonObject, options?: VersionedWriteOptions): Promise<DocumentRecord<T>> {
    return this.#runtime.run('patch', options, async (signal) => {
      validateDocumentId(id);
      const ifVersion = validateOptionalRevision(options?.ifVersion, 'ifVersion');
      if (!isPlainObject(changes)) throw invalid('patch changes must be a plain JSON object');
      const text = serializeJson(changes, Number.MAX_SAFE_INTEGER, 'patch');
      const patch = JSON.parse(text) as JsonObject;
      if (Object.prototype.hasOwnProperty.call(patch, ID_PATH)) throw invalid('patch must not change "_id"');
      checkKeys(patch, 'patch');
      for (let attempt = 1; ; attempt++) {
        const current = await this.#driver.get(id, signal);
        if (current === undefined) {
          if (ifVersion !== undefined && ifVersion !== 0) {
            throw new StowageError('CONFLICT', `document ${quote(id)} in ${this.name} does not exist (expected version ${ifVersion})`);
          }
          throw new StowageError('NOT_FOUND', `document ${quote(id)} in ${this.name} does not exist`);
        }
        if (ifVersion !== undefined && ifVersion !== current.version) {
          throw versionConflict(this.name, id, current.version, ifVersion);
        }
        const merged = prepareDocument(mergePatch(current.data, patch), this.#maxBytes, this.#what);
        try {
          return (await this.#driver.put(id, merged.data, current.version, signal, merged.json)) as DocumentRecord<T>;
        } catch (err) {
          const mapped = this.#runtime.mapError(err, 'patch');
          if (ifVersion !== undefined || attempt >= PATCH_ATTEMPTS || !isRetryableConflict(mapped)) throw mapped;
        }
      }
    });
  }

  delete(id: string, options?: VersionedWriteOptions): Promise<boolean> {
    return this.#runtime.run('delete', options, async (signal) => {
      validateDocumentId(id);
      const ifVersion = validateOptionalRevision(options?.ifVersion, 'ifVersion');
      return this.#driver.delete(id, ifVersion, signal);
    });
  }

  find(filter?: Filter, options?: FindOptions): Promise<FindPage<T>> {
    return this.#runtime.run('find', options, async (signal) => {
      const clean = validateFilter(filter);
      const sort = validateSort(options?.sort);
      const limit = validateLimit(options?.limit);
      // The fingerprint (a hash of the query) is needed only to check or make a cursor.
      let fingerprint = options?.after === undefined ? undefined : queryFingerprint(clean, sort);
      const after = fingerprint === undefined ? undefined : decodeCursor(options?.after, fingerprint, sort);
      // One more than asked tells whether another page exists, so the last page has no `next`.
      const rows = await this.#driver.find({ filter: clean, sort, limit: limit + 1, after }, signal);
      if (rows.length <= limit) return { items: rows as DocumentRecord<T>[], next: undefined };
      const items = rows.slice(0, limit) as DocumentRecord<T>[];
      const last = items.at(-1);
      fingerprint ??= queryFingerprint(clean, sort);
      const next = last !== undefined ? encodeCursor(fingerprint, sort, last.id, last.data) : undefined;
      return { items, next };
    });
  }

  count(filter?: Filter, options?: CallOptions): Promise<number> {
    return this.#runtime.run('count', options, async (signal) => this.#driver.count(validateFilter(filter), signal));
  }

  indexes(options?: CallOptions): Promise<IndexSpec[]> {
    return this.#runtime.run('indexes', options, (signal) => this.#driver.indexes(signal));
  }
}

class CoreDocumentStore implements DocumentStore {
  readonly #driver: DocumentsDriver;
  readonly #runtime: PortRuntime;
  readonly maxDocumentBytes: number;

  constructor(driver: DocumentsDriver, options: DocumentStoreOptions) {
    this.#driver = driver;
    this.#runtime = new PortRuntime('documents', driver, options);
    this.maxDocumentBytes =
      options.maxDocumentBytes === undefined
        ? DEFAULT_MAX_DOCUMENT_BYTES
        : validatePositiveInt(options.maxDocumentBytes, 'maxDocumentBytes', { min: 64 });
  }

  get backend(): string {
    return this.#runtime.backend;
  }

  get closed(): boolean {
    return this.#runtime.closed;
  }

  get capabilities(): ReadonlySet<DocumentsCapability> {
    return this.#driver.capabilities;
  }

  collection<T extends JsonObject = JsonObject>(name: string, options?: CollectionOptions): Promise<Collection<T>> {
    return this.#runtime.run('collection', options, async (signal) => {
      validateCollectionName(name);
      const indexes = validateIndexes(options?.indexes);
      const migrations = validateMigrations(options?.migrations);
      // Only a new name is checked: a store made before this rule may hold both spellings on an adapter that
      // keeps them apart (mem://, MongoDB); adapters that would merge them refuse on their own.
      const names = await this.#driver.collections(signal);
      const twin = names.includes(name) ? undefined : names.find((other) => other.toLowerCase() === name.toLowerCase());
      if (twin !== undefined) throw caseTwin('collection', name, twin);
      const driver = await this.#driver.collection(name, signal);
      if (indexes.length > 0) {
        const existing = await driver.indexes(signal);
        for (const index of indexes) {
          const other = existing.some((e) => e.name === index.name)
            ? undefined
            : existing.find((e) => e.name.toLowerCase() === index.name.toLowerCase());
          if (other !== undefined) throw caseTwin(`index of ${quote(name)}`, index.name, other.name);
        }
      }
      for (const index of indexes) {
        // A driver may build an index synchronously (SQLite): let timers, the deadline's among them, run.
        await nextTurn();
        signal.throwIfAborted();
        await driver.ensureIndex(index, signal);
      }
      const collection = new CoreCollection<T>(name, this.#runtime, driver, this.maxDocumentBytes);
      if (migrations.length > 0) await this.#migrate(name, migrations, collection as unknown as Collection, signal);
      return collection;
    });
  }

  async #migrate(name: string, migrations: readonly Migration[], collection: Collection, signal: AbortSignal): Promise<void> {
    const highest = migrations.at(-1)?.version ?? 0;
    // Cheap check first so that a node opening an up-to-date collection never waits for the lock.
    if ((await this.#driver.migrationVersion(name, signal)) >= highest) return;
    await this.#driver.withLock(
      `migrate:${name}`,
      async () => {
        let applied = await this.#driver.migrationVersion(name, signal);
        for (const migration of migrations) {
          if (migration.version <= applied) continue;
          await nextTurn();
          signal.throwIfAborted();
          try {
            await migration.up(collection);
          } catch (err) {
            const cause = this.#runtime.mapError(err, 'migrate');
            throw new StowageError(cause.code === 'CANCELLED' || cause.code === 'TIMEOUT' ? cause.code : 'INTERNAL',
              `migration ${migration.version} of collection ${quote(name)} failed: ${cause.message}`, { cause });
          }
          await this.#driver.setMigrationVersion(name, migration.version, signal);
          applied = migration.version;
        }
      },
      signal,
    );
  }

  collections(options?: CallOptions): Promise<string[]> {
    return this.#runtime.run('collections', options, async (signal) => (await this.#driver.collections(signal)).sort());
  }

  health(options?: CallOptions): Promise<HealthReport> {
    return this.#runtime.health(options);
  }

  close(): Promise<void> {
    return this.#runtime.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Creates the documents port over a driver.
 *
 * @example
 * ```ts
 * const store = createDocumentStore(driver);
 * const tasks = await store.collection('tasks', { indexes: [{ fields: ['status'] }] });
 * const { items, next } = await tasks.find({ status: 'open' }, { sort: { priority: -1 }, limit: 50 });
 * ```
 */
export function createDocumentStore(driver: DocumentsDriver, options: DocumentStoreOptions = {}): DocumentStore {
  return new CoreDocumentStore(driver, options);
}
