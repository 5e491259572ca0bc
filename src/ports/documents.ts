/**
 * The documents port: JSON documents in named collections, with versions, a MongoDB-style filter subset,
 * sort with cursor pagination, declared indexes and migrations.
 *
 * @module
 */
import type { CallOptions, DriverBase, JsonObject, JsonPrimitive, Lifecycle } from './common.js';

/**
 * What a documents adapter can do beyond the basics (insert, get, put/patch/delete with versions, find,
 * count, unique indexes, migrations), which every adapter supports.
 *
 * - `transactions` — `insertMany` is atomic: all documents are stored or none.
 */
export type DocumentsCapability = 'transactions';

/**
 * Conditions on one field. Several operators on one field must all hold.
 *
 * Reference semantics (every adapter gives identical results, checked by the contract suite's filter table;
 * `src/core/documents/filter.ts` is the reference implementation):
 * - a path is dotted (`a.b.c`) and walks as MongoDB's do: through objects key by key, into an array by index
 *   where the segment is a non-negative integer (`a.0`), otherwise through every object element of an array
 *   (`items.n` reaches `{ items: [{ n: 1 }, { n: 2 }] }` twice); a condition holds when it holds for any value
 *   reached (the negations `$ne`, `$nin`, `$not` and `$exists: false` when it holds for none);
 * - `$eq` (and a bare value) matches a value equal to the scalar, or an array with an element equal to it;
 *   types never convert (`1` ≠ `'1'`, `true` ≠ `1`); `null` matches null, or a path that ends on nothing
 *   before going through any array's elements (`{'a.b': null}` matches `{}` and `{a: 1}`, not `{a: [{}]}`);
 * - `$gt $gte $lt $lte` match a scalar of the operand's type, or an array with such an element in range,
 *   numbers numerically and strings by Unicode code point; booleans, null and objects never match a range;
 * - `$in` matches when `$eq` holds for any listed value; `$in: []` matches nothing, `$nin: []` everything;
 * - `$exists: true` matches when the path reaches a value, even `null`; `$exists: false` when it reaches none;
 * - `$size: n` matches an array of n elements; `$all` holds when `$eq` holds for every listed value (`$all: []`
 *   matches nothing); `$not: { … }` is the exact negation of its conditions; `$elemMatch` and `$mod` as below.
 * Operands are scalars (objects and arrays are INVALID_ARGUMENT, as is any other operator, but `$elemMatch`'s). Path segments must
 * not start with `$` or `-` nor contain quotes, backslashes or control characters (SQL JSON paths cannot escape
 * them; MariaDB cannot address a key starting with `-`). A filter nests at most `MAX_FILTER_DEPTH` (32) levels
 * (INVALID_ARGUMENT) and holds at most `MAX_FILTER_TERMS` (100,000) terms (RESOURCE_EXHAUSTED).
 */
export interface FieldOperators {
  /** Equal (or, for an array field, contains). */
  $eq?: JsonPrimitive;
  /** Not `$eq`. */
  $ne?: JsonPrimitive;
  /** Greater than (same type only). */
  $gt?: string | number;
  /** Greater than or equal (same type only). */
  $gte?: string | number;
  /** Less than (same type only). */
  $lt?: string | number;
  /** Less than or equal (same type only). */
  $lte?: string | number;
  /** `$eq` one of the values. */
  $in?: readonly JsonPrimitive[];
  /** Not `$in`. */
  $nin?: readonly JsonPrimitive[];
  /** Present (true) or missing (false). */
  $exists?: boolean;
  /** An array of exactly this many elements. */
  $size?: number;
  /** `$eq` every one of the values (`$all: []` matches nothing). */
  $all?: readonly JsonPrimitive[];
  /** None of these conditions all hold: the exact negation (so it matches missing fields). */
  $not?: FieldOperators;
  /**
   * A string (or an array with a string element) starting with a prefix. Only the safe subset: `^` then
   * literal characters, metacharacters escaped with `\` (`'^ab\\.c'`); anything else is INVALID_ARGUMENT.
   */
  $regex?: string;
  /**
   * Of one of these JSON types: `number`, `string`, `bool`, `null`, `object`, `array` (one name or an array of
   * them). An array matches its own type and its elements' types, as in MongoDB.
   */
  $type?: string | readonly string[];
  /**
   * An array with an element for which this holds: operators on the element itself (`{ $gte: 1, $lt: 5 }`),
   * or a filter on an object element (`{ n: 1, 'k.x': { $exists: true } }`; `_id` is refused there).
   */
  $elemMatch?: FieldOperators | Filter;
  /**
   * A number (or an array with a number element) whose value truncated toward zero leaves `remainder`
   * when divided by `divisor` (integers, the divisor not 0; the remainder has the value's sign).
   */
  $mod?: readonly [divisor: number, remainder: number];
}

