/**
 * `mem://` documents: collections in process memory, queried with the reference evaluator and ordered with
 * the reference comparator, so this adapter is the specification other adapters are checked against.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { JsonObject } from '../../ports/common.js';
import type {
  CollectionDriver,
  DocumentRecord,
  DocumentsCapability,
  DocumentsDriver,
  DriverFind,
  Filter,
  IndexSpec,
} from '../../ports/documents.js';
import type { SchemeDefinition } from '../../driver/index.js';
import { sameIndex } from '../../driver/indexes.js';
import { indexDefinitionConflict, uniqueIndexBuildConflict, uniqueIndexConflict, versionConflict } from '../../driver/errors.js';
import { matchesFilter, valueAt } from '../../driver/index.js';
import { comparePosition, documentComparator, sortValues } from '../../driver/index.js';
import { quote } from '../../driver/validate.js';

interface StoredDocument {
  version: number;
  data: JsonObject;
}

/**
 * A record of a stored document with a copy of its data. The stored data itself is the copy core gave the
 * write (`CollectionDriver`: core's own, the driver may keep it), so only what leaves is copied.
 */
function record(id: string, doc: StoredDocument): DocumentRecord {
  return { id, version: doc.version, data: structuredClone(doc.data) };
}

/**
 * The key of a document in a unique index, or undefined when the document is not constrained (a field
 * missing or null). Type-tagged so that `1`, `'1'` and `true` differ.
 */
function uniqueKey(index: Required<IndexSpec>, id: string, data: JsonObject): string | undefined {
  const values = index.fields.map((f) => valueAt(id, data, f));
  if (values.some((v) => v === undefined || v === null)) return undefined;
  return JSON.stringify(values.map((v) => [typeof v, v]));
}

class MemoryCollectionDriver implements CollectionDriver {
  readonly #name: string;
  readonly #docs = new Map<string, StoredDocument>();
  readonly #indexes = new Map<string, Required<IndexSpec>>();

  constructor(name: string) {
    this.#name = name;
  }

