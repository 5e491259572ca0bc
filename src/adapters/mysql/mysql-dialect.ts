/**
 * The MySQL 8 / MariaDB flavour of the documents SQL translation.
 *
 * Strings are compared as `CAST(… AS BINARY)`: byte order of UTF-8 is code-point order, and unlike
 * `utf8mb4_bin` (a PAD SPACE collation on MariaDB) it does not ignore trailing spaces. Array membership
 * walks the elements with `JSON_TABLE` rather than `JSON_CONTAINS`, which also looks inside nested arrays.
 *
 * @module
 */
import type { ScalarKind, SqlDialect } from '../sql/filter-sql.js';
import { sortRank } from '../sql/filter-sql.js';

/** A JSON path literal: every key quoted. */
export function mysqlPath(segments: readonly string[]): string {
  const path = `$${segments.map((s) => `."${s}"`).join('')}`;
  return `'${path.replace(/'/g, "''")}'`;
}

const NUMBER_TYPES = "('INTEGER', 'UNSIGNED INTEGER', 'DOUBLE', 'DECIMAL')";
const TYPES: Readonly<Record<ScalarKind, string>> = {
  null: "('NULL')",
  number: NUMBER_TYPES,
  string: "('STRING')",
  boolean: "('BOOLEAN')",
};

const at = (segments: readonly string[]): string => `JSON_EXTRACT(data, ${mysqlPath(segments)})`;
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

/** The MySQL/MariaDB dialect. */
export const mysqlDialect: SqlDialect = {
  idColumn: 'id',
  nullSafeEq: '<=>',
  isKind: (segments, kind) => `${typeOf(at(segments))} IN ${TYPES[kind]}`,
  exists: (segments) => `${typeOf(at(segments))} IS NOT NULL`,
  isArray: (segments) => `${typeOf(at(segments))} = 'ARRAY'`,
  value: (segments, kind) => scalar(at(segments), kind),
  param: (value) => {
    if (typeof value === 'string') return Buffer.from(value, 'utf8');
    if (typeof value === 'boolean') return Number(value);
    return value;
  },
  arrayHas: (segments, kind) =>
    `EXISTS (SELECT 1 FROM JSON_TABLE(${at(segments)}, '$[*]' COLUMNS (j JSON PATH '$')) AS e WHERE ${typeOf('e.j')} IN ${TYPES[kind]}` +
    `${kind === 'null' ? '' : ` AND ${scalar('e.j', kind)} = ?`})`,
  sortColumns: (segments) => {
    const json = at(segments);
    const type = typeOf(json);
    return [
      `CASE WHEN ${type} IN ${NUMBER_TYPES} THEN 1 WHEN ${type} = 'STRING' THEN 2 WHEN ${type} = 'BOOLEAN' THEN 3 WHEN ${type} IN ('ARRAY', 'OBJECT') THEN 4 ELSE 0 END`,
      `CASE WHEN ${type} IN ${NUMBER_TYPES} THEN ${scalar(json, 'number')} WHEN ${type} = 'BOOLEAN' THEN ${scalar(json, 'boolean')} END`,
      `CASE WHEN ${type} = 'STRING' THEN ${scalar(json, 'string')} END`,
    ];
  },
  sortParams: (value) => {
    const rank = sortRank(value);
    if (rank === 1) return [rank, value, null];
    if (rank === 2) return [rank, null, Buffer.from(value as string, 'utf8')];
    if (rank === 3) return [rank, value === true ? 1 : 0, null];
    return [rank, null, null];
  },
};

/**
 * The generated-column expression of one indexed field: a hash of the value's JSON type and text, so
 * values of any length and type can be indexed, `1`, `'1'` and `true` differ, and a missing or null field
 * gives NULL, which unique indexes do not constrain.
 */
export function mysqlIndexExpression(field: string): string {
  const json = at(field.split('.'));
  const type = typeOf(json);
  // The type goes in as a literal letter: MariaDB's CONCAT drops JSON_TYPE's result, and mixing its utf8mb3
  // with utf8mb4 text fails on astral characters, so every part is binary.
  const tag = `CASE WHEN ${type} IN ${NUMBER_TYPES} THEN 'n' WHEN ${type} = 'STRING' THEN 's' WHEN ${type} = 'BOOLEAN' THEN 'b' WHEN ${type} = 'ARRAY' THEN 'a' ELSE 'o' END`;
  return `UNHEX(SHA2(CASE WHEN ${type} = 'NULL' THEN NULL ELSE CONCAT(CAST(${tag} AS BINARY), ':', CAST(JSON_UNQUOTE(${json}) AS BINARY)) END, 256))`;
}
