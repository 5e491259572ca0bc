/**
 * The MySQL 8 / MariaDB flavour of the documents SQL translation.
 *
 * Strings are compared as `CAST(… AS BINARY)`: byte order of UTF-8 is code-point order, and unlike
 * `utf8mb4_bin` (a PAD SPACE collation on MariaDB) it does not ignore trailing spaces. Array membership
 * walks the elements with `JSON_TABLE` rather than `JSON_CONTAINS`, which also looks inside nested arrays.
 *
 * @module
 */
import { hash } from 'node:crypto';
import type { JsonPrimitive } from '../../ports/common.js';
import { INDEX_SEGMENT, type JsonTypeName } from '../../driver/index.js';
import type { JsonRef, PathStep, ScalarKind, SqlDialect } from '../sql/filter-sql.js';
import { checkedSegment, sortRank } from '../sql/filter-sql.js';

/**
 * A JSON path literal: every key quoted. `'` is doubled, which ends no literal whether or not the server
 * treats `\\` as an escape (NO_BACKSLASH_ESCAPES); `\\`, `"` and control characters, which validation refuses
 * in paths, are refused here too, so no key can end the JSON quoting or the SQL literal.
 */
export function mysqlPath(segments: readonly PathStep[]): string {
  const path = `$${segments.map((s) => (typeof s === 'number' ? `[${Math.trunc(s)}]` : `."${checkedSegment(s)}"`)).join('')}`;
  return `'${path.replace(/'/g, "''")}'`;
}

const NUMBER_TYPES = "('INTEGER', 'UNSIGNED INTEGER', 'DOUBLE', 'DECIMAL')";
const TYPES: Readonly<Record<ScalarKind, string>> = {
  null: "('NULL')",
  number: NUMBER_TYPES,
  string: "('STRING')",
  boolean: "('BOOLEAN')",
};

const TYPE_NAMES: Readonly<Record<JsonTypeName, readonly string[]>> = {
  number: ['INTEGER', 'UNSIGNED INTEGER', 'DOUBLE', 'DECIMAL'],
  string: ['STRING'],
  bool: ['BOOLEAN'],
  null: ['NULL'],
  object: ['OBJECT'],
  array: ['ARRAY'],
};

/** The SQL list of JSON_TYPE() names of some {@link JsonTypeName}s. */
function typeList(names: readonly JsonTypeName[]): string {
  return `(${names.flatMap((n) => TYPE_NAMES[n]).map((t) => `'${t}'`).join(', ')})`;
}

const at = (ref: JsonRef): string => `JSON_EXTRACT(${ref.doc}, ${mysqlPath(ref.path)})`;
const stored = (segments: readonly string[]): JsonRef => ({ doc: 'data', path: segments });
const typeOf = (json: string): string => `JSON_TYPE(${json})`;

function scalar(json: string, kind: Exclude<ScalarKind, 'null'>): string {
  switch (kind) {
    case 'number':
      return `CAST(${json} AS DOUBLE)`;
    case 'string':
      return `CAST(JSON_UNQUOTE(${json}) AS BINARY)`;
    default:
      return `(JSON_UNQUOTE(${json}) = 'true')`;
  }
}

/** The sort rank (`typeRank`) of a JSON_TYPE() name, `nothing` for a missing value. */
function rankOf(type: string, nothing: number): string {
  return `CASE WHEN ${type} = 'NULL' THEN 1 WHEN ${type} IN ${NUMBER_TYPES} THEN 2 WHEN ${type} = 'STRING' THEN 3 WHEN ${type} = 'OBJECT' THEN 4 WHEN ${type} = 'ARRAY' THEN 5 WHEN ${type} = 'BOOLEAN' THEN 6 ELSE ${nothing} END`;
}

/** The sort value columns of a JSON value: numbers and booleans in one, strings (as bytes) in the other. */
function valuesOf(json: string): string[] {
  const type = typeOf(json);
  return [
    `CASE WHEN ${type} IN ${NUMBER_TYPES} THEN ${scalar(json, 'number')} WHEN ${type} = 'BOOLEAN' THEN ${scalar(json, 'boolean')} END`,
    `CASE WHEN ${type} = 'STRING' THEN ${scalar(json, 'string')} END`,
  ];
}

