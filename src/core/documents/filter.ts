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

const FIELD_OPERATORS: ReadonlySet<string> = new Set(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists', '$size', '$all', '$not', '$regex', '$type', '$elemMatch', '$mod']);

/** The JSON types `$type` names (MongoDB's aliases for them). */
export type JsonTypeName = 'number' | 'string' | 'bool' | 'null' | 'object' | 'array';

const TYPE_NAMES: ReadonlySet<string> = new Set<JsonTypeName>(['number', 'string', 'bool', 'null', 'object', 'array']);

/** The {@link JsonTypeName} of a present value. */
export function jsonTypeName(value: JsonValue): JsonTypeName {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  switch (typeof value) {
    case 'number':
      return 'number';
    case 'string':
      return 'string';
    case 'boolean':
      return 'bool';
    default:
      return 'object';
  }
}

/** The safe subset of `$regex`: `^` then literal characters, where a metacharacter is escaped with `\`. */
const PREFIX_PATTERN = /^\^(?:[^.^$*+?()[\]{}|\\]|\\[.^$*+?()[\]{}|\\/-])*$/;

/**
 * The literal prefix of a `$regex` pattern of the safe subset (`^` then literal characters, metacharacters
 * escaped), or undefined for any other pattern.
 */
export function regexPrefix(pattern: string): string | undefined {
  if (!PREFIX_PATTERN.test(pattern)) return undefined;
  return pattern.slice(1).replace(/\\(.)/g, '$1');
}
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
 * The deepest a filter may nest: `$and`/`$or` inside `$and`/`$or` (and a field's operator object) each add a
 * level. Deeper is INVALID_ARGUMENT, so no adapter (nor the reference evaluator) recurses without bound.
 */
export const MAX_FILTER_DEPTH = 32;

/**
 * The most terms one filter may hold: every path, operator, `$and`/`$or` branch and listed value counts one.
 * More is RESOURCE_EXHAUSTED: it bounds the memory and work one call may cost a server.
 */
export const MAX_FILTER_TERMS = 100_000;

/**
 * Checks a dotted path (in a filter, a sort or an index): non-empty segments that do not start with `$` or
 * `-`, without control characters, quotes or backslashes. `_id` alone addresses the id.
 *
 * A segment may not start with `-` because MariaDB (10.11) cannot address such a key in any JSON path form:
 * `$."-1"` reads as missing, so one backend would answer differently (documents refuse such keys as well).
 *
 * @returns the segments
 */
export function validatePath(path: unknown, what = 'path'): string[] {
  if (typeof path !== 'string' || path === '') throw invalid(`${what} must be a non-empty string`);
  const segments = path.split('.');
  for (const segment of segments) {
    if (segment === '') throw invalid(`${what} ${quote(path)} has an empty segment`);
    if (segment.startsWith('$')) throw invalid(`${what} ${quote(path)} has a segment starting with "$"`);
    if (segment.startsWith('-')) throw invalid(`${what} ${quote(path)} has a segment starting with "-"`);
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

/**
 * Validates a caller's filter into a private copy. Every property of the caller's objects and arrays is
 * read exactly once, so a getter or a Proxy cannot show the checks one key and the translation another.
 */
class FilterCopier {
  #terms = 0;
  readonly #what: string;

  constructor(what: string) {
    this.#what = what;
  }

  #count(n: number): void {
    this.#terms += n;
    if (this.#terms > MAX_FILTER_TERMS) {
      throw new StowageError('RESOURCE_EXHAUSTED', `${this.#what} has more than ${MAX_FILTER_TERMS} terms (paths, operators and listed values)`);
    }
  }

  filter(filter: unknown, what: string, depth: number): Filter {
    if (!isPlainObject(filter)) throw invalid(`${what} must be a plain object`);
    if (depth > MAX_FILTER_DEPTH) throw invalid(`${this.#what} nests deeper than ${MAX_FILTER_DEPTH} levels`);
    const entries: [string, unknown][] = [];
    for (const key of Object.keys(filter)) {
      this.#count(1);
      const value = filter[key];
      if (value === undefined) throw invalid(`${what} has an undefined value at ${quote(key)}`);
      if (key === '$and' || key === '$or') {
        const branches = this.#list(value, `${what}.${key}`, 'an array of filters');
        entries.push([key, branches.map((f, i) => {
          if (!isPlainObject(f)) throw invalid(`${what}.${key}[${i}] must be a filter object`);
          return this.filter(f, `${what}.${key}[${i}]`, depth + 1);
        })]);
        continue;
      }
      if (key.startsWith('$')) throw invalid(`unknown filter operator ${quote(key)} at the top of ${what}`);
      validatePath(key, `${what} path`);
      entries.push([key, isPlainObject(value) ? this.#operators(key, value, depth + 1) : validateScalar(value, `${what} value at ${quote(key)}`)]);
    }
    // fromEntries defines own properties, so even a key such as "__proto__" stays data.
    return Object.fromEntries(entries) as Filter;
  }

  /** A copy of an array operand, its length read once and bounded before anything is copied. */
  #list(value: unknown, where: string, expected: string): unknown[] {
    if (!Array.isArray(value)) throw invalid(`${where} must be ${expected}`);
    const length = value.length;
    this.#count(length);
    const copy = new Array<unknown>(length);
    for (let i = 0; i < length; i++) copy[i] = value[i];
    return copy;
  }

  #operators(path: string, ops: Record<string, unknown>, depth: number): FieldOperators {
    if (depth > MAX_FILTER_DEPTH) throw invalid(`${this.#what} nests deeper than ${MAX_FILTER_DEPTH} levels`);
    const keys = Object.keys(ops);
    if (keys.length === 0) throw invalid(`filter on ${quote(path)} is an empty object (objects cannot be compared)`);
    const entries: [string, unknown][] = [];
    for (const op of keys) {
      this.#count(1);
      const operand = ops[op];
      const where = `filter operand of ${op} on ${quote(path)}`;
      if (!FIELD_OPERATORS.has(op)) {
        throw invalid(
          op.startsWith('$')
            ? `unknown filter operator ${quote(op)} on ${quote(path)}`
            : `filter on ${quote(path)} compares with an object (objects cannot be compared)`,
        );
      }
      if (op === '$eq' || op === '$ne') entries.push([op, validateScalar(operand, where)]);
      else if (RANGE_OPERATORS.has(op)) {
        if (typeof operand !== 'string' && !(typeof operand === 'number' && Number.isFinite(operand))) {
          throw invalid(`${where} must be a string or a finite number`);
        }
        entries.push([op, operand]);
      } else if (op === '$in' || op === '$nin' || op === '$all') {
        entries.push([op, this.#list(operand, where, 'an array').map((v, i) => validateScalar(v, `${where} [${i}]`))]);
      } else if (op === '$size') {
        if (!Number.isSafeInteger(operand) || (operand as number) < 0) throw invalid(`${where} must be a non-negative integer`);
        entries.push([op, operand]);
      } else if (op === '$regex') {
        // Only an anchored literal prefix: it means the same on every backend and cannot backtrack.
        if (typeof operand !== 'string' || regexPrefix(operand) === undefined) {
          throw invalid(`${where} must be an anchored literal prefix such as "^abc" (metacharacters escaped with a backslash)`);
        }
        entries.push([op, operand]);
      } else if (op === '$type') {
        const names = typeof operand === 'string' ? [operand] : this.#list(operand, where, 'a type name or an array of them');
        if (names.length === 0 || !names.every((n) => typeof n === 'string' && TYPE_NAMES.has(n))) {
          throw invalid(`${where} must be one of ${[...TYPE_NAMES].join(', ')} (or an array of them)`);
        }
        entries.push([op, names]);
      } else if (op === '$not') {
        if (!isPlainObject(operand)) throw invalid(`${where} must be an object of operators`);
        entries.push([op, this.#operators(path, operand, depth + 1)]);
      } else if (op === '$elemMatch') {
        entries.push([op, this.#elemMatch(path, operand, where, depth + 1)]);
      } else if (op === '$mod') {
        const pair = this.#list(operand, where, 'a [divisor, remainder] pair');
        const [divisor, remainder] = pair;
        if (pair.length !== 2 || !Number.isSafeInteger(divisor) || !Number.isSafeInteger(remainder) || divisor === 0) {
          throw invalid(`${where} must be a [divisor, remainder] pair of integers, the divisor not 0`);
        }
        entries.push([op, [divisor, remainder]]);
      } else if (typeof operand !== 'boolean') throw invalid(`${where} must be true or false`);
      else entries.push([op, operand]);
    }
    return Object.fromEntries(entries) as FieldOperators;
  }

  /**
   * An `$elemMatch` operand: operators on the element itself (every key an operator), or a filter on an
   * object element (no key an operator but `$and`/`$or`), as MongoDB tells them apart. The id is not in an
   * element, so `_id` is refused there.
   */
  #elemMatch(path: string, operand: unknown, where: string, depth: number): FieldOperators | Filter {
    if (!isPlainObject(operand) || Object.keys(operand).length === 0) throw invalid(`${where} must be a non-empty object of operators or a filter`);
    const keys = Object.keys(operand);
    const isOperator = (k: string): boolean => k.startsWith('$') && k !== '$and' && k !== '$or';
    if (keys.every(isOperator)) return this.#operators(path, operand, depth);
    if (keys.some(isOperator)) throw invalid(`${where} mixes operators with paths`);
    if (keys.includes(ID_PATH)) throw invalid(`${where} names "_id", which is not inside an element`);
    return this.filter(operand, where, depth);
  }
}

/**
 * Checks a filter and returns a private copy of it (`undefined` is `{}`); adapters translate the copy, never
 * the caller's object. Anything outside the documented language is INVALID_ARGUMENT: unknown operators,
 * object or array operands, `$and`/`$or` that are not arrays of filters, `$in`/`$nin` that are not arrays,
 * bad paths, nesting deeper than {@link MAX_FILTER_DEPTH}; more than {@link MAX_FILTER_TERMS} terms is
 * RESOURCE_EXHAUSTED.
 */
export function validateFilter(filter: unknown, what = 'filter'): Filter {
  if (filter === undefined) return {};
  return new FilterCopier(what).filter(filter, what, 1);
}

/**
 * The value at a dotted path as a sort reads it: `_id` gives the id; otherwise the walk goes through objects
 * only, and a missing step (or a step into an array or a scalar) gives `undefined`. Filters walk into arrays
 * (`reach`).
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

/**
 * What a dotted path reaches in a document, as MongoDB's query paths do: through objects key by key; into an
 * array by index where the segment is a non-negative integer; otherwise through every object element of an
 * array (elements that are arrays or scalars are skipped). `missing` says the walk ended on nothing before
 * it went through any array's elements: only then does the path count as null (`{'a.b': null}` matches
 * `{a: 1}` and `{}`, not `{a: [{c: 1}]}`).
 */
export interface Reached {
  /** The values found, in document order. */
  readonly values: JsonValue[];
  /** The walk ended on nothing, outside any array's elements. */
  missing: boolean;
  /** The values are compared whole: an array's elements are not searched (`$elemMatch` on an element). */
  readonly whole?: boolean;
}

/** An array index in a path: a non-negative integer without leading zeros. */
export const INDEX_SEGMENT = /^(?:0|[1-9][0-9]{0,8})$/;

/**
 * How a walk got to a value: straight down keys and indexes, or through an array's elements, where a dead
 * end does not make the path count as null (see {@link Reached}).
 */
type Route = 'direct' | 'throughElements';

function reachFrom(value: JsonValue | undefined, segments: readonly string[], i: number, route: Route, out: Reached): void {
  if (value === undefined) {
    if (route === 'direct') out.missing = true;
    return;
  }
  if (i === segments.length) {
    out.values.push(value);
    return;
  }
  const segment = segments[i] as string;
  if (Array.isArray(value)) {
    if (INDEX_SEGMENT.test(segment)) reachFrom(value[Number(segment)], segments, i + 1, route, out);
    else for (const element of value) if (isPlainObject(element) && Object.prototype.hasOwnProperty.call(element, segment)) reachFrom(element[segment], segments, i + 1, 'throughElements', out);
    return;
  }
  if (isPlainObject(value)) {
    reachFrom(Object.prototype.hasOwnProperty.call(value, segment) ? (value as JsonObject)[segment] : undefined, segments, i + 1, route, out);
    return;
  }
  if (route === 'direct') out.missing = true;
}

/** What the dotted `path` reaches in `data` (see {@link Reached}). */
export function reach(data: JsonObject, path: string): Reached {
  const out: Reached = { values: [], missing: false };
  reachFrom(data, path.split('.'), 0, 'direct', out);
  return out;
}

/** One value compared as it is: the id, or an array element under `$elemMatch` (MongoDB does not search it). */
function wholeValue(value: JsonValue): Reached {
  return { values: [value], missing: false, whole: true };
}

/** A reached value or, for an array not compared whole, one of its elements (one level down) satisfies `test`. */
function anyValue(reached: Reached, test: (v: JsonValue) => boolean): boolean {
  return reached.values.some((value) => test(value) || (reached.whole !== true && Array.isArray(value) && value.some(test)));
}

function scalarEquals(reached: Reached, operand: JsonPrimitive): boolean {
  if (operand === null && reached.missing) return true;
  return anyValue(reached, (v) => v === operand);
}

/** Sets of long `$in`/`$nin` lists, made once per (validated, private) list. */
const LIST_SETS = new WeakMap<readonly JsonPrimitive[], ReadonlySet<JsonPrimitive>>();

/** `$eq` holds for one of `list`: a set lookup for long lists (`===` and Set agree on scalars but NaN, which is not JSON). */
function isIn(reached: Reached, list: readonly JsonPrimitive[]): boolean {
  if (list.length <= 8) return list.some((x) => scalarEquals(reached, x));
  let set = LIST_SETS.get(list);
  if (set === undefined) {
    set = new Set(list);
    LIST_SETS.set(list, set);
  }
  const members = set;
  if (reached.missing && members.has(null)) return true;
  return anyValue(reached, (v) => isScalar(v) && members.has(v));
}

function rangeHolds(value: JsonValue, op: string, operand: string | number): boolean {
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

/** Whether an `$elemMatch` operand holds for one array element. */
function elementMatches(element: JsonValue, condition: FieldOperators | Filter): boolean {
  const keys = Object.keys(condition);
  if (keys.length > 0 && keys.every((k) => k.startsWith('$') && k !== '$and' && k !== '$or')) {
    const one = wholeValue(element);
    return Object.entries(condition as FieldOperators).every(([op, operand]) => operatorHolds(one, op, operand));
  }
  return isPlainObject(element) && matchesData(condition as Filter, undefined, element as JsonObject);
}

function operatorHolds(reached: Reached, op: string, operand: unknown): boolean {
  const any = (test: (v: JsonValue) => boolean): boolean => anyValue(reached, test);
  switch (op) {
    case '$eq':
      return scalarEquals(reached, operand as JsonPrimitive);
    case '$ne':
      return !scalarEquals(reached, operand as JsonPrimitive);
    case '$in':
      return isIn(reached, operand as JsonPrimitive[]);
    case '$nin':
      return !isIn(reached, operand as JsonPrimitive[]);
    case '$exists':
      return (reached.values.length > 0) === operand;
    case '$size':
      return reached.values.some((v) => Array.isArray(v) && v.length === operand);
    case '$all':
      return (operand as JsonPrimitive[]).length > 0 && (operand as JsonPrimitive[]).every((x) => scalarEquals(reached, x));
    case '$not':
      return !Object.entries(operand as FieldOperators).every(([o, x]) => operatorHolds(reached, o, x));
    case '$type': {
      // MongoDB's rule: an array matches its own type and the types of its elements.
      const names = operand as JsonTypeName[];
      return any((v) => names.includes(jsonTypeName(v)));
    }
    case '$regex': {
      const prefix = regexPrefix(operand as string) ?? '';
      return any((v) => typeof v === 'string' && v.startsWith(prefix));
    }
    case '$elemMatch':
      return reached.values.some((v) => Array.isArray(v) && v.some((e) => elementMatches(e, operand as FieldOperators | Filter)));
    case '$mod': {
      // MongoDB truncates the value toward zero; the remainder has the sign of the value (as `%` and SQL's).
      const [divisor, remainder] = operand as [number, number];
      return any((v) => typeof v === 'number' && Math.trunc(v) % divisor === remainder);
    }
    default:
      return any((v) => rangeHolds(v, op, operand as string | number));
  }
}

/** `matchesFilter` on data alone (an `$elemMatch` element, without id) or on a document (with its id). */
function matchesData(filter: Filter, id: string | undefined, data: JsonObject): boolean {
  for (const [key, condition] of Object.entries(filter)) {
    if (key === '$and') {
      if (!(condition as Filter[]).every((f) => matchesData(f, id, data))) return false;
    } else if (key === '$or') {
      if (!(condition as Filter[]).some((f) => matchesData(f, id, data))) return false;
    } else {
      const reached = key === ID_PATH && id !== undefined ? wholeValue(id) : reach(data, key);
      if (isPlainObject(condition)) {
        for (const [op, operand] of Object.entries(condition as FieldOperators)) {
          if (!operatorHolds(reached, op, operand)) return false;
        }
      } else if (!scalarEquals(reached, condition as JsonPrimitive)) return false;
    }
  }
  return true;
}

/**
 * The reference evaluator: whether the document `(id, data)` matches a validated filter.
 */
export function matchesFilter(filter: Filter, id: string, data: JsonObject): boolean {
  return matchesData(filter, id, data);
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
