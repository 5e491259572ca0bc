/**
 * The SQLite flavour of the documents SQL translation: JSON1 functions over a TEXT column `data`.
 *
 * SQLite compares TEXT with the BINARY collation, i.e. `memcmp` of UTF-8, which is Unicode code-point order —
 * exactly the documented string order.
 *
 * @module
 */
import type { ScalarKind, SqlDialect } from '../sql/filter-sql.js';
import { sortRank } from '../sql/filter-sql.js';

/** A JSON path literal for SQLite: every key quoted, so any key without `"` is addressable. */
export function sqlitePath(segments: readonly string[]): string {
  const path = `$${segments.map((s) => `."${s}"`).join('')}`;
  return `'${path.replace(/'/g, "''")}'`;
}

const TYPES: Readonly<Record<ScalarKind, string>> = {
  null: "('null')",
  number: "('integer', 'real')",
  string: "('text')",
  boolean: "('true', 'false')",
};

const type = (segments: readonly string[]): string => `json_type(data, ${sqlitePath(segments)})`;
const extract = (segments: readonly string[]): string => `json_extract(data, ${sqlitePath(segments)})`;

/** The SQLite dialect. */
export const sqliteDialect: SqlDialect = {
  idColumn: 'id',
  nullSafeEq: 'IS',
  isKind: (segments, kind) => `${type(segments)} IN ${TYPES[kind]}`,
  exists: (segments) => `${type(segments)} IS NOT NULL`,
  isArray: (segments) => `${type(segments)} = 'array'`,
  // json_extract gives numbers as INTEGER/REAL, strings as TEXT and booleans as 1/0.
  value: (segments) => extract(segments),
  param: (value) => (typeof value === 'boolean' ? Number(value) : value),
  arrayHas: (segments, kind) =>
    `EXISTS (SELECT 1 FROM json_each(data, ${sqlitePath(segments)}) AS e WHERE e.type IN ${TYPES[kind]}${kind === 'null' ? '' : ' AND e.value = ?'})`,
  sortColumns: (segments) => [
    `CASE ${type(segments)} WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 WHEN 'true' THEN 3 WHEN 'false' THEN 3 WHEN 'array' THEN 4 WHEN 'object' THEN 4 ELSE 0 END`,
    `CASE WHEN ${type(segments)} IN ('array', 'object') THEN NULL ELSE ${extract(segments)} END`,
  ],
  sortParams: (value) => {
    const rank = sortRank(value);
    if (rank === 1 || rank === 2) return [rank, value];
    if (rank === 3) return [rank, value === true ? 1 : 0];
    return [rank, null];
  },
};

/**
 * The expressions of an index over `fields`: per field its JSON type and value, so that `1`, `'1'` and
 * `true` differ, and a missing or null field yields a NULL that unique indexes do not constrain. Filters
 * use the same expressions, so the planner can use the index.
 */
export function sqliteIndexColumns(fields: readonly string[]): string {
  return fields.map((f) => `${type(f.split('.'))}, ${extract(f.split('.'))}`).join(', ');
}
