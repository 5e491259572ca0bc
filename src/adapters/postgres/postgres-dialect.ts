/**
 * The PostgreSQL flavour of the documents SQL translation, over a `jsonb` column named `data`.
 *
 * Paths are walked with `->` and text keys, which never index into an array (`#>` would read `a.0` as an
 * array element, which the shared translator does not). Strings compare `COLLATE "C"`: byte order of UTF-8,
 * which is code-point order. Every cast of a JSON value to a SQL type sits behind a `CASE` on its JSON type:
 * PostgreSQL does not promise to evaluate `AND` left to right, so a guard beside a cast would not be enough.
 *
 * @module
 */
import type { JsonTypeName } from '../../driver/index.js';
import type { ScalarKind, SqlDialect } from '../sql/filter-sql.js';
import { checkedSegment, sortRank } from '../sql/filter-sql.js';

/** A SQL string literal: `'` doubled (standard_conforming_strings, on since PostgreSQL 9.1, makes `\` plain). */
function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** The `jsonb` at `path`: `data -> 'a' -> 'b'`, SQL NULL when absent (JSON null is `'null'::jsonb`). */
export function pgPath(segments: readonly string[]): string {
  return `data${segments.map((s) => ` -> ${literal(checkedSegment(s))}`).join('')}`;
}

const JSONB_TYPE: Readonly<Record<ScalarKind, string>> = { null: 'null', number: 'number', string: 'string', boolean: 'boolean' };
const TYPE_NAMES: Readonly<Record<JsonTypeName, string>> = { number: 'number', string: 'string', bool: 'boolean', null: 'null', object: 'object', array: 'array' };

const typeOf = (json: string): string => `jsonb_typeof(${json})`;
const typeList = (names: readonly JsonTypeName[]): string => `(${names.map((n) => `'${TYPE_NAMES[n]}'`).join(', ')})`;

/** The SQL value of a JSON scalar of `kind`, NULL when it is of another type. */
function scalar(json: string, kind: Exclude<ScalarKind, 'null'>): string {
  switch (kind) {
    case 'number':
      return `(CASE WHEN ${typeOf(json)} = 'number' THEN (${json})::float8 END)`;
    case 'string':
      return `((CASE WHEN ${typeOf(json)} = 'string' THEN ${json} #>> '{}' END) COLLATE "C")`;
    default:
      return `(CASE WHEN ${typeOf(json)} = 'boolean' THEN (${json})::boolean END)`;
  }
}

/** The elements of the array at `json` as rows `e(j)`; none when it is not an array. */
const elements = (json: string): string => `jsonb_array_elements(CASE WHEN ${typeOf(json)} = 'array' THEN ${json} END) AS e(j)`;

const SQL_TYPE: Readonly<Record<Exclude<ScalarKind, 'null'>, string>> = { number: 'float8', string: 'text', boolean: 'boolean' };
const ARRAY_PARAM: Readonly<Record<Exclude<ScalarKind, 'null'>, string>> = { number: 'float8[]', string: 'text[]', boolean: 'boolean[]' };

/** The PostgreSQL dialect (placeholders are `?` here; the driver numbers them, see {@link numberPlaceholders}). */
export const postgresDialect: SqlDialect = {
  idColumn: 'id',
  nullSafeEq: 'IS NOT DISTINCT FROM',
  isKind: (segments, kind) => `${typeOf(pgPath(segments))} = '${JSONB_TYPE[kind]}'`,
  exists: (segments) => `${pgPath(segments)} IS NOT NULL`,
  isArray: (segments) => `${typeOf(pgPath(segments))} = 'array'`,
  typeIn: (segments, names) => `${typeOf(pgPath(segments))} IN ${typeList(names)}`,
  arrayHasType: (segments, names) => `EXISTS (SELECT 1 FROM ${elements(pgPath(segments))} WHERE ${typeOf('e.j')} IN ${typeList(names)})`,
  arrayLength: (segments) => `jsonb_array_length(CASE WHEN ${typeOf(pgPath(segments))} = 'array' THEN ${pgPath(segments)} END)`,
  startsWith: (expr, prefix) => ({ sql: `starts_with(${expr}, ?)`, params: [prefix] }),
  value: (segments, kind) => scalar(pgPath(segments), kind),
  param: (value) => value,
  // Containment, not a walk over the elements: `[1, "a"] @> [1]` holds when a top-level element equals the
  // value (`[[1]] @> [1]` does not: no deeper), is native, and costs a fraction of an EXISTS subquery.
  arrayHas: (segments, kind) => `${pgPath(segments)} @> ${kind === 'null' ? "'[null]'" : `jsonb_build_array(?::${SQL_TYPE[kind]})`}`,
  // One array parameter, whatever the list's length: one prepared statement for every length.
  memberOf: (expr, kind, values) => ({ sql: `${expr} = ANY(?::${ARRAY_PARAM[kind]})`, params: [values] }),
  elementValue: (kind) => scalar('e.j', kind),
  arrayHasWhere: (segments, kind, condition) =>
    `EXISTS (SELECT 1 FROM ${elements(pgPath(segments))} WHERE ${typeOf('e.j')} = '${JSONB_TYPE[kind]}' AND ${condition})`,
  sortColumns: (segments) => {
    const json = pgPath(segments);
    const type = typeOf(json);
    return [
      `(CASE ${type} WHEN 'number' THEN 1 WHEN 'string' THEN 2 WHEN 'boolean' THEN 3 WHEN 'array' THEN 4 WHEN 'object' THEN 4 ELSE 0 END)`,
      `(CASE ${type} WHEN 'number' THEN (${json})::float8 WHEN 'boolean' THEN (CASE WHEN (${json})::boolean THEN 1 ELSE 0 END) END)`,
      scalar(json, 'string'),
    ];
  },
  sortParams: (value) => {
    const rank = sortRank(value);
    if (rank === 1) return [rank, value, null];
    if (rank === 2) return [rank, null, value];
    if (rank === 3) return [rank, value === true ? 1 : 0, null];
    return [rank, null, null];
  },
};

/**
 * Turns the translator's `?` placeholders into `$1`, `$2`, …, leaving `?` inside string literals (a path
 * key such as `'why?'`) alone. The dialect writes no `?` operator, so every `?` outside a literal is one.
 */
export function numberPlaceholders(sql: string, first = 1): string {
  let out = '';
  let n = first;
  let inLiteral = false;
  let from = 0;
  for (let i = 0; i < sql.length; i++) {
    const c = sql.charCodeAt(i);
    // A doubled quote inside a literal toggles twice: it stays a literal.
    if (c === 39 /* ' */) inLiteral = !inLiteral;
    else if (c === 63 /* ? */ && !inLiteral) {
      out += `${sql.slice(from, i)}$${n++}`;
      from = i + 1;
    }
  }
  return out + sql.slice(from);
}
