/**
 * The documents filter language: validation, and the reference evaluator every adapter must agree with
 * (see {@link FieldOperators} for the semantics).
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { JsonObject, JsonPrimitive, JsonValue } from '../../ports/common.js';
import type { FieldOperators, Filter } from '../../ports/documents.js';
import { quote } from '../../driver/validate.js';

/** The path that addresses a document's id rather than its data. */
export const ID_PATH = '_id';

const FIELD_OPERATORS: ReadonlySet<string> = new Set(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists']);
const RANGE_OPERATORS: ReadonlySet<string> = new Set(['$gt', '$gte', '$lt', '$lte']);
// Quotes and backslashes are refused in paths because SQL JSON-path syntaxes (SQLite's in particular) have
// no portable way to escape them; control characters because backends disagree on them.
// eslint-disable-next-line no-control-regex
const BAD_SEGMENT = /[\u0000-\u001f\u007f"\\]/;

function invalid(message: string): StowageError {
  return new StowageError('INVALID_ARGUMENT', message);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function isScalar(value: unknown): value is JsonPrimitive {
  return (
    value === null ||
    typeof value === 'string' ||
    typeof value === 'boolean' ||
    (typeof value === 'number' && Number.isFinite(value))
  );
}

/**
 * Checks a dotted path (in a filter, a sort or an index): non-empty segments that do not start with `$`,
 * without control characters, quotes or backslashes. `_id` alone addresses the id.
 *
 * @returns the segments
 */
export function validatePath(path: unknown, what = 'path'): string[] {
  if (typeof path !== 'string' || path === '') throw invalid(`${what} must be a non-empty string`);
  const segments = path.split('.');
  for (const segment of segments) {
    if (segment === '') throw invalid(`${what} ${quote(path)} has an empty segment`);
    if (segment.startsWith('$')) throw invalid(`${what} ${quote(path)} has a segment starting with "$"`);
    if (BAD_SEGMENT.test(segment)) {
      throw invalid(`${what} ${quote(path)} contains a control character, a quote or a backslash`);
    }
  }
  if (segments[0] === ID_PATH && segments.length > 1) throw invalid(`${what} ${quote(path)} goes inside "_id", which is a string`);
  return segments;
}

function validateScalar(value: unknown, where: string): JsonPrimitive {
  if (!isScalar(value)) {
    const kind = Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : String(value);
    throw invalid(`${where} must be a string, a finite number, a boolean or null, got ${kind}`);
  }
  return value;
}

function validateOperators(path: string, ops: Record<string, unknown>): void {
  const keys = Object.keys(ops);
  if (keys.length === 0) throw invalid(`filter on ${quote(path)} is an empty object (objects cannot be compared)`);
  for (const op of keys) {
    const operand = ops[op];
    const where = `filter operand of ${op} on ${quote(path)}`;
    if (!FIELD_OPERATORS.has(op)) {
      throw invalid(
        op.startsWith('$')
          ? `unknown filter operator ${quote(op)} on ${quote(path)}`
          : `filter on ${quote(path)} compares with an object (objects cannot be compared)`,
      );
    }
    if (op === '$eq' || op === '$ne') validateScalar(operand, where);
    else if (RANGE_OPERATORS.has(op)) {
      if (typeof operand !== 'string' && !(typeof operand === 'number' && Number.isFinite(operand))) {
        throw invalid(`${where} must be a string or a finite number`);
      }
    } else if (op === '$in' || op === '$nin') {
      if (!Array.isArray(operand)) throw invalid(`${where} must be an array`);
      operand.forEach((v, i) => validateScalar(v, `${where} [${i}]`));
    } else if (typeof operand !== 'boolean') throw invalid(`${where} must be true or false`);
  }
}

/**
 * Checks a filter and returns it (`undefined` is `{}`). Anything outside the documented language is
 * INVALID_ARGUMENT: unknown operators, object or array operands, `$and`/`$or` that are not arrays of filters,
 * `$in`/`$nin` that are not arrays, bad paths.
 */
export function validateFilter(filter: unknown, what = 'filter'): Filter {
  if (filter === undefined) return {};
  if (!isPlainObject(filter)) throw invalid(`${what} must be a plain object`);
  for (const [key, value] of Object.entries(filter)) {
    if (value === undefined) throw invalid(`${what} has an undefined value at ${quote(key)}`);
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(value)) throw invalid(`${what}.${key} must be an array of filters`);
      value.forEach((f, i) => {
        if (!isPlainObject(f)) throw invalid(`${what}.${key}[${i}] must be a filter object`);
        validateFilter(f, `${what}.${key}[${i}]`);
      });
      continue;
    }
    if (key.startsWith('$')) throw invalid(`unknown filter operator ${quote(key)} at the top of ${what}`);
    validatePath(key, `${what} path`);
    if (isPlainObject(value)) validateOperators(key, value);
    else validateScalar(value, `${what} value at ${quote(key)}`);
  }
  return filter as Filter;
}

/**
 * The value at a dotted path: `_id` gives the id; otherwise the walk goes through objects only, and a missing
 * step (or a step into an array or a scalar) gives `undefined`.
 */
export function valueAt(id: string, data: JsonObject, path: string): JsonValue | undefined {
  if (path === ID_PATH) return id;
  let current: JsonValue | undefined = data;
  for (const segment of path.split('.')) {
    if (typeof current !== 'object' || current === null || Array.isArray(current)) return undefined;
    if (!Object.prototype.hasOwnProperty.call(current, segment)) return undefined;
    current = current[segment];
  }
  return current;
}

/**
 * Compares two strings by Unicode code point (JavaScript's `<` compares UTF-16 code units, which puts
 * U+E000–U+FFFF after astral characters; SQL BINARY/utf8mb4_bin and MongoDB order by code point).
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

// At the first differing code unit, surrogates (astral characters) must rank above U+E000–U+FFFF.
function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

function scalarEquals(value: JsonValue | undefined, operand: JsonPrimitive): boolean {
  if (value === undefined) return operand === null;
  if (Array.isArray(value)) return value.some((element) => element === operand);
  return value === operand;
}

function rangeHolds(value: JsonValue | undefined, op: string, operand: string | number): boolean {
  if (typeof value !== typeof operand) return false;
  const c =
    typeof operand === 'number' ? (value as number) - operand : compareCodePoints(value as string, operand);
  switch (op) {
    case '$gt':
      return c > 0;
    case '$gte':
      return c >= 0;
    case '$lt':
      return c < 0;
    default:
      return c <= 0;
  }
}

function operatorHolds(value: JsonValue | undefined, op: string, operand: unknown): boolean {
  switch (op) {
    case '$eq':
      return scalarEquals(value, operand as JsonPrimitive);
    case '$ne':
      return !scalarEquals(value, operand as JsonPrimitive);
    case '$in':
      return (operand as JsonPrimitive[]).some((x) => scalarEquals(value, x));
    case '$nin':
      return !(operand as JsonPrimitive[]).some((x) => scalarEquals(value, x));
    case '$exists':
      return (value !== undefined) === operand;
    default:
      return rangeHolds(value, op, operand as string | number);
  }
}

/**
 * The reference evaluator: whether the document `(id, data)` matches a validated filter.
 */
export function matchesFilter(filter: Filter, id: string, data: JsonObject): boolean {
  for (const [key, condition] of Object.entries(filter)) {
    if (key === '$and') {
      if (!(condition as Filter[]).every((f) => matchesFilter(f, id, data))) return false;
    } else if (key === '$or') {
      if (!(condition as Filter[]).some((f) => matchesFilter(f, id, data))) return false;
    } else {
      const value = valueAt(id, data, key);
      if (isPlainObject(condition)) {
        for (const [op, operand] of Object.entries(condition as FieldOperators)) {
          if (!operatorHolds(value, op, operand)) return false;
        }
      } else if (!scalarEquals(value, condition as JsonPrimitive)) return false;
    }
  }
  return true;
}

/** One field condition in normalised form, for adapters that translate filters. */
export type FieldCondition = readonly [op: keyof FieldOperators, operand: unknown];

/**
 * Splits a validated filter entry's condition into operator/operand pairs (a bare value is `$eq`).
 */
export function fieldConditions(condition: unknown): FieldCondition[] {
  if (isPlainObject(condition)) return Object.entries(condition) as FieldCondition[];
  return [['$eq', condition]];
}
