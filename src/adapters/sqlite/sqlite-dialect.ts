/**
 * The SQLite flavour of the documents SQL translation: JSON1 functions over a TEXT column `data`.
 *
 * SQLite compares TEXT with the BINARY collation, i.e. `memcmp` of UTF-8, which is Unicode code-point order —
 * exactly the documented string order.
 *
 * @module
 */
import type { JsonTypeName } from '../../driver/index.js';
import type { FilterContext, JsonRef, PathStep, ScalarKind, SqlDialect, SqlFragment } from '../sql/filter-sql.js';
import { checkedSegment, filterToSql, sortRank } from '../sql/filter-sql.js';

/**
 * A JSON path literal for SQLite: every key quoted, so any key without `"` is addressable. Validation
 * refuses `"`, `\\` and control characters in paths; a segment that still has one (a bug) is refused here
 * too, so no key can ever end the JSON quoting or the SQL literal.
 */
export function sqlitePath(segments: readonly PathStep[]): string {
  const path = `$${segments.map((s) => (typeof s === 'number' ? `[${Math.trunc(s)}]` : `."${checkedSegment(s)}"`)).join('')}`;
  return `'${path.replace(/'/g, "''")}'`;
}

const TYPES: Readonly<Record<ScalarKind, string>> = {
  null: "('null')",
  number: "('integer', 'real')",
  string: "('text')",
  boolean: "('true', 'false')",
};

const TYPE_NAMES: Readonly<Record<JsonTypeName, readonly string[]>> = {
  number: ['integer', 'real'],
  string: ['text'],
  bool: ['true', 'false'],
  null: ['null'],
  object: ['object'],
  array: ['array'],
};

/** The SQL list of json_type() names of some {@link JsonTypeName}s. */
function typeList(names: readonly JsonTypeName[]): string {
  return `(${names.flatMap((n) => TYPE_NAMES[n]).map((t) => `'${t}'`).join(', ')})`;
}

const type = (ref: JsonRef): string => `json_type(${ref.doc}, ${sqlitePath(ref.path)})`;
const extract = (ref: JsonRef): string => `json_extract(${ref.doc}, ${sqlitePath(ref.path)})`;
const stored = (segments: readonly string[]): JsonRef => ({ doc: 'data', path: segments });

/** The `WHEN … THEN` arms of the sort rank (`typeRank`) of a json_type() name. */
const RANKS = "WHEN 'null' THEN 1 WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'text' THEN 3 WHEN 'object' THEN 4 WHEN 'array' THEN 5 WHEN 'true' THEN 6 WHEN 'false' THEN 6";

/** The SQLite dialect. */
export const sqliteDialect: SqlDialect = {
  idColumn: 'id',
  document: 'data',
  nullSafeEq: 'IS',
  isKind: (ref, kind) => `${type(ref)} IN ${TYPES[kind]}`,
  exists: (ref) => `${type(ref)} IS NOT NULL`,
  isArray: (ref) => `${type(ref)} = 'array'`,
  typeIn: (ref, names) => `${type(ref)} IN ${typeList(names)}`,
  arrayLength: (ref) => `json_array_length(${ref.doc}, ${sqlitePath(ref.path)})`,
  // substr counts characters (code points) in TEXT; the length is a literal integer.
  startsWith: (expr, prefix) => ({ sql: `substr(${expr}, 1, ${[...prefix].length}) = ?`, params: [prefix] }),
  // json_extract gives numbers as INTEGER/REAL, strings as TEXT and booleans as 1/0.
  value: (ref) => extract(ref),
  param: (value) => (typeof value === 'boolean' ? Number(value) : value),
  // One JSON array parameter: SQLite materialises the uncorrelated subquery once, as an indexed set.
  memberOf: (expr, _kind, values) => ({
    sql: `${expr} IN (SELECT value FROM json_each(?))`,
    params: [JSON.stringify(values.map((v) => sqliteDialect.param(v)))],
  }),
  // json_each of an object walks its members: the translator always guards with isArray first.
  elements: (ref, alias) => `json_each(${ref.doc}, ${sqlitePath(ref.path)}) AS ${alias}`,
  elementIsKind: (alias, kind) => `${alias}.type IN ${TYPES[kind]}`,
  elementTypeIn: (alias, names) => `${alias}.type IN ${typeList(names)}`,
  elementValue: (alias) => `${alias}.value`,
  // json_each gives a scalar element as an SQL value (booleans as 1/0), an object or array as JSON text.
  elementDoc: (alias) =>
    `CASE ${alias}.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null' WHEN 'text' THEN json_quote(${alias}.value) ELSE ${alias}.value END`,
  // Only an object: json_type of a path into a text element would be an error (malformed JSON).
  elementObject: (alias) => `CASE WHEN ${alias}.type = 'object' THEN ${alias}.value END`,
  // The element's own text, which SQLite reads ~1.5× faster than the same text out of a CASE.
  objectElement: (alias) => ({ is: `${alias}.type = 'object'`, doc: `${alias}.value` }),
  truncatedMod: (expr, divisor) => `(CAST(${expr} AS INTEGER) % (${Math.trunc(divisor)}))`,
  sortRank: (ref, nothing) => `CASE ${type(ref)} ${RANKS} ELSE ${nothing} END`,
  sortValues: (ref) => [`CASE WHEN ${type(ref)} IN ('array', 'object') THEN NULL ELSE ${extract(ref)} END`],
  elementSortRank: (alias) => `CASE ${alias}.type ${RANKS} ELSE 1 END`,
  elementSortValues: (alias) => [`CASE WHEN ${alias}.type IN ('array', 'object') THEN NULL ELSE ${alias}.value END`],
  // json_each gives an array's elements (integer keys), an object's members (text keys) or a scalar itself
  // (no key), in one parse.
  children: (ref, alias) => ({
    from: `json_each(${ref.doc}, ${sqlitePath(ref.path)}) AS ${alias}`,
    element: `typeof(${alias}.key) = 'integer'`,
    member: (key) => `${alias}.key = '${checkedSegment(key).replace(/'/g, "''")}'`,
    notMember: `typeof(${alias}.key) <> 'text'`,
  }),
  sortParams: (value) => {
    const rank = sortRank(value);
    if (rank === 2 || rank === 3) return [rank, value];
    if (rank === 6) return [rank, value === true ? 1 : 0];
    return [rank, null];
  },
};

