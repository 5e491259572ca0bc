/**
 * Translation of the documents filter language, sort order and keyset positions to SQL, parameterised by
 * a {@link SqlDialect} so the SQLite and MySQL/MariaDB adapters share everything but the JSON functions.
 *
 * The translation mirrors the reference evaluator (`src/core/documents/filter.ts`) case by case; the
 * contract suite's filter table checks that the results are identical.
 *
 * @module
 */
import type { JsonPrimitive } from '../../ports/common.js';
import { StowageError } from '../../ports/errors.js';
import type { DriverFind, Filter } from '../../ports/documents.js';
import { fieldConditions, ID_PATH, regexPrefix, typeRank, type JsonTypeName } from '../../driver/index.js';

/** The JSON type of a scalar operand, as the dialect compares it. */
export type ScalarKind = 'null' | 'number' | 'string' | 'boolean';

/** A piece of SQL with its `?` parameters in order. */
export interface SqlFragment {
  /** The SQL text. */
  readonly sql: string;
  /** The values of its `?` placeholders. */
  readonly params: readonly unknown[];
}

/** What differs between SQL engines: JSON access, type tests, array membership and value encoding. */
export interface SqlDialect {
  /** The id column as SQL (compared by code point). */
  readonly idColumn: string;
  /** The null-safe equality operator (`IS` in SQLite, `<=>` in MySQL). */
  readonly nullSafeEq: string;
  /** A boolean expression: the value at `path` (segments) is a JSON scalar of `kind` (null: JSON null only). */
  isKind(path: readonly string[], kind: ScalarKind): string;
  /** A boolean expression: something (even JSON null) is present at `path`. */
  exists(path: readonly string[]): string;
  /** A boolean expression: the value at `path` is an array. */
  isArray(path: readonly string[]): string;
  /** A boolean expression: the value at `path` is present and of one of these JSON types. */
  typeIn(path: readonly string[], names: readonly JsonTypeName[]): string;
  /** A boolean expression: the array at `path` has an element of one of these JSON types. */
  arrayHasType(path: readonly string[], names: readonly JsonTypeName[]): string;
  /** The number of elements of the array at `path`. */
  arrayLength(path: readonly string[]): string;
  /** A boolean expression with its parameters: the string `expr` (as {@link SqlDialect.value} gives it) starts with `prefix`. */
  startsWith(expr: string, prefix: string): SqlFragment;
  /**
   * The value at `path`, comparable with {@link SqlDialect.param} of the same kind (numbers numerically,
   * strings by code point, booleans as stored), assuming the value has that kind.
   */
  value(path: readonly string[], kind: Exclude<ScalarKind, 'null'>): string;
  /** The parameter to compare with {@link SqlDialect.value}. */
  param(value: string | number | boolean): unknown;
  /** A boolean expression: the array at `path` has an element of `kind` equal to `?` (no `?` for null). */
  arrayHas(path: readonly string[], kind: ScalarKind): string;
  /**
   * A boolean expression with its parameters: `expr` (a value of `kind` as {@link SqlDialect.value} or
   * {@link SqlDialect.elementValue} gives it) is one of `values`, tested as one set however long the list
   * (SQLite: a JSON array parameter read by `json_each`; MySQL: an `IN` list of constants, which the
   * server sorts once and binary-searches).
   */
  memberOf(expr: string, kind: Exclude<ScalarKind, 'null'>, values: readonly (string | number | boolean)[]): SqlFragment;
  /** The value of an array element inside {@link SqlDialect.arrayHasWhere}, comparable as {@link SqlDialect.value}. */
  elementValue(kind: Exclude<ScalarKind, 'null'>): string;
  /** A boolean expression: the array at `path` has an element of `kind` for which `condition` holds. */
  arrayHasWhere(path: readonly string[], kind: Exclude<ScalarKind, 'null'>, condition: string): string;
  /** The expressions that order the value at `path` (type rank first), as the documented sort order. */
  sortColumns(path: readonly string[]): readonly string[];
  /** The values of {@link SqlDialect.sortColumns} for a keyset position's value. */
  sortParams(value: unknown): readonly unknown[];
}

