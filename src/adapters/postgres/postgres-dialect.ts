/**
 * The PostgreSQL flavour of the documents SQL translation, over a `jsonb` column named `data`.
 *
 * Paths are walked with `->`: a text key on an array and an integer index on an object both give SQL NULL
 * (missing), which is the translator's rule. Strings compare `COLLATE "C"`: byte order of UTF-8, which is
 * code-point order. Every cast of a JSON value to a SQL type, and every `jsonb_array_elements`, sits behind a
 * `CASE` on its JSON type: PostgreSQL does not promise to evaluate `AND` left to right, so a guard beside a
 * cast would not be enough.
 *
 * @module
 */
import type { JsonTypeName } from '../../driver/index.js';
import type { JsonRef, PathStep, ScalarKind, SqlDialect } from '../sql/filter-sql.js';
import { checkedSegment, sortRank } from '../sql/filter-sql.js';

/** A SQL string literal: `'` doubled (standard_conforming_strings, on since PostgreSQL 9.1, makes `\` plain). */
function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/**
 * The `jsonb` at `path` inside the `jsonb` expression `doc`: `data -> 'a' -> 0`, SQL NULL when absent (JSON
 * null is `'null'::jsonb`). Indexes are non-negative literal integers (`-> -1` would read from the end).
 * `-> 0` on a scalar gives the scalar itself, as `$[0]` does in MySQL: the translator takes an index step
 * only where it has checked that the value is an array.
 */
export function pgPath(doc: string, path: readonly PathStep[]): string {
  if (path.length === 0) return doc;
  const steps = path.map((s) => (typeof s === 'number' ? ` -> ${Math.max(0, Math.trunc(s))}` : ` -> ${literal(checkedSegment(s))}`)).join('');
  return `(${doc})${steps}`;
}

const at = (ref: JsonRef): string => pgPath(ref.doc, ref.path);
const element = (alias: string): string => `${alias}.j`;

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

/** The sort rank (`typeRank`) of a JSON value, `nothing` when it is missing. */
const rankOf = (json: string, nothing: number): string =>
  `(CASE ${typeOf(json)} WHEN 'null' THEN 1 WHEN 'number' THEN 2 WHEN 'string' THEN 3 WHEN 'object' THEN 4 WHEN 'array' THEN 5 WHEN 'boolean' THEN 6 ELSE ${nothing} END)`;

/** The sort value columns of a JSON value: numbers and booleans (0/1) in one, strings in the other. */
function valuesOf(json: string): string[] {
  return [
    `(CASE ${typeOf(json)} WHEN 'number' THEN (${json})::float8 WHEN 'boolean' THEN (CASE WHEN (${json})::boolean THEN 1 ELSE 0 END)::float8 END)`,
    scalar(json, 'string'),
  ];
}

const ARRAY_PARAM: Readonly<Record<Exclude<ScalarKind, 'null'>, string>> = { number: 'float8[]', string: 'text[]', boolean: 'boolean[]' };

/** The PostgreSQL dialect (placeholders are `?` here; the driver numbers them, see {@link numberPlaceholders}). */
export const postgresDialect: SqlDialect = {
  idColumn: 'id',
  document: 'data',
  nullSafeEq: 'IS NOT DISTINCT FROM',
  isKind: (ref, kind) => `${typeOf(at(ref))} = '${JSONB_TYPE[kind]}'`,
  exists: (ref) => `${at(ref)} IS NOT NULL`,
  isArray: (ref) => `${typeOf(at(ref))} = 'array'`,
  typeIn: (ref, names) => `${typeOf(at(ref))} IN ${typeList(names)}`,
  arrayLength: (ref) => `jsonb_array_length(CASE WHEN ${typeOf(at(ref))} = 'array' THEN ${at(ref)} END)`,
  startsWith: (expr, prefix) => ({ sql: `starts_with(${expr}, ?)`, params: [prefix] }),
  value: (ref, kind) => scalar(at(ref), kind),
  param: (value) => value,
  // One array parameter, whatever the list's length: one prepared statement for every length.
  memberOf: (expr, kind, values) => ({ sql: `${expr} = ANY(?::${ARRAY_PARAM[kind]})`, params: [values] }),
  // Guarded although the translator checks isArray first: that check may be evaluated after this one.
  elements: (ref, alias) => `jsonb_array_elements(CASE WHEN ${typeOf(at(ref))} = 'array' THEN ${at(ref)} END) AS ${alias}(j)`,
  elementIsKind: (alias, kind) => `${typeOf(element(alias))} = '${JSONB_TYPE[kind]}'`,
  elementTypeIn: (alias, names) => `${typeOf(element(alias))} IN ${typeList(names)}`,
  elementValue: (alias, kind) => scalar(element(alias), kind),
  elementDoc: element,
  // A key of a scalar or an array reads as SQL NULL with `->`, so any element will do.
  elementObject: element,
  // Through text, not `::numeric` (which keeps 15 digits): PostgreSQL 12+ prints a float8 exactly as
  // JSON.stringify does, so integers up to 2^53 keep every digit. numeric's mod has the dividend's sign.
  truncatedMod: (expr, divisor) => `mod(trunc(${expr})::text::numeric, ${Math.trunc(divisor)})`,
  sortRank: (ref, nothing) => rankOf(at(ref), nothing),
  sortValues: (ref) => valuesOf(at(ref)),
  elementSortRank: (alias) => rankOf(element(alias), 1),
  elementSortValues: (alias) => valuesOf(element(alias)),
  sortParams: (value) => {
    const rank = sortRank(value);
    if (rank === 2) return [rank, value, null];
    if (rank === 3) return [rank, null, value];
    if (rank === 6) return [rank, value === true ? 1 : 0, null];
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