/** Paths longer than this (2^k routes) and lists longer than this (compared pairwise) use the general translation. */
const MAX_OVERLAP_SEGMENTS = 4;
const MAX_OVERLAP_VALUES = 16;

/** The MySQL/MariaDB dialect. */
export const mysqlDialect: SqlDialect = {
  idColumn: 'id',
  document: 'data',
  nullSafeEq: '<=>',
  isKind: (ref, kind) => `${typeOf(at(ref))} IN ${TYPES[kind]}`,
  exists: (ref) => `${typeOf(at(ref))} IS NOT NULL`,
  // On the stored document JSON_VALUE goes first: MariaDB stops reading at the value (JSON_EXTRACT as text
  // reads the whole document), and it is NULL for every array (and object), so most rows stop there.
  isArray: (ref) => (ref.doc === 'data' ? `(JSON_VALUE(data, ${mysqlPath(ref.path)}) IS NULL AND ${typeOf(at(ref))} = 'ARRAY')` : `${typeOf(at(ref))} = 'ARRAY'`),
  typeIn: (ref, names) => `${typeOf(at(ref))} IN ${typeList(names)}`,
  arrayLength: (ref) => `JSON_LENGTH(${at(ref)})`,
  // LEFT of a binary string counts bytes: the prefix's UTF-8 length, a literal integer.
  startsWith: (expr, prefix) => ({ sql: `LEFT(${expr}, ${Buffer.byteLength(prefix, 'utf8')}) = ?`, params: [Buffer.from(prefix, 'utf8')] }),
  value: (ref, kind) => scalar(at(ref), kind),
  param: (value) => {
    if (typeof value === 'string') return Buffer.from(value, 'utf8');
    if (typeof value === 'boolean') return Number(value);
    return value;
  },
  // An IN list of constants: the server sorts it once and binary-searches it per value (a subquery over a
  // JSON parameter is evaluated again for every array element, and one JSON_TABLE per value grows memory
  // quadratically). Long lists are sent as text, not as prepared statements (see the documents driver).
  memberOf: (expr, _kind, values) => ({
    sql: `${expr} IN (${values.map(() => '?').join(', ')})`,
    params: values.map((v) => mysqlDialect.param(v)),
  }),
  elements: (ref, alias) => `JSON_TABLE(${at(ref)}, '$[*]' COLUMNS (j JSON PATH '$')) AS ${alias}`,
  elementIsKind: (alias, kind) => `${typeOf(`${alias}.j`)} IN ${TYPES[kind]}`,
  elementTypeIn: (alias, names) => `${typeOf(`${alias}.j`)} IN ${typeList(names)}`,
  elementValue: (alias, kind) => scalar(`${alias}.j`, kind),
  elementDoc: (alias) => `${alias}.j`,
  // A key of a scalar or an array element reads as missing (no auto-wrapping for keys, only for indexes).
  elementObject: (alias) => `${alias}.j`,
  truncatedMod: (expr, divisor) => `MOD(TRUNCATE(${expr}, 0), ${Math.trunc(divisor)})`,
  sortRank: (ref, nothing) => rankOf(typeOf(at(ref)), nothing),
  sortValues: (ref) => valuesOf(at(ref)),
  elementSortRank: (alias) => rankOf(typeOf(`${alias}.j`), 1),
  elementSortValues: (alias) => valuesOf(`${alias}.j`),
  // Every route of the path as one multi-path JSON_EXTRACT (an array of what it reaches; a key of an array
  // reads as nothing, `[*]` of a non-array too), compared by JSON_OVERLAPS, which compares JSON types and
  // looks one level into arrays only: one read of the document instead of a JSON_TABLE per route. A route
  // through a step that never held an array is left out (`arrays`): each route is a pass over the document.
  reachesAny: (segments, values, arrays) => {
    if (segments.length > MAX_OVERLAP_SEGMENTS || values.length > MAX_OVERLAP_VALUES || segments.slice(1).some((s) => INDEX_SEGMENT.test(s))) return undefined;
    let paths = [`$."${checkedSegment(segments[0] ?? '')}"`];
    segments.slice(1).forEach((segment, i) => {
      const key = `."${checkedSegment(segment)}"`;
      paths = arrays(i + 1) ? paths.flatMap((p) => [`${p}${key}`, `${p}[*]${key}`]) : paths.map((p) => `${p}${key}`);
    });
    const last = arrays(segments.length);
    const literals = paths.flatMap((p) => (last ? [p, `${p}[*]`] : [p])).map((p) => `'${p.replace(/'/g, "''")}'`);
    return { sql: `JSON_OVERLAPS(JSON_EXTRACT(data, ${literals.join(', ')}), ?)`, params: [JSON.stringify(values)] };
  },
  sortParams: (value) => {
    const rank = sortRank(value);
    if (rank === 2) return [rank, value, null];
    if (rank === 3) return [rank, null, Buffer.from(value as string, 'utf8')];
    if (rank === 6) return [rank, value === true ? 1 : 0, null];
    return [rank, null, null];
  },
};

