/**
 * The documents sort order (total, across types) and opaque keyset cursors.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { StowageError } from '../../ports/errors.js';
import type { JsonObject, JsonValue } from '../../ports/common.js';
import type { DocumentRecord, DriverFind, Filter, Sort } from '../../ports/documents.js';
import { compareCodePoints, ID_PATH, reach, validatePath } from './filter.js';

/** A validated sort: paths and directions, most significant first (id ascending is implied last). */
export type SortKeys = DriverFind['sort'];

/**
 * The type rank of a sort key in MongoDB's BSON order: 0 an empty array, 1 missing or null, 2 number,
 * 3 string, 4 object, 5 array (an array element that is itself an array), 6 boolean.
 */
export function typeRank(value: unknown): 0 | 1 | 2 | 3 | 4 | 5 | 6 {
  if (value === undefined || value === null) return 1;
  if (Array.isArray(value)) return value.length === 0 ? 0 : 5;
  switch (typeof value) {
    case 'number':
      return 2;
    case 'string':
      return 3;
    case 'boolean':
      return 6;
    default:
      return 4;
  }
}

/**
 * Compares two sort keys in the documented cross-type order: by rank, then numbers numerically, strings by
 * code point, false before true (objects are equal to each other, and so are arrays).
 */
export function compareValues(a: unknown, b: unknown): number {
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) return ra - rb;
  switch (ra) {
    case 2:
      return Math.sign((a as number) - (b as number));
    case 3:
      return Math.sign(compareCodePoints(a as string, b as string));
    case 6:
      return Number(a) - Number(b);
    default:
      return 0;
  }
}

/** The key of an array element that is itself an array: ranks as an array (arrays are equal to each other). */
const NESTED_ARRAY: JsonValue = Object.freeze([null]) as JsonValue;

/**
 * The sort key of a document for a path, as MongoDB's: of every value the path reaches (the filter's walk,
 * into arrays), and of every element of an array reached, the smallest in ascending order and the largest in
 * descending order; an empty array is its own key (below null); nothing reached is null.
 */
export function sortKey(data: JsonObject, path: string, direction: 1 | -1): JsonValue | undefined {
  let best: JsonValue | undefined;
  let found = false;
  const consider = (v: JsonValue): void => {
    if (!found || compareValues(v, best) * direction < 0) {
      best = v;
      found = true;
    }
  };
  for (const value of reach(data, path).values) {
    if (!Array.isArray(value) || value.length === 0) consider(value);
    else for (const element of value) consider(Array.isArray(element) ? NESTED_ARRAY : element);
  }
  return best;
}

/**
 * Checks a sort option: an object of paths to 1 or -1, or an array of `[path, direction]` pairs (default:
 * by id). The pairs keep their order whatever the paths: a plain object puts integer-like keys such as
 * `"0"` first, whatever order they were written in.
 */
export function validateSort(sort: unknown): SortKeys {
  if (sort === undefined) return [];
  if (typeof sort !== 'object' || sort === null) throw invalid('sort must be an object of paths to 1 or -1, or an array of [path, direction] pairs');
  let entries: [unknown, unknown][];
  if (Array.isArray(sort)) {
    // One read of the caller's array and of each pair, bounded before anything is copied.
    const length = sort.length;
    if (length > 8) throw invalid('sort has more than 8 keys');
    entries = [];
    for (let i = 0; i < length; i++) {
      const pair: unknown = sort[i];
      if (!Array.isArray(pair) || pair.length !== 2) throw invalid(`sort[${i}] must be a [path, direction] pair`);
      entries.push([pair[0], pair[1]]);
    }
  } else entries = Object.entries(sort as Sort);
  const keys: [string, 1 | -1][] = [];
  for (const [path, direction] of entries) {
    validatePath(path, 'sort path');
    if (direction !== 1 && direction !== -1) throw invalid(`sort direction of "${String(path)}" must be 1 or -1`);
    if (keys.some(([p]) => p === path)) throw invalid(`sort names "${String(path)}" twice`);
    keys.push([path as string, direction]);
  }
  if (keys.length > 8) throw invalid('sort has more than 8 keys');
  return keys;
}