  #uniqueViolation(id: string, data: JsonObject, batch: ReadonlyMap<string, JsonObject> = new Map()): StowageError | undefined {
    for (const index of this.#indexes.values()) {
      if (!index.unique) continue;
      const key = uniqueKey(index, id, data);
      if (key === undefined) continue;
      const others = [...this.#docs].map(([otherId, doc]) => [otherId, doc.data] as const).concat([...batch]);
      for (const [otherId, otherData] of others) {
        if (otherId !== id && uniqueKey(index, otherId, otherData) === key) {
          return uniqueIndexConflict(this.#name, id, index.name);
        }
      }
    }
    return undefined;
  }

  #checkVersion(id: string, current: StoredDocument | undefined, ifVersion: number | undefined): void {
    if (ifVersion === undefined) return;
    const actual = current?.version ?? 0;
    if (actual !== ifVersion) {
      throw versionConflict(this.#name, id, actual, ifVersion);
    }
  }

  async insert(id: string, data: JsonObject): Promise<DocumentRecord> {
    if (this.#docs.has(id)) throw new StowageError('ALREADY_EXISTS', `document ${quote(id)} already exists in ${this.#name}`);
    const violation = this.#uniqueViolation(id, data);
    if (violation) throw violation;
    const doc = { version: 1, data };
    this.#docs.set(id, doc);
    return record(id, doc);
  }

  async insertMany(docs: readonly { id: string; data: JsonObject }[]): Promise<DocumentRecord[]> {
    // Everything is checked before anything is stored: all or nothing.
    const batch = new Map<string, JsonObject>();
    for (const { id, data } of docs) {
      if (this.#docs.has(id) || batch.has(id)) throw new StowageError('ALREADY_EXISTS', `document ${quote(id)} already exists in ${this.#name}`);
      const violation = this.#uniqueViolation(id, data, batch);
      if (violation) throw violation;
      batch.set(id, data);
    }
    return docs.map(({ id, data }) => {
      const doc = { version: 1, data };
      this.#docs.set(id, doc);
      return record(id, doc);
    });
  }

  async get(id: string): Promise<DocumentRecord | undefined> {
    const doc = this.#docs.get(id);
    return doc === undefined ? undefined : record(id, doc);
  }

  async put(id: string, data: JsonObject, ifVersion: number | undefined): Promise<DocumentRecord> {
    const current = this.#docs.get(id);
    this.#checkVersion(id, current, ifVersion);
    const violation = this.#uniqueViolation(id, data);
    if (violation) throw violation;
    const doc = { version: (current?.version ?? 0) + 1, data };
    this.#docs.set(id, doc);
    return record(id, doc);
  }

  async delete(id: string, ifVersion: number | undefined): Promise<boolean> {
    const current = this.#docs.get(id);
    this.#checkVersion(id, current, ifVersion);
    return this.#docs.delete(id);
  }

  #matching(filter: Filter): DocumentRecord[] {
    const out: DocumentRecord[] = [];
    for (const [id, doc] of this.#docs) if (matchesFilter(filter, id, doc.data)) out.push({ id, version: doc.version, data: doc.data });
    return out;
  }

  async find(query: DriverFind): Promise<DocumentRecord[]> {
    const { sort, after, limit } = query;
    let rows = this.#matching(query.filter).sort(documentComparator(sort));
    if (after !== undefined) {
      rows = rows.filter((r) => comparePosition(sort, sortValues(sort, r.id, r.data), r.id, after.values, after.id) > 0);
    }
    return rows.slice(0, limit).map((r) => ({ ...r, data: structuredClone(r.data) }));
  }

  async count(filter: Filter): Promise<number> {
    return this.#matching(filter).length;
  }

  async ensureIndex(index: Required<IndexSpec>): Promise<void> {
    const existing = this.#indexes.get(index.name);
    if (existing !== undefined) {
      if (sameIndex(existing, index)) return;
      throw indexDefinitionConflict(this.#name, index.name);
    }
    if (index.unique) {
      const seen = new Map<string, string>();
      for (const [id, doc] of this.#docs) {
        const key = uniqueKey(index, id, doc.data);
        if (key === undefined) continue;
        const other = seen.get(key);
        if (other !== undefined) {
          throw uniqueIndexBuildConflict(this.#name, index.name, index.fields);
        }
        seen.set(key, id);
      }
    }
    this.#indexes.set(index.name, { ...index, fields: [...index.fields] });
  }

  async indexes(): Promise<Required<IndexSpec>[]> {
    return [...this.#indexes.values()].map((i) => ({ ...i, fields: [...i.fields] }));
  }
}

/** A documents driver that keeps everything in process memory. */
export class MemoryDocumentsDriver implements DocumentsDriver {
  /** `mem`. */
  readonly backend = 'mem';
  /** `insertMany` is atomic. */
  readonly capabilities: ReadonlySet<DocumentsCapability> = new Set<DocumentsCapability>(['transactions']);
  readonly #collections = new Map<string, MemoryCollectionDriver>();
  readonly #migrations = new Map<string, number>();
  readonly #locks = new Map<string, Promise<unknown>>();

  /** Opens (creating) a collection. */
  async collection(name: string): Promise<CollectionDriver> {
    let c = this.#collections.get(name);
    if (c === undefined) {
      c = new MemoryCollectionDriver(name);
      this.#collections.set(name, c);
    }
    return c;
  }

  /** Collection names. */
  async collections(): Promise<string[]> {
    return [...this.#collections.keys()];
  }

  /** Runs `fn` after every earlier holder of the lock `name` in this process has finished. */
  async withLock<R>(name: string, fn: () => Promise<R>, signal: AbortSignal): Promise<R> {
    const previous = this.#locks.get(name) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => {
      signal.throwIfAborted();
      return fn();
    });
    this.#locks.set(name, run);
    try {
      return await run;
    } finally {
      if (this.#locks.get(name) === run) this.#locks.delete(name);
    }
  }

  /** The highest migration version applied. */
  async migrationVersion(collection: string): Promise<number> {
    return this.#migrations.get(collection) ?? 0;
  }

  /** Records a migration version. */
  async setMigrationVersion(collection: string, version: number): Promise<void> {
    this.#migrations.set(collection, version);
  }

  /** Nothing to reach. */
  async ping(): ReturnType<DocumentsDriver['ping']> {
    return {};
  }

  /** Nothing to release. */
  async close(): Promise<void> {}

  /** The collections map. */
  native(): unknown {
    return this.#collections;
  }
}

/** `mem://` for the documents port. Takes no parameters. */
export const memDocumentsScheme: SchemeDefinition<'documents'> = {
  port: 'documents',
  scheme: 'mem',
  params: [],
  open: async () => new MemoryDocumentsDriver(),
};