/**
 * A filter: every key must hold. A key is a dotted path (into the document's data, or `_id` for the id)
 * mapped to a scalar (shorthand for `$eq`) or to {@link FieldOperators}; `$and` / `$or` combine filters.
 * `{}` matches everything.
 *
 * @example
 * ```ts
 * { status: 'open', 'owner.team': { $in: ['a', 'b'] }, $or: [{ priority: { $gte: 3 } }, { flagged: true }] }
 * ```
 */
export interface Filter {
  /** All of these. */
  $and?: readonly Filter[];
  /** At least one of these (`$or: []` matches nothing). */
  $or?: readonly Filter[];
  /** A path and its condition. */
  [path: string]: JsonPrimitive | FieldOperators | readonly Filter[] | undefined;
}

/**
 * Sort order: paths to `1` (ascending) or `-1` (descending), most significant first — as an object, or as an
 * array of `[path, direction]` pairs. Ties are broken by id ascending, so the order is total.
 *
 * A plain object cannot keep an integer-like key such as `"0"` in place (JavaScript lists those keys first,
 * in numeric order): `{ z: 1, '0': 1 }` sorts by `0` first. Pairs keep the order written:
 * `[['z', 1], ['0', 1]]`.
 *
 * Across types, ascending order is MongoDB's BSON order: an empty array, then missing and null, numbers,
 * strings (by code point), objects (equal to each other), arrays (an element that is itself an array; equal
 * to each other), booleans (false, true). A document is placed by its key for the path: of the values the
 * path reaches (into arrays, as filters walk) and the elements of the arrays among them, the smallest in
 * ascending order and the largest in descending order.
 */
export type Sort = Readonly<Record<string, 1 | -1>> | readonly (readonly [path: string, direction: 1 | -1])[];

/** A stored document. */
export interface DocumentRecord<T extends JsonObject = JsonObject> {
  /** The id: given by the caller or a UUIDv7. */
  readonly id: string;
  /** Starts at 1 and increases by one on every write. */
  readonly version: number;
  /** The document's data. */
  readonly data: T;
}

/** An index on one or more paths. */
export interface IndexSpec {
  /** The index name (default: derived from the paths). Letters, digits and `_`. */
  name?: string;
  /** The indexed paths, most significant first. */
  fields: readonly string[];
  /**
   * Reject a second document with the same values (CONFLICT). Documents missing a field, or holding `null` in
   * it, are not constrained. Values are compared whole and by type (`1`, `'1'` and `true` differ); index
   * scalar fields only, since backends disagree on arrays (MongoDB indexes each element).
   */
  unique?: boolean;
}

/** A schema migration: runs once per collection and version, across the whole cluster, under a lock. */
export interface Migration {
  /** A positive integer; migrations run in ascending order of version. */
  version: number;
  /** Changes documents; receives the collection. Must be safe to re-run if it fails midway. */
  up(collection: Collection): Promise<void>;
}

/** Options of {@link DocumentStore.collection}. */
export interface CollectionOptions extends CallOptions {
  /** Indexes to create; an index declared later is added to the existing collection. */
  indexes?: readonly IndexSpec[];
  /** Migrations to run once each, in version order. */
  migrations?: readonly Migration[];
}

/** Options of {@link Collection.find}. */
export interface FindOptions extends CallOptions {
  /** Sort order (default: by id). */
  sort?: Sort;
  /** At most this many documents (default 100, at most 10 000). */
  limit?: number;
  /** The `next` cursor of the previous page; the filter and sort must be the same. */
  after?: string;
}