/** The key every array gets in a non-unique index (hashes are 32 bytes, so it never equals one). */
export const ARRAY_KEY = Buffer.from([0]);

/**
 * The generated-column expression of one indexed field: a SHA-256 of the value's JSON type and text, so
 * values of any length and type can be indexed and `1`, `'1'` and `true` differ. A missing or null field
 * gives NULL, which unique indexes do not constrain. MySQL cannot index an array element by element, so an
 * array gets {@link ARRAY_KEY} in a plain index (an equality lookup then reads the arrays too) and NULL in a
 * unique one. {@link mysqlIndexKey} computes the same hash for a filter operand.
 */
export function mysqlIndexExpression(field: string, unique: boolean): string {
  const json = at(stored(field.split('.')));
  const type = typeOf(json);
  // The type goes in as a literal letter: MariaDB's CONCAT drops JSON_TYPE's result, and mixing its utf8mb3
  // with utf8mb4 text fails on astral characters, so every part is binary.
  const tag = `CASE WHEN ${type} IN ${NUMBER_TYPES} THEN 'n' WHEN ${type} = 'STRING' THEN 's' WHEN ${type} = 'BOOLEAN' THEN 'b' WHEN ${type} = 'ARRAY' THEN 'a' ELSE 'o' END`;
  const hash = `UNHEX(SHA2(CASE WHEN ${type} IN ('NULL', 'ARRAY') THEN NULL ELSE CONCAT(CAST(${tag} AS BINARY), ':', CAST(JSON_UNQUOTE(${json}) AS BINARY)) END, 256))`;
  return unique ? hash : `CASE WHEN ${type} = 'ARRAY' THEN X'00' ELSE ${hash} END`;
}

/** Index keys of recent operands: a find by the same value again skips the hash (bounded: cleared when full). */
const KEY_CACHE = new Map<string, Buffer>();
const KEY_CACHE_MAX = 4096;

/**
 * The index key ({@link mysqlIndexExpression}) of a scalar filter operand, or undefined when the server's
 * text of the value might differ from JavaScript's (null, non-integer or very large numbers). The Buffer
 * returned may be shared between calls: it must not be changed.
 */
export function mysqlIndexKey(value: JsonPrimitive): Buffer | undefined {
  let text: string;
  if (typeof value === 'string') text = `s:${value}`;
  else if (typeof value === 'boolean') text = `b:${value}`;
  else if (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) < 1e15) text = `n:${JSON.stringify(value)}`;
  else return undefined;
  let key = KEY_CACHE.get(text);
  if (key === undefined) {
    if (KEY_CACHE.size >= KEY_CACHE_MAX) KEY_CACHE.clear();
    key = hash('sha256', text, 'buffer');
    KEY_CACHE.set(text, key);
  }
  return key;
}