/**
 * The value column of a plain (non-unique) index: the value, except NULL for an array. Arrays then share
 * one key (`'array'`, NULL), whose entries are in id order, so "arrays containing x" is an ordered index
 * range just like "scalars equal to x".
 */
function plainValue(segments: readonly string[]): string {
  return `CASE WHEN ${type(stored(segments))} = 'array' THEN NULL ELSE ${extract(stored(segments))} END`;
}

/** `json_type(…) = 'object' AND ` for each proper prefix of `segments` shorter than `count` segments. */
function objectsOnTheWay(segments: readonly string[], count: number): string {
  let sql = '';
  for (let i = 1; i <= count; i++) sql += `${type(stored(segments.slice(0, i)))} = 'object' AND `;
  return sql;
}

/**
 * The expressions of an index over `fields`: per field the JSON types on the way to it (for `a.b.c`, of
 * `a` and of `a.b`: whether the path reaches the field by keys alone, or may walk an array's elements),
 * then its JSON type and value, so that `1`, `'1'` and `true` differ, and a missing or null field yields a
 * NULL that unique indexes do not constrain. A plain index stores NULL as the value of an array (see
 * {@link plainValue}); a unique one the array's text, so equal arrays conflict. {@link sqliteIndexArms}
 * and {@link sqliteFilterContext} write conditions with the same expressions, so the planner uses the index.
 */
export function sqliteIndexColumns(fields: readonly string[], unique: boolean): string {
  return fields
    .map((f) => {
      const segments = f.split('.');
      const onTheWay = segments.slice(1).map((_, i) => `${type(stored(segments.slice(0, i + 1)))}, `).join('');
      return `${onTheWay}${type(stored(segments))}, ${unique ? extract(stored(segments)) : plainValue(segments)}`;
    })
    .join(', ');
}

/**
 * Disjoint conditions whose union is exactly "the value at `path` `$eq` one of `values`" (no nulls), each
 * an equality on the leading columns of an index whose first field is `path`: one per value and JSON type
 * (numbers are `integer` or `real`), and one for arrays holding a value, among the documents where every
 * step on the way is an object; and for a dotted path, per step on the way, the documents where that step
 * is the first array, checked by the whole translation. On a one-field plain index each condition of the
 * first kind reads the matches in id order.
 */
export function sqliteIndexArms(path: string, values: readonly (string | number | boolean)[], unique: boolean): SqlFragment[] {
  const segments = path.split('.');
  const objects = objectsOnTheWay(segments, segments.length - 1);
  const t = type(stored(segments));
  const v = unique ? extract(stored(segments)) : plainValue(segments);
  const arms: SqlFragment[] = [];
  for (const value of values) {
    if (typeof value === 'string') arms.push({ sql: `${objects}${t} = 'text' AND ${v} = ?`, params: [value] });
    else if (typeof value === 'boolean') arms.push({ sql: `${objects}${t} = '${String(value)}' AND ${v} = ${Number(value)}`, params: [] });
    else for (const kind of ['integer', 'real']) arms.push({ sql: `${objects}${t} = '${kind}' AND ${v} = ?`, params: [value] });
  }
  const elements = sqliteDialect.elements(stored(segments), 'e');
  const has = values.map((value) => `EXISTS (SELECT 1 FROM ${elements} WHERE e.type IN ${TYPES[typeof value as 'string' | 'number' | 'boolean']} AND e.value = ?)`);
  arms.push({
    sql: `${objects}${t} = 'array'${unique ? '' : ` AND ${v} IS NULL`} AND (${has.join(' OR ')})`,
    params: values.map((value) => sqliteDialect.param(value)),
  });
  if (segments.length > 1) {
    const exact = filterToSql({ [path]: { $in: [...values] } }, sqliteDialect);
    for (let i = 1; i < segments.length; i++) {
      arms.push({ sql: `${objectsOnTheWay(segments, i - 1)}${type(stored(segments.slice(0, i)))} = 'array' AND (${exact.sql})`, params: exact.params });
    }
  }
  return arms;
}

/**
 * What the declared indexes (the paths of their first fields) tell the translation about the documents of
 * `table`: whether any holds an array at a path or at a step on its way, answered by an index seek once per
 * statement (see {@link FilterContext.arrayAt}).
 */
export function sqliteFilterContext(table: string, indexed: readonly string[]): FilterContext {
  const paths = indexed.map((p) => p.split('.'));
  return {
    arrayAt: (path) => {
      if (path.length === 0 || path.some((s) => typeof s !== 'string')) return undefined;
      const segments = path as readonly string[];
      const covered = paths.some((p) => p.length >= segments.length && segments.every((s, i) => p[i] === s));
      if (!covered) return undefined;
      return `EXISTS (SELECT 1 FROM ${table} WHERE ${objectsOnTheWay(segments, segments.length - 1)}${type(stored(segments))} = 'array')`;
    },
  };
}