/** A page of results. */
export interface FindPage<T extends JsonObject = JsonObject> {
  /** The documents, in sort order. */
  readonly items: readonly DocumentRecord<T>[];
  /**
   * The cursor for the next page, when there may be more. Pages are keyset-based: documents inserted or
   * changed between pages never cause a skip or a repeat of documents that stayed put.
   */
  readonly next: string | undefined;
}

/** Options carrying an expected version. */
export interface VersionedWriteOptions extends CallOptions {
  /** Write only if the current version is this (`0` = only if absent); else CONFLICT. */
  ifVersion?: number;
}

/**
 * A collection of documents.
 *
 * Guarantees, checked by the documents contract suite:
 * - `insert` assigns a UUIDv7 id when none is given and version 1; an existing id gives ALREADY_EXISTS;
 * - every write increases the version by one; `ifVersion` makes it a compare-and-set (CONFLICT);
 * - a unique index violation gives CONFLICT and changes nothing;
 * - `find` returns exactly the documents the reference evaluator matches, in the documented sort order, and
 *   cursor pages never skip or repeat;
 * - data keys must not start with `$` or contain `.` or NUL (they could not be addressed by a filter);
 *   documents are at most {@link DocumentStore.maxDocumentBytes} serialised.
 */
export interface Collection<T extends JsonObject = JsonObject> {
  /** The collection's name. */
  readonly name: string;
  /** Inserts a new document. */
  insert(data: T, options?: CallOptions & { id?: string }): Promise<DocumentRecord<T>>;
  /** Inserts several; atomic only with capability `transactions`. */
  insertMany(docs: readonly T[], options?: CallOptions): Promise<DocumentRecord<T>[]>;
  /** Reads one; undefined when absent. */
  get(id: string, options?: CallOptions): Promise<DocumentRecord<T> | undefined>;
  /** Replaces (or creates) a document. */
  put(id: string, data: T, options?: VersionedWriteOptions): Promise<DocumentRecord<T>>;
  /** Merges `changes` into a document (RFC 7386 merge patch: `null` removes a field). NOT_FOUND if absent. */
  patch(id: string, changes: JsonObject, options?: VersionedWriteOptions): Promise<DocumentRecord<T>>;
  /** Deletes a document; resolves with whether it existed. */
  delete(id: string, options?: VersionedWriteOptions): Promise<boolean>;
  /** One page of the documents matching `filter`. */
  find(filter?: Filter, options?: FindOptions): Promise<FindPage<T>>;
  /** How many documents match. */
  count(filter?: Filter, options?: CallOptions): Promise<number>;
  /** The indexes that exist on the collection. */
  indexes(options?: CallOptions): Promise<IndexSpec[]>;
}

/** The documents port. */
export interface DocumentStore extends Lifecycle {
  /** What this adapter supports. */
  readonly capabilities: ReadonlySet<DocumentsCapability>;
  /** The largest serialised document accepted, in bytes. */
  readonly maxDocumentBytes: number;
  /**
   * Opens (creating if needed) a collection, creates its declared indexes (also on an existing collection)
   * and runs its pending migrations. Names: 1–64 characters of letters, digits and `_`, starting with a letter.
   */
  collection<T extends JsonObject = JsonObject>(name: string, options?: CollectionOptions): Promise<Collection<T>>;
  /** Names of existing collections. */
  collections(options?: CallOptions): Promise<string[]>;
}

/** A validated find request as a driver receives it. */
export interface DriverFind {
  /** The validated filter. */
  readonly filter: Filter;
  /** The sort keys, most significant first (id ascending is implied last). */
  readonly sort: readonly (readonly [path: string, direction: 1 | -1])[];
  /** Maximum documents. */
  readonly limit: number;
  /**
   * Keyset position: the sort values (`undefined` for missing) and the id of the last document of the
   * previous page; results must come strictly after it in sort order.
   */
  readonly after: KeysetPosition | undefined;
}

/** Where a page ended: the sort values and id of its last document. */
export interface KeysetPosition {
  /** The sort values, in sort-key order (`undefined` for a missing field). */
  readonly values: readonly unknown[];
  /** The document id. */
  readonly id: string;
}