/** The sort keys ({@link sortKey}) of a document, in the order of `sort`. */
export function sortValues(sort: SortKeys, id: string, data: JsonObject): (JsonValue | undefined)[] {
  return sort.map(([path, direction]) => (path === ID_PATH ? id : sortKey(data, path, direction)));
}

/**
 * Compares a document's position with a keyset position `(values, id)` under `sort`: negative when the
 * document comes first.
 */
export function comparePosition(
  sort: SortKeys,
  values: readonly unknown[],
  id: string,
  otherValues: readonly unknown[],
  otherId: string,
): number {
  for (let i = 0; i < sort.length; i++) {
    const c = compareValues(values[i], otherValues[i]) * (sort[i]?.[1] ?? 1);
    if (c !== 0) return c;
  }
  return Math.sign(compareCodePoints(id, otherId));
}

/** A comparator of documents under `sort` (ties broken by id ascending). */
export function documentComparator(sort: SortKeys): (a: DocumentRecord, b: DocumentRecord) => number {
  return (a, b) => comparePosition(sort, sortValues(sort, a.id, a.data), a.id, sortValues(sort, b.id, b.data), b.id);
}

function invalid(message: string): StowageError {
  return new StowageError('INVALID_ARGUMENT', message);
}

function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).sort(([a], [b]) => compareCodePoints(a, b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A short fingerprint of a query's filter and sort, so a cursor is not used with another query. */
export function queryFingerprint(filter: Filter, sort: SortKeys): string {
  return createHash('sha256').update(stableStringify({ filter, sort })).digest('base64url').slice(0, 16);
}

// In a cursor a sort key is kept only as far as ordering needs it: objects all rank equal, and so do arrays.
type CursorValue = { m: 1 } | { o: 1 } | { e: 1 } | { a: 1 } | { v: string | number | boolean | null };

interface CursorBody {
  q: string;
  v: CursorValue[];
  i: string;
}

/** Encodes the keyset position after the document `(id, data)` as an opaque base64url cursor. */
export function encodeCursor(fingerprint: string, sort: SortKeys, id: string, data: JsonObject): string {
  const body: CursorBody = {
    q: fingerprint,
    v: sortValues(sort, id, data).map((value): CursorValue => {
      if (value === undefined) return { m: 1 };
      if (Array.isArray(value)) return value.length === 0 ? { e: 1 } : { a: 1 };
      if (typeof value === 'object' && value !== null) return { o: 1 };
      return { v: value };
    }),
    i: id,
  };
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

/**
 * Decodes a cursor made by {@link encodeCursor} for the same query. A malformed cursor, or one from another
 * filter or sort, is INVALID_ARGUMENT.
 */
export function decodeCursor(cursor: unknown, fingerprint: string, sort: SortKeys): NonNullable<DriverFind['after']> {
  if (typeof cursor !== 'string' || cursor === '' || !/^[A-Za-z0-9_-]+$/.test(cursor)) {
    throw invalid('cursor "after" must be the "next" string of a previous page');
  }
  let body: Partial<CursorBody>;
  try {
    body = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Partial<CursorBody>;
  } catch {
    throw invalid('cursor "after" is not a cursor returned by find()');
  }
  if (typeof body !== 'object' || body === null || typeof body.i !== 'string' || !Array.isArray(body.v)) {
    throw invalid('cursor "after" is not a cursor returned by find()');
  }
  if (body.q !== fingerprint || body.v.length !== sort.length) {
    throw invalid('cursor "after" belongs to a find() with another filter or sort');
  }
  const values = body.v.map((entry): unknown => {
    if (typeof entry !== 'object' || entry === null) throw invalid('cursor "after" is damaged');
    if ('m' in entry) return undefined;
    if ('o' in entry) return {};
    if ('e' in entry) return [];
    if ('a' in entry) return NESTED_ARRAY;
    const v = (entry as { v?: unknown }).v;
    if (v === undefined || (typeof v === 'object' && v !== null)) throw invalid('cursor "after" is damaged');
    return v;
  });
  return { values, id: body.i };
}
