/**
 * `mongodb://` documents with the official driver: one MongoDB collection per Stowage collection, documents
 * stored as `{ _id, v: version, d: data }`; versions through conditional updates; filters and sorts through
 * `mongo-query.ts`; unique indexes partial over present, non-null values; migrations under a lock document
 * with a lease.
 *
 * FerretDB (the MongoDB wire protocol over SQLite or PostgreSQL, which the test suite runs against) differs
 * where {@link ferretDbDifferences} says; that is the one place that knows about it.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { MongoBulkWriteError, MongoClient, MongoServerError, type Collection as MongoCollection, type Db, type Document, type MongoClientOptions } from 'mongodb';
import { StowageError } from '../../ports/errors.js';
import type { JsonObject } from '../../ports/common.js';
import type { CollectionDriver, DocumentRecord, DocumentsCapability, DocumentsDriver, DriverFind, Filter, IndexSpec } from '../../ports/documents.js';
import { sameIndex } from '../../driver/indexes.js';
import { indexDefinitionConflict, redact, safeCause, uniqueIndexBuildConflict, uniqueIndexConflict, versionConflict } from '../../driver/errors.js';
import { quote } from '../../driver/validate.js';
import { comparePosition, documentComparator, matchesFilter, sortValues } from '../../driver/index.js';
import { matchQuery, sortStages } from './mongo-query.js';
import { sleep } from '../../driver/sleep.js';

/** Options of {@link MongoDocumentsDriver}. */
export interface MongoDocumentsOptions {
  /** A MongoDB connection string (credentials included, never logged). */
  url: string;
  /** The database. */
  database: string;
  /** Prepended to collection names, so several stores can share a database. */
  collectionPrefix?: string;
  /** Driver options. */
  client?: MongoClientOptions;
  /** Strings to remove from error messages (the password). */
  secrets?: readonly string[];
}

interface StoredDocument {
  _id: string;
  v: number;
  d: JsonObject;
}

const DUPLICATE_KEY = 11000;
const LOCK_LEASE_MS = 30_000;
const LOCK_POLL_MS = 100;
// Types a unique index constrains: everything but null (and missing, which `$type` never matches).
const CONSTRAINED_TYPES = ['number', 'string', 'bool', 'object', 'array'];

/** How the server differs from MongoDB in what this driver relies on. */
interface ServerDifferences {
  /**
   * Whether the server evaluates aggregation expressions (`$expr` with `$getField`, `$let`, `$switch`,
   * `$filter`…), in which the exact filters and sort orders are written. When it does not, documents are
   * read and then filtered and ordered here with the reference evaluator.
   */
  readonly expressions: boolean;
  /** Whether `findOneAndUpdate` takes a projection (else the whole document comes back). */
  readonly updateProjection: boolean;
  /**
   * Whether indexes may be partial. A unique index without `partialFilterExpression` constrains missing
   * and null values too, which MongoDB's partial index leaves free.
   */
  readonly partialIndexes: boolean;
}

const MONGODB: ServerDifferences = { expressions: true, updateProjection: true, partialIndexes: true };

/**
 * FerretDB's known differences from MongoDB, found by running the documents contract against FerretDB
 * v1.24 (README, "Tested against"): of the aggregation expressions it implements only `$type` and `$sum`
 * (a `$match` on `$expr` with `$and` is "not implemented yet"), so every find and count is answered from a
 * full read of the collection — correct, but a scan: fine for tests, not for large collections;
 * `findAndModify` with `fields` and indexes with `partialFilterExpression` are "not implemented yet"; a
 * unique index broken by an update or by `createIndexes` is reported as SQLite's own error, not E11000
 * ({@link FERRETDB_UNIQUE_FAILURE}). Its other gaps (no nested arrays; unique indexes over missing or null
 * values; conditional updates not atomic) are listed where the contract suite runs against it
 * (`test/contract/mongo-documents.test.ts`).
 */