// eslint-disable-next-line no-control-regex
const UNQUOTABLE = /[\u0000-\u001f\u007f"\\]/;

/**
 * A path segment for a dialect's JSON path literal, refused (INVALID_ARGUMENT) if it holds a character no
 * JSON path quoting can carry safely (validation refuses these first; this is the last line).
 */
export function checkedSegment(segment: string): string {
  if (UNQUOTABLE.test(segment)) throw new StowageError('INVALID_ARGUMENT', 'a path segment contains a control character, a quote or a backslash');
  return segment;
}

function kindOf(value: JsonPrimitive): ScalarKind {
  if (value === null) return 'null';
  return typeof value as Exclude<ScalarKind, 'null'>;
}

/**
 * Joins conditions with AND or OR as a balanced tree: SQLite refuses expressions nested 1,000 deep, which a
 * left-leaning chain of 1,000 `$or` branches (or keys) would be; balanced, the depth is their log.
 * The conditions keep their order, so the parameters do too.
 */
function balanced(parts: readonly string[], op: 'AND' | 'OR', from = 0, to = parts.length): string {
  if (to - from === 1) return parts[from] ?? '';
  const mid = (from + to) >>> 1;
  return `(${balanced(parts, op, from, mid)}) ${op} (${balanced(parts, op, mid, to)})`;
}

/** Lists longer than this are compared as one set ({@link SqlDialect.memberOf}) rather than value by value. */
const INLINE_VALUES = 4;

/**
 * `NOT` that treats SQL NULL (unknown) as false first, so negations stay exact. The false is written `1=0`,
 * a boolean in PostgreSQL (which refuses `COALESCE(boolean, 0)`) and 0 in SQLite and MySQL.
 */
function not(sql: string): string {
  return `NOT COALESCE((${sql}), 1=0)`;
}

class Translator {
  readonly params: unknown[] = [];
  readonly #d: SqlDialect;

  constructor(dialect: SqlDialect) {
    this.#d = dialect;
  }

  #p(value: unknown): string {
    this.params.push(value);
    return '?';
  }

  filter(filter: Filter): string {
    const parts: string[] = [];
    for (const [key, condition] of Object.entries(filter)) {
      if (key === '$and') {
        const subs = (condition as Filter[]).map((f) => this.filter(f));
        parts.push(subs.length === 0 ? '1=1' : balanced(subs, 'AND'));
      } else if (key === '$or') {
        const subs = (condition as Filter[]).map((f) => this.filter(f));
        parts.push(subs.length === 0 ? '1=0' : balanced(subs, 'OR'));
      } else {
        for (const [op, operand] of fieldConditions(condition)) parts.push(this.#condition(key, op, operand));
      }
    }
    return parts.length === 0 ? '1=1' : balanced(parts, 'AND');
  }

  #condition(path: string, op: string, operand: unknown): string {
    if (path === ID_PATH) return this.#idCondition(op, operand);
    const segments = path.split('.');
    switch (op) {
      case '$eq':
        return this.#eq(segments, operand as JsonPrimitive);
      case '$ne':
        return not(this.#eq(segments, operand as JsonPrimitive));
      case '$in':
        return this.#in(segments, operand as JsonPrimitive[]);
      case '$nin':
        return not(this.#in(segments, operand as JsonPrimitive[]));
      case '$exists':
        return operand === true ? this.#d.exists(segments) : not(this.#d.exists(segments));
      case '$size':
        return `${this.#d.isArray(segments)} AND ${this.#d.arrayLength(segments)} = ${this.#p(operand)}`;
      case '$all': {
        const values = operand as JsonPrimitive[];
        return values.length === 0 ? '1=0' : balanced(values.map((v) => this.#eq(segments, v)), 'AND');
      }
      case '$not':
        return not(balanced(fieldConditions(operand).map(([o, x]) => this.#condition(path, o, x)), 'AND'));
      case '$type': {
        const names = operand as JsonTypeName[];
        return `(${this.#d.typeIn(segments, names)}) OR (${this.#d.isArray(segments)} AND ${this.#d.arrayHasType(segments, names)})`;
      }
      case '$regex': {
        const d = this.#d;
        const prefix = regexPrefix(operand as string) ?? '';
        const scalar = d.startsWith(d.value(segments, 'string'), prefix);
        const element = d.startsWith(d.elementValue('string'), prefix);
        this.params.push(...scalar.params, ...element.params);
        return `(${d.isKind(segments, 'string')} AND ${scalar.sql}) OR (${d.isArray(segments)} AND ${d.arrayHasWhere(segments, 'string', element.sql)})`;
      }
      default:
        return this.#range(segments, op, operand as string | number);
    }
  }

  #in(segments: readonly string[], values: readonly JsonPrimitive[]): string {
    if (values.length === 0) return '1=0';
    if (values.length <= INLINE_VALUES) return balanced(values.map((v) => this.#eq(segments, v)), 'OR');
    // A long list: per JSON type, one membership test against a set, for the scalar and for array elements.
    const d = this.#d;
    const arms: string[] = [];
    if (values.includes(null)) arms.push(this.#eq(segments, null));
    for (const kind of ['number', 'string', 'boolean'] as const) {
      const ofKind = values.filter((v) => typeof v === kind) as (string | number | boolean)[];
      if (ofKind.length === 0) continue;
      const scalar = d.memberOf(d.value(segments, kind), kind, ofKind);
      const element = d.memberOf(d.elementValue(kind), kind, ofKind);
      // Membership first, the type check only for the few members: one JSON read fewer per document on the
      // common path (the type check stays, since `true` reads as 1 and an array's text could be a member).
      arms.push(`(${scalar.sql} AND ${d.isKind(segments, kind)}) OR (${d.isArray(segments)} AND ${d.arrayHasWhere(segments, kind, element.sql)})`);
      this.params.push(...scalar.params, ...element.params);
    }
    return balanced(arms, 'OR');
  }

  #eq(segments: readonly string[], value: JsonPrimitive): string {
    const d = this.#d;
    const kind = kindOf(value);
    if (value === null) return `${not(d.exists(segments))} OR ${d.isKind(segments, 'null')} OR (${d.isArray(segments)} AND ${d.arrayHas(segments, 'null')})`;
    // The comparison first and the type only for equal values: one JSON read fewer for most documents.
    const scalar = `(${d.value(segments, kind as Exclude<ScalarKind, 'null'>)} = ${this.#p(d.param(value))} AND ${d.isKind(segments, kind)})`;
    const element = `(${d.isArray(segments)} AND ${d.arrayHas(segments, kind)})`;
    this.params.push(d.param(value));
    return `${scalar} OR ${element}`;
  }

  #range(segments: readonly string[], op: string, operand: string | number): string {
    const kind = typeof operand as 'string' | 'number';
    const sqlOp = RANGE_SQL[op] ?? '=';
    return `${this.#d.isKind(segments, kind)} AND ${this.#d.value(segments, kind)} ${sqlOp} ${this.#p(this.#d.param(operand))}`;
  }

  #idCondition(op: string, operand: unknown): string {
    const id = this.#d.idColumn;
    switch (op) {
      case '$eq':
        return typeof operand === 'string' ? `${id} = ${this.#p(operand)}` : '1=0';
      case '$ne':
        return typeof operand === 'string' ? `${id} <> ${this.#p(operand)}` : '1=1';
      case '$in':
      case '$nin': {
        const ids = (operand as unknown[]).filter((v): v is string => typeof v === 'string');
        let inList = '1=0';
        if (ids.length > INLINE_VALUES) {
          const set = this.#d.memberOf(id, 'string', ids);
          this.params.push(...set.params);
          inList = set.sql;
        } else if (ids.length > 0) inList = `${id} IN (${ids.map((v) => this.#p(v)).join(', ')})`;
        return op === '$in' ? inList : not(inList);
      }
      case '$exists':
        return operand === true ? '1=1' : '1=0';
      case '$size':
        return '1=0';
      case '$all': {
        const ids = new Set(operand as unknown[]);
        return ids.size === 1 && typeof [...ids][0] === 'string' ? `${id} = ${this.#p([...ids][0])}` : '1=0';
      }
      case '$not':
        return not(balanced(fieldConditions(operand).map(([o, x]) => this.#idCondition(o, x)), 'AND'));
      case '$type':
        return (operand as JsonTypeName[]).includes('string') ? '1=1' : '1=0';
      case '$regex': {
        const starts = this.#d.startsWith(id, regexPrefix(operand as string) ?? '');
        this.params.push(...starts.params);
        return starts.sql;
      }
      default:
        return typeof operand === 'string' ? `${id} ${RANGE_SQL[op] ?? '='} ${this.#p(operand)}` : '1=0';
    }
  }
}

const RANGE_SQL: Readonly<Record<string, string>> = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' };

/** Translates a validated filter to a boolean SQL expression. */
export function filterToSql(filter: Filter, dialect: SqlDialect): SqlFragment {
  if (isEmptyFilter(filter)) return MATCH_ALL;
  const t = new Translator(dialect);
  const sql = t.filter(filter);
  return { sql, params: t.params };
}

const MATCH_ALL: SqlFragment = Object.freeze({ sql: '1=1', params: Object.freeze([]) });

/** A top-level `$eq` or `$in` on one field, split off a filter so that an adapter can drive a query by an index. */
export interface FieldEquality {
  /** The field's path (never `_id`). */
  readonly path: string;
  /** The values the field must equal (or, for an array, contain one of): distinct, without null. */
  readonly values: readonly (string | number | boolean)[];
  /** The rest of the filter: the original is exactly `path $in values` AND `rest`. */
  readonly rest: Filter;
}

/**
 * Finds a top-level `$eq` (or `$in` of at most `maxValues` values) without null on a path for which
 * `usable` holds, and splits it off the filter. Undefined when there is none.
 */
export function splitEquality(filter: Filter, usable: (path: string) => boolean, maxValues = 8): FieldEquality | undefined {
  // Called on every find: no spread, `delete` or Map on the common path (one field, one value).
  for (const key of Object.keys(filter)) {
    if (key === '$and' || key === '$or' || key === ID_PATH || !usable(key)) continue;
    const conditions = fieldConditions(filter[key]);
    const index = conditions.findIndex(([op, operand]) =>
      (op === '$eq' && operand !== null) ||
      (op === '$in' && Array.isArray(operand) && operand.length > 0 && operand.length <= maxValues && !operand.includes(null)));
    const chosen = conditions[index];
    if (chosen === undefined) continue;
    const operands = (chosen[0] === '$eq' ? [chosen[1]] : chosen[1]) as (string | number | boolean)[];
    const values = operands.length === 1 ? operands : distinctScalars(operands);
    const rest: Record<string, unknown> = {};
    for (const other of Object.keys(filter)) if (other !== key) rest[other] = filter[other];
    if (conditions.length > 1) rest[key] = Object.fromEntries(conditions.filter((_, i) => i !== index));
    return { path: key, values, rest: rest as Filter };
  }
  return undefined;
}

/** The operands without repeats (`1` and `'1'` differ). */
function distinctScalars(operands: readonly (string | number | boolean)[]): (string | number | boolean)[] {
  const distinct = new Map<string, string | number | boolean>();
  for (const value of operands) distinct.set(`${typeof value}:${String(value)}`, value);
  return [...distinct.values()];
}

/** True when a filter has no condition (every document matches). */
function isEmptyFilter(filter: Filter): boolean {
  for (const _ in filter) return false;
  return true;
}

/** The ORDER BY list and the keyset condition ("strictly after") of a find. */
export function sortToSql(query: Pick<DriverFind, 'sort' | 'after'>, dialect: SqlDialect): { orderBy: string; after: SqlFragment | undefined } {
  if (query.sort.length === 0 && query.after === undefined) return { orderBy: dialect.idColumn, after: undefined };
  const columns: { sql: string; desc: boolean }[] = [];
  for (const [path, direction] of query.sort) {
    const exprs = path === ID_PATH ? [dialect.idColumn] : dialect.sortColumns(path.split('.'));
    for (const sql of exprs) columns.push({ sql, desc: direction === -1 });
  }
  const orderBy = [...columns.map((c) => `${c.sql}${c.desc ? ' DESC' : ''}`), dialect.idColumn].join(', ');
  if (query.after === undefined) return { orderBy, after: undefined };

  const values: unknown[] = [];
  query.sort.forEach(([path], i) => {
    const v = query.after?.values[i];
    if (path === ID_PATH) values.push(typeof v === 'string' ? v : null);
    else values.push(...dialect.sortParams(v));
  });
  // (c1, c2, …, id) > (a1, a2, …, id0) with per-column direction, written out so NULLs compare safely.
  const params: unknown[] = [];
  const ors: string[] = [];
  const all = [...columns, { sql: dialect.idColumn, desc: false }];
  const allValues = [...values, query.after.id];
  for (let i = 0; i < all.length; i++) {
    const ands: string[] = [];
    for (let j = 0; j < i; j++) {
      ands.push(`${all[j]?.sql} ${dialect.nullSafeEq} ?`);
      params.push(allValues[j]);
    }
    ands.push(`${all[i]?.sql} ${all[i]?.desc ? '<' : '>'} ?`);
    params.push(allValues[i]);
    ors.push(`(${ands.join(' AND ')})`);
  }
  return { orderBy, after: { sql: ors.join(' OR '), params } };
}

/** The sort rank of a keyset value (see `typeRank`), for dialects' {@link SqlDialect.sortParams}. */
export function sortRank(value: unknown): number {
  return typeRank(value);
}
