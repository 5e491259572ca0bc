/**
 * `mongodb://` documents with the official driver: one MongoDB collection per Stowage collection, documents
 * stored as `{ _id, v: version, d: data }`; versions through conditional updates; filters and sorts through
 * `mongo-query.ts`; unique indexes partial over present, non-null values; migrations under a lock document
 * with a lease.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { MongoClient, MongoServerError, type Collection as MongoCollection, type Db, type Document, type MongoClientOptions } from 'mongodb';
import { StowageError } from '../../ports/errors.js';
import type { JsonObject } from '../../ports/common.js';
import type { CollectionDriver, DocumentRecord, DocumentsCapability, DocumentsDriver, DriverFind, Filter, IndexSpec } from '../../ports/documents.js';
import { redact, safeCause } from '../../driver/errors.js';
import { quote } from '../../driver/validate.js';
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

function isDuplicate(err: unknown): err is MongoServerError {
  return err instanceof MongoServerError && err.code === DUPLICATE_KEY;
}

class MongoCollectionDriver implements CollectionDriver {
  readonly #name: string;
  readonly #col: MongoCollection<StoredDocument>;

  constructor(name: string, col: MongoCollection<StoredDocument>) {
    this.#name = name;
    this.#col = col;
  }

  #record(doc: StoredDocument): DocumentRecord {
    return { id: doc._id, version: doc.v, data: doc.d };
  }

  #versionConflict(id: string, actual: number, expected: number): StowageError {
    return new StowageError('CONFLICT', `document ${quote(id)} in ${this.#name} is at version ${actual}, not ${expected}`, {
      details: { currentVersion: actual },
    });
  }

  /** ALREADY_EXISTS for a duplicate id, CONFLICT naming the index otherwise. */
  #duplicate(err: MongoServerError, id: string, onId: () => StowageError): StowageError {
    const pattern = (err as MongoServerError & { keyPattern?: Record<string, unknown> }).keyPattern;
    const index = /index: (\S+)/.exec(err.message)?.[1];
    if ((pattern !== undefined && Object.keys(pattern).join() === '_id') || index === '_id_') return onId();
    return new StowageError('CONFLICT', `document ${quote(id)} in ${this.#name} breaks unique index ${index ?? 'unknown'}`, {
      details: { index: index ?? 'unknown' },
    });
  }

  async #currentVersion(id: string): Promise<number> {
    const doc = await this.#col.findOne({ _id: id }, { projection: { v: 1 } });
    return doc?.v ?? 0;
  }

  async insert(id: string, data: JsonObject): Promise<DocumentRecord> {
    try {
      await this.#col.insertOne({ _id: id, v: 1, d: data });
    } catch (err) {
      if (isDuplicate(err)) throw this.#duplicate(err, id, () => new StowageError('ALREADY_EXISTS', `document ${quote(id)} already exists in ${this.#name}`));
      throw err;
    }
    return { id, version: 1, data };
  }

  async insertMany(docs: readonly { id: string; data: JsonObject }[]): Promise<DocumentRecord[]> {
    try {
      await this.#col.insertMany(docs.map((d) => ({ _id: d.id, v: 1, d: d.data })), { ordered: true });
    } catch (err) {
      if (isDuplicate(err)) throw this.#duplicate(err, '', () => new StowageError('ALREADY_EXISTS', `a document of the batch already exists in ${this.#name}`));
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
        const mapped = this.#duplicate(err, id, () => this.#versionConflict(id, 1, 0));
        if (mapped.details.index !== undefined) throw mapped;
        throw this.#versionConflict(id, await this.#currentVersion(id), 0);
      }
    }
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const doc = await this.#col.findOneAndUpdate(
          ifVersion === undefined ? { _id: id } : { _id: id, v: ifVersion },
          { $set: { d: data }, $inc: { v: 1 } },
          { upsert: ifVersion === undefined, returnDocument: 'after', projection: { v: 1 } },
        );
        if (doc !== null) return { id, version: doc.v, data };
        throw this.#versionConflict(id, await this.#currentVersion(id), ifVersion ?? 0);
      } catch (err) {
        // Two upserts of a new id race: the loser retries as an update.
        if (isDuplicate(err) && ifVersion === undefined && /index: _id_/.test(err.message)) continue;
        if (isDuplicate(err)) throw this.#duplicate(err, id, () => this.#versionConflict(id, ifVersion ?? 0, ifVersion ?? 0));
        throw err;
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

  async find(query: DriverFind): Promise<DocumentRecord[]> {
    const pipeline: Document[] = [{ $match: matchQuery(query.filter) }, ...sortStages(query), { $limit: query.limit }, { $project: { _id: 1, v: 1, d: 1 } }];
    const docs = await this.#col.aggregate<StoredDocument>(pipeline, { allowDiskUse: true }).toArray();
    return docs.map((d) => this.#record(d));
  }

  async count(filter: Filter): Promise<number> {
    return this.#col.countDocuments(matchQuery(filter));
  }

  async ensureIndex(index: Required<IndexSpec>): Promise<void> {
    const existing = (await this.indexes()).find((i) => i.name === index.name);
    if (existing !== undefined) {
      if (existing.unique === index.unique && existing.fields.join('\u0000') === index.fields.join('\u0000')) return;
      throw new StowageError('CONFLICT', `index ${index.name} of ${this.#name} exists with another definition`, { details: { index: index.name } });
    }
    const keys = Object.fromEntries(index.fields.map((f) => [`d.${f}`, 1]));
    try {
      await this.#col.createIndex(keys, {
        name: index.name,
        unique: index.unique,
        ...(index.unique ? { partialFilterExpression: Object.fromEntries(index.fields.map((f) => [`d.${f}`, { $type: CONSTRAINED_TYPES }])) } : {}),
      });
    } catch (err) {
      if (isDuplicate(err)) {
        throw new StowageError('CONFLICT', `cannot create unique index ${index.name} on ${this.#name}: existing documents share values of ${index.fields.join(', ')}`, {
          details: { index: index.name },
        });
      }
      if (err instanceof MongoServerError && (err.code === 85 || err.code === 86)) {
        throw new StowageError('CONFLICT', `index ${index.name} of ${this.#name} exists with another definition`, { details: { index: index.name } });
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
    await this.#meta('collections').updateOne({ _id: name as unknown as Document['_id'] }, { $setOnInsert: { migrationVersion: 0 } }, { upsert: true });
    return new MongoCollectionDriver(name, this.#db.collection<StoredDocument>(`${this.#prefix}d_${name}`));
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