const FERRETDB: ServerDifferences = { expressions: false, updateProjection: false, partialIndexes: false };

/** How FerretDB on SQLite words a broken unique index where MongoDB says E11000. */
const FERRETDB_UNIQUE_FAILURE = /UNIQUE constraint failed: index '/;

/** The differences of the server that answered `buildInfo` (FerretDB adds `ferretdbVersion` to it). */
export function ferretDbDifferences(buildInfo: Document): ServerDifferences {
  return typeof buildInfo.ferretdbVersion === 'string' ? FERRETDB : MONGODB;
}

function isDuplicate(err: unknown): err is MongoServerError {
  return err instanceof MongoServerError && (err.code === DUPLICATE_KEY || FERRETDB_UNIQUE_FAILURE.test(err.message));
}

class MongoCollectionDriver implements CollectionDriver {
  readonly #name: string;
  readonly #col: MongoCollection<StoredDocument>;
  readonly #server: ServerDifferences;

  constructor(name: string, col: MongoCollection<StoredDocument>, server: ServerDifferences) {
    this.#name = name;
    this.#col = col;
    this.#server = server;
  }

  #record(doc: StoredDocument): DocumentRecord {
    return { id: doc._id, version: doc.v, data: doc.d };
  }

  #versionConflict(id: string, actual: number, expected: number): StowageError {
    return versionConflict(this.#name, id, actual, expected);
  }

  /**
   * ALREADY_EXISTS for a duplicate id, CONFLICT naming the index otherwise. FerretDB names neither key nor
   * index in its E11000 ("duplicate key error collection: …", which it gives only for inserts) and names
   * its SQLite index in {@link FERRETDB_UNIQUE_FAILURE}: then the index is looked up by name, and failing
   * that, the server is asked whether one of the ids exists; if none does, a collection with a single
   * unique index names it, and one with several gives `unknown`.
   */
  async #duplicate(err: MongoServerError, ids: readonly string[], onId: () => StowageError): Promise<StowageError> {
    const pattern = (err as MongoServerError & { keyPattern?: Record<string, unknown> }).keyPattern;
    let index = /index: (\S+)/.exec(err.message)?.[1];
    if ((pattern !== undefined && Object.keys(pattern).join() === '_id') || index === '_id_') return onId();
    if (pattern === undefined && index === undefined) {
      const declared = await this.indexes();
      index = declared.find((i) => err.message.includes(`_${i.name}'`))?.name;
      if (index === undefined && (await this.#col.countDocuments({ _id: { $in: [...ids] } }, { limit: 1 })) > 0) return onId();
      // Not the id, so a declared unique index: when there is one, it is the one.
      const unique = declared.filter((i) => i.unique);
      if (index === undefined && unique.length === 1) index = unique[0]?.name;
    }
    const name = index ?? 'unknown';
    return uniqueIndexConflict(this.#name, ids.length === 1 ? (ids[0] ?? '') : '', name);
  }

  async #currentVersion(id: string): Promise<number> {
    const doc = await this.#col.findOne({ _id: id }, { projection: { v: 1 } });
    return doc?.v ?? 0;
  }

  async insert(id: string, data: JsonObject): Promise<DocumentRecord> {
    try {
      await this.#col.insertOne({ _id: id, v: 1, d: data });
    } catch (err) {
      if (isDuplicate(err)) throw await this.#duplicate(err, [id], () => new StowageError('ALREADY_EXISTS', `document ${quote(id)} already exists in ${this.#name}`));
      throw err;
    }
    return { id, version: 1, data };
  }

  async insertMany(docs: readonly { id: string; data: JsonObject }[]): Promise<DocumentRecord[]> {
    try {
      await this.#col.insertMany(docs.map((d) => ({ _id: d.id, v: 1, d: d.data })), { ordered: true });
    } catch (err) {
      if (isDuplicate(err)) {
        // An ordered insert stops at the first failure; the documents before it are stored.
        const failed = err instanceof MongoBulkWriteError ? err.writeErrors : undefined;
        const at = (Array.isArray(failed) ? failed[0] : failed)?.index;
        throw await this.#duplicate(
          err,
          at === undefined ? docs.map((d) => d.id) : [docs[at]?.id ?? ''],
          () => new StowageError('ALREADY_EXISTS', `a document of the batch already exists in ${this.#name}`),
        );
      }
      throw err;
    }
    return docs.map(({ id, data }) => ({ id, version: 1, data }));
  }

  async get(id: string): Promise<DocumentRecord | undefined> {
    const doc = await this.#col.findOne({ _id: id });
    return doc === null ? undefined : this.#record(doc);
  }

  async put(id: string, data: JsonObject, ifVersion: number | undefined): Promise<DocumentRecord> {
    if (ifVersion === 0) {
      try {
        await this.#col.insertOne({ _id: id, v: 1, d: data });
        return { id, version: 1, data };
      } catch (err) {
        if (!isDuplicate(err)) throw err;
        const mapped = await this.#duplicate(err, [id], () => this.#versionConflict(id, 1, 0));
        if (mapped.details.index !== undefined) throw mapped;
        throw this.#versionConflict(id, await this.#currentVersion(id), 0);
      }
    }
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const doc = await this.#col.findOneAndUpdate(
          ifVersion === undefined ? { _id: id } : { _id: id, v: ifVersion },
          { $set: { d: data }, $inc: { v: 1 } },
          { upsert: ifVersion === undefined, returnDocument: 'after', ...(this.#server.updateProjection ? { projection: { v: 1 } } : {}) },
        );
        if (doc !== null) return { id, version: doc.v, data };
        throw this.#versionConflict(id, await this.#currentVersion(id), ifVersion ?? 0);
      } catch (err) {
        if (!isDuplicate(err)) throw err;
        const mapped = await this.#duplicate(err, [id], () => this.#versionConflict(id, ifVersion ?? 0, ifVersion ?? 0));
        // Two upserts of a new id race: the loser retries as an update.
        if (ifVersion === undefined && mapped.details.index === undefined) continue;
        throw mapped;
      }
    }
    throw new StowageError('UNAVAILABLE', `document ${quote(id)} in ${this.#name} kept changing; put gave up`);
  }

  async delete(id: string, ifVersion: number | undefined): Promise<boolean> {
    if (ifVersion === 0) {
      const actual = await this.#currentVersion(id);
      if (actual !== 0) throw this.#versionConflict(id, actual, 0);
      return false;
    }
    const result = await this.#col.deleteOne(ifVersion === undefined ? { _id: id } : { _id: id, v: ifVersion });
    if (result.deletedCount === 1) return true;
    if (ifVersion !== undefined) throw this.#versionConflict(id, await this.#currentVersion(id), ifVersion);
    return false;
  }

  /** Every document the filter matches, read whole and checked with the reference evaluator. */
  async #matchingHere(filter: Filter, signal: AbortSignal | undefined): Promise<DocumentRecord[]> {
    const docs = await this.#col.find({}, { signal }).toArray();
    return docs.map((d) => this.#record(d)).filter((r) => matchesFilter(filter, r.id, r.data));
  }

  /**
   * Reads take the call's signal: when the deadline passes or the caller gives up while the server works, the
   * driver closes the connection the read runs on, and the server stops an operation whose client is gone — an
   * expensive query does not go on costing the server after the caller has had its TIMEOUT or CANCELLED.
   */
  async find(query: DriverFind, signal?: AbortSignal): Promise<DocumentRecord[]> {
    if (!this.#server.expressions) {
      const { sort, after } = query;
      let rows = (await this.#matchingHere(query.filter, signal)).sort(documentComparator(sort));
      if (after !== undefined) rows = rows.filter((r) => comparePosition(sort, sortValues(sort, r.id, r.data), r.id, after.values, after.id) > 0);
      return rows.slice(0, query.limit);
    }
    const pipeline: Document[] = [{ $match: matchQuery(query.filter) }, ...sortStages(query), { $limit: query.limit }, { $project: { _id: 1, v: 1, d: 1 } }];
    const docs = await this.#col.aggregate<StoredDocument>(pipeline, { allowDiskUse: true, signal }).toArray();
    return docs.map((d) => this.#record(d));
  }

  async count(filter: Filter, signal?: AbortSignal): Promise<number> {
    if (!this.#server.expressions) return (await this.#matchingHere(filter, signal)).length;
    return this.#col.countDocuments(matchQuery(filter), { signal });
  }

  async ensureIndex(index: Required<IndexSpec>): Promise<void> {
    const existing = (await this.indexes()).find((i) => i.name === index.name);
    if (existing !== undefined) {
      if (sameIndex(existing, index)) return;
      throw indexDefinitionConflict(this.#name, index.name);
    }
    const keys = Object.fromEntries(index.fields.map((f) => [`d.${f}`, 1]));
    try {
      await this.#col.createIndex(keys, {
        name: index.name,
        unique: index.unique,
        ...(index.unique && this.#server.partialIndexes ? { partialFilterExpression: Object.fromEntries(index.fields.map((f) => [`d.${f}`, { $type: CONSTRAINED_TYPES }])) } : {}),
      });
    } catch (err) {
      if (isDuplicate(err)) {
        throw uniqueIndexBuildConflict(this.#name, index.name, index.fields);
      }
      if (err instanceof MongoServerError && (err.code === 85 || err.code === 86)) {
        throw indexDefinitionConflict(this.#name, index.name);
      }
      throw err;
    }
  }

  async indexes(): Promise<Required<IndexSpec>[]> {
    let list: Document[];
    try {
      list = await this.#col.listIndexes().toArray();
    } catch (err) {
      // A collection not yet created has no indexes.
      if (err instanceof MongoServerError && err.code === 26) return [];
      throw err;
    }
    return list
      .filter((i) => i.name !== '_id_')
      .map((i) => ({
        name: String(i.name),
        fields: Object.keys(i.key as Document).map((k) => k.replace(/^d\./, '')),
        unique: i.unique === true,
      }));
  }
}

/** A documents driver over a MongoDB database. */
export class MongoDocumentsDriver implements DocumentsDriver {
  /** `mongodb`. */
  readonly backend = 'mongodb';
  /** `insertMany` is not atomic (MongoDB transactions need a replica set; Stowage does not assume one). */
  readonly capabilities: ReadonlySet<DocumentsCapability> = new Set<DocumentsCapability>();
  /** The client. */
  readonly client: MongoClient;
  readonly #db: Db;
  readonly #prefix: string;
  readonly #secrets: readonly string[];
  readonly #owner = randomUUID();
  #server: Promise<ServerDifferences> | undefined;

  /** Creates the client; it connects on first use. */
  constructor(options: MongoDocumentsOptions) {
    this.client = new MongoClient(options.url, { serverSelectionTimeoutMS: 5000, connectTimeoutMS: 5000, ...options.client });
    this.#db = this.client.db(options.database);
    this.#prefix = options.collectionPrefix ?? '';
    this.#secrets = options.secrets ?? [];
  }

  #meta(name: 'collections' | 'locks'): MongoCollection<Document> {
    return this.#db.collection(`${this.#prefix}stowage_${name}`);
  }

  /** Opens a collection (MongoDB creates it on first write). */
  async collection(name: string): Promise<CollectionDriver> {
    const upsert = (): Promise<unknown> =>
      this.#meta('collections').updateOne({ _id: name as unknown as Document['_id'] }, { $setOnInsert: { migrationVersion: 0 } }, { upsert: true });
    // Two first opens race to insert the same record; the loser's second try finds it there.
    await upsert().catch((err: unknown) => (isDuplicate(err) ? upsert() : Promise.reject(err)));
    return new MongoCollectionDriver(name, this.#db.collection<StoredDocument>(`${this.#prefix}d_${name}`), await this.#differences());
  }

  /** What the server does differently from MongoDB, asked once (a failed question is asked again). */
  #differences(): Promise<ServerDifferences> {
    this.#server ??= this.#db.command({ buildInfo: 1 }).then(ferretDbDifferences, (err: unknown) => {
      this.#server = undefined;
      throw err;
    });
    return this.#server;
  }

  /** Collection names. */
  async collections(): Promise<string[]> {
    const docs = await this.#meta('collections').find({}, { projection: { _id: 1 } }).toArray();
    return docs.map((d) => String(d._id));
  }

  /**
   * Holds the lock `name`: a document in `stowage_locks` claimed with a conditional upsert (free, expired or
   * already ours), renewed while `fn` runs, deleted after; a crashed holder's lease expires.
   */
  async withLock<R>(name: string, fn: () => Promise<R>, signal: AbortSignal): Promise<R> {
    const locks = this.#meta('locks');
    const id = name as unknown as Document['_id'];
    for (;;) {
      signal.throwIfAborted();
      try {
        await locks.updateOne(
          { _id: id, $or: [{ expires: { $lt: new Date() } }, { owner: this.#owner }] },
          { $set: { owner: this.#owner, expires: new Date(Date.now() + LOCK_LEASE_MS) } },
          { upsert: true },
        );
        break;
      } catch (err) {
        if (!isDuplicate(err)) throw err;
        await sleep(LOCK_POLL_MS, signal);
      }
    }
    const renew = setInterval(() => {
      locks.updateOne({ _id: id, owner: this.#owner }, { $set: { expires: new Date(Date.now() + LOCK_LEASE_MS) } }).catch(() => undefined);
    }, LOCK_LEASE_MS / 3);
    try {
      return await fn();
    } finally {
      clearInterval(renew);
      await locks.deleteOne({ _id: id, owner: this.#owner }).catch(() => undefined);
    }
  }

  /** The highest migration version applied to a collection. */
  async migrationVersion(collection: string): Promise<number> {
    const doc = await this.#meta('collections').findOne({ _id: collection as unknown as Document['_id'] });
    return typeof doc?.migrationVersion === 'number' ? doc.migrationVersion : 0;
  }

  /** Records a migration version. */
  async setMigrationVersion(collection: string, version: number): Promise<void> {
    await this.#meta('collections').updateOne({ _id: collection as unknown as Document['_id'] }, { $set: { migrationVersion: version } }, { upsert: true });
  }

  /** `buildInfo`. */
  async ping(): ReturnType<DocumentsDriver['ping']> {
    const info = await this.#db.command({ buildInfo: 1 });
    return { serverVersion: typeof info.version === 'string' ? info.version : undefined };
  }

  /** Closes the client. */
  async close(): Promise<void> {
    await this.client.close();
  }

  /** Classifies driver errors, with credentials removed. */
  mapError(err: unknown): StowageError | undefined {
    const name = (err as { name?: unknown } | null)?.name;
    if (typeof name !== 'string' || !name.startsWith('Mongo')) return undefined;
    const cause = safeCause(err, this.#secrets);
    const message = `mongodb: ${redact(cause?.message ?? name, [...this.#secrets])}`;
    const code = (err as { code?: unknown }).code;
    if (name === 'MongoServerSelectionError' || name === 'MongoNetworkError' || name === 'MongoNetworkTimeoutError' || name === 'MongoTopologyClosedError') {
      return new StowageError('UNAVAILABLE', message, { cause });
    }
    if (code === 13 || code === 18 || name === 'MongoAuthError') return new StowageError('PERMISSION_DENIED', message, { cause });
    if (code === 10334 || code === 17419) return new StowageError('RESOURCE_EXHAUSTED', message, { cause });
    return undefined;
  }

  /** The MongoClient. */
  native(): MongoClient {
    return this.client;
  }
}