/** A document as a driver's `insertMany` receives it from core. */
export interface DriverDocument {
  /** The id (core's UUIDv7). */
  readonly id: string;
  /** A deep copy of the caller's data, core's own: the driver may keep it and return it. */
  readonly data: JsonObject;
  /** The JSON text of `data` (see {@link CollectionDriver}). */
  readonly json?: string;
}

/**
 * What a documents adapter implements for one collection.
 *
 * Writes (`insert`, `insertMany`, `put`) receive the document's data twice: `data`, a deep copy the driver may
 * keep and return, and `json`, the JSON text core validated and measured against the size limit
 * (`JSON.stringify(data)` gives the same text). A driver that stores text stores `json` instead of
 * serialising again; one that stores objects ignores it. Core always passes `json`; it is optional so that
 * drivers and callers written before it keep working, and a driver that uses it falls back to
 * `JSON.stringify(data)` when it is absent.
 */
export interface CollectionDriver {
  /**
   * Inserts; throws ALREADY_EXISTS or CONFLICT (unique index).
   *
   * @param json - the JSON text of `data`, from core (see {@link CollectionDriver})
   */
  insert(id: string, data: JsonObject, signal: AbortSignal, json?: string): Promise<DocumentRecord>;
  /** Inserts several (atomically with capability `transactions`). */
  insertMany?(docs: readonly DriverDocument[], signal: AbortSignal): Promise<DocumentRecord[]>;
  /** Reads one. */
  get(id: string, signal: AbortSignal): Promise<DocumentRecord | undefined>;
  /**
   * Reads one synchronously, for drivers whose reads run in this process and block until done (SQLite
   * through better-sqlite3). Optional. When present, core calls it instead of `get` without a deadline —
   * a call that blocks the event loop cannot be timed out anyway — and without a span unless tracing is on.
   * It must see every write issued before it, as `get` does.
   */
  getSync?(id: string): DocumentRecord | undefined;
  /**
   * Replaces or creates, honouring `ifVersion` (CONFLICT on mismatch, also for unique indexes). Core's
   * `patch` is a read, a merge, then this with the version it read.
   *
   * @param json - the JSON text of `data`, from core (see {@link CollectionDriver})
   */
  put(id: string, data: JsonObject, ifVersion: number | undefined, signal: AbortSignal, json?: string): Promise<DocumentRecord>;
  /** Deletes, honouring `ifVersion` (CONFLICT on mismatch); resolves with whether it existed. */
  delete(id: string, ifVersion: number | undefined, signal: AbortSignal): Promise<boolean>;
  /** Matching documents in order, at most `limit`. */
  find(query: DriverFind, signal: AbortSignal): Promise<DocumentRecord[]>;
  /** How many match. */
  count(filter: Filter, signal: AbortSignal): Promise<number>;
  /** Creates an index if absent (on existing documents too); CONFLICT if existing data breaks a unique index. */
  ensureIndex(index: Required<IndexSpec>, signal: AbortSignal): Promise<void>;
  /** Existing indexes. */
  indexes(signal: AbortSignal): Promise<Required<IndexSpec>[]>;
}

/** What a documents adapter implements. */
export interface DocumentsDriver extends DriverBase {
  /** What the driver supports. */
  readonly capabilities: ReadonlySet<DocumentsCapability>;
  /** Opens (creating) a collection's storage. */
  collection(name: string, signal: AbortSignal): Promise<CollectionDriver>;
  /** Existing collection names. */
  collections(signal: AbortSignal): Promise<string[]>;
  /**
   * Runs `fn` while holding a cluster-wide lock named `name` (migrations); at most one holder at a time
   * across every process using the backend.
   */
  withLock<R>(name: string, fn: () => Promise<R>, signal: AbortSignal): Promise<R>;
  /** The highest migration version applied to a collection (0 when none). */
  migrationVersion(collection: string, signal: AbortSignal): Promise<number>;
  /** Records that a migration version was applied. */
  setMigrationVersion(collection: string, version: number, signal: AbortSignal): Promise<void>;
}
