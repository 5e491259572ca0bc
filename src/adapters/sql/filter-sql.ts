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
import type { DriverFind, FieldOperators, Filter } from '../../ports/documents.js';
import { fieldConditions, ID_PATH, INDEX_SEGMENT, regexPrefix, typeRank, type JsonTypeName } from '../../driver/index.js';

/** The JSON type of a scalar operand, as the dialect compares it. */
export type ScalarKind = 'null' | 'number' | 'string' | 'boolean';

/** A piece of SQL with its `?` parameters in order. */
export interface SqlFragment {
  /** The SQL text. */
  readonly sql: string;
  /** The values of its `?` placeholders. */
  readonly params: readonly unknown[];
}

/** A step of a JSON path: an object key, or an array index. */
export type PathStep = string | number;

/**
 * Where a JSON value is: an SQL expression of a JSON document (the data column, or an array element being
 * walked) and a path inside it (empty: the document itself). A missing value reads as SQL NULL.
 */
export interface JsonRef {
  /** The document: {@link SqlDialect.document}, {@link SqlDialect.elementDoc} or {@link SqlDialect.elementObject}. */
  readonly doc: string;
  /** The steps from the document to the value. */
  readonly path: readonly PathStep[];
}

/**
 * What differs between SQL engines: JSON access, type tests, array elements and value encoding. The
 * translator builds MongoDB's path semantics (walking into arrays, any element matching) out of these: a
 * new dialect implements each for a {@link JsonRef} and for an array element row named by an alias.
 */
export interface SqlDialect {
  /** The id column as SQL (compared by code point). */
  readonly idColumn: string;
  /** The stored document's JSON (the data column). */
  readonly document: string;
  /** The null-safe equality operator (`IS` in SQLite, `<=>` in MySQL). */
  readonly nullSafeEq: string;
  /** A boolean expression: the value at `ref` is a JSON scalar of `kind` (null: JSON null only). */
  isKind(ref: JsonRef, kind: ScalarKind): string;
  /** A boolean expression: something (even JSON null) is present at `ref`. */
  exists(ref: JsonRef): string;
  /** A boolean expression: the value at `ref` is an array. */
  isArray(ref: JsonRef): string;
  /** A boolean expression: the value at `ref` is present and of one of these JSON types. */
  typeIn(ref: JsonRef, names: readonly JsonTypeName[]): string;
  /** The number of elements of the array at `ref`. */
  arrayLength(ref: JsonRef): string;
  /** A boolean expression with its parameters: the string `expr` (as {@link SqlDialect.value} gives it) starts with `prefix`. */
  startsWith(expr: string, prefix: string): SqlFragment;
  /**
   * The value at `ref`, comparable with {@link SqlDialect.param} of the same kind (numbers numerically,
   * strings by code point, booleans as stored), assuming the value has that kind.
   */
  value(ref: JsonRef, kind: Exclude<ScalarKind, 'null'>): string;
  /** The parameter to compare with {@link SqlDialect.value}. */
  param(value: string | number | boolean): unknown;
  /**
   * A boolean expression with its parameters: `expr` (a value of `kind` as {@link SqlDialect.value} or
   * {@link SqlDialect.elementValue} gives it) is one of `values`, tested as one set however long the list
   * (SQLite: a JSON array parameter read by `json_each`; MySQL: an `IN` list of constants, which the
   * server sorts once and binary-searches).
   */
  memberOf(expr: string, kind: Exclude<ScalarKind, 'null'>, values: readonly (string | number | boolean)[]): SqlFragment;
  /** A FROM item: one row per element of the array at `ref`, named `alias` (the translator uses it only where `ref` is an array). */
  elements(ref: JsonRef, alias: string): string;
  /** A boolean expression: the element row `alias` is a JSON scalar of `kind`. */
  elementIsKind(alias: string, kind: ScalarKind): string;
  /** A boolean expression: the element row `alias` is of one of these JSON types. */
  elementTypeIn(alias: string, names: readonly JsonTypeName[]): string;
  /** The value of the element row `alias`, comparable as {@link SqlDialect.value}, assuming it has that kind. */
  elementValue(alias: string, kind: Exclude<ScalarKind, 'null'>): string;
  /** The element row `alias` as a JSON document (of any type) for a {@link JsonRef}. */
  elementDoc(alias: string): string;
  /** The element row `alias` as a JSON document for a {@link JsonRef} when it is an object (else anything whose keys read as missing). */
  elementObject(alias: string): string;
  /**
   * Optional, for a cheaper walk into an array's object elements: a condition that the element row `alias`
   * is an object, and its JSON as a document for a {@link JsonRef}, read only where the condition holds
   * (SQLite's `elementObject` must read as missing for any element, which costs a parse per read).
   */
  objectElement?(alias: string): { readonly is: string; readonly doc: string };
  /** The remainder of the number `expr` truncated toward zero, divided by the literal integer `divisor` (sign of the dividend). */
  truncatedMod(expr: string, divisor: number): string;
  /**
   * The sort rank of the value at `ref`, known not to be an array, as `typeRank` gives it (1 null, 2 number,
   * 3 string, 4 object, 6 boolean), or `nothing` when it is missing.
   */
  sortRank(ref: JsonRef, nothing: number): string;
  /** The columns that order values of one rank at `ref` (known not to be an array), NULL where they do not apply. */
  sortValues(ref: JsonRef): readonly string[];
  /** {@link SqlDialect.sortRank} of the element row `alias` (5 for an array). */
  elementSortRank(alias: string): string;
  /** {@link SqlDialect.sortValues} of the element row `alias`. */
  elementSortValues(alias: string): readonly string[];
  /** The values of the sort columns (rank, then {@link SqlDialect.sortValues}) for a keyset position's sort key. */
  sortParams(value: unknown): readonly unknown[];
  /**
   * Optional, for a cheaper walk: the rows of the value at `ref`, named `alias` and read with the element
   * methods, whatever its type (see {@link ChildRows}). With it the translator walks a path of the stored
   * document in one pass over its children rather than asking the value's type first, and tests a value
   * inside an array's elements together with its own elements.
   */
  children?(ref: JsonRef, alias: string): ChildRows;
  /**
   * Optional, for a cheaper equality on a dotted path: a boolean expression with its parameters, true when
   * one of the values the path `segments` (keys only, at least two) reaches in the stored document, or one
   * of their elements where a value is an array, equals one of `values` with the same JSON type; MongoDB's
   * walk (an array on the way: each of its object elements). Undefined where the dialect cannot say it.
   * `arrays(k)` is false when no stored document ever held an array at the first `k` segments: the routes
   * through such an array (and into such a value's elements, for `k` = all) can be left out.
   */
  reachesAny?(segments: readonly string[], values: readonly (string | number | boolean)[], arrays: (depth: number) => boolean): SqlFragment | undefined;
}

/** The rows of a JSON value ({@link SqlDialect.children}): each element of an array, each member of an object, or the scalar itself. */
export interface ChildRows {
  /** The FROM item. */
  readonly from: string;
  /** A condition: the row is an element of an array. */
  readonly element: string;
  /** A condition: the row is the member `key` of an object. */
  readonly member: (key: string) => string;
  /** A condition: the row is an element of an array or the scalar itself, not a member of an object. */
  readonly notMember: string;
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

/**
 * What a path reaches, for one operator: `any(test)` holds when `test` holds for a reached value,
 * `missing()` when the path counts as null (see the reference evaluator's `Reached`); `whole` when the
 * values are compared as they are, without searching an array's elements (an `$elemMatch` element).
 */
interface Reach {
  readonly any: (test: (ref: JsonRef) => string) => string;
  readonly missing: () => string;
  readonly whole: boolean;
  /** The path's segments when it starts at the stored document's root (for {@link SqlDialect.reachesAny}). */
  readonly segments?: readonly string[];
}

const EXISTS_ELEMENT = (from: string, where: string): string => `EXISTS (SELECT 1 FROM ${from} WHERE ${where})`;

/** What a driver knows about a collection's stored documents, which lets the translation skip work. */
export interface FilterContext {
  /**
   * A condition that is false when no stored document holds an array at `path` (steps from the document's
   * root), or undefined when that is not known. It must not depend on the row (an uncorrelated subquery
   * over an index, which the engine evaluates once per statement) and takes no parameters: each arm that
   * walks an array at `path` starts with it, so where no document has one the arm costs nothing per row.
   */
  readonly arrayAt?: (path: readonly PathStep[]) => string | undefined;
  /**
   * True when no stored document has ever held an array at the key path `path` (array positions left out:
   * `a.b` covers `a.b`, `a[3].b` and `a[0][1].b`), per the collection's record of array paths: the
   * translation then writes no array arm there at all. A translation that relied on it says so
   * ({@link FilterSql.reliesOnRecord}); the driver must then check, in the statement that runs it, that the
   * record has not grown since (see the sqlite and mysql documents drivers).
   */
  readonly neverArray?: (path: readonly string[]) => boolean;
}

/** A translated filter. */
export interface FilterSql extends SqlFragment {
  /** Some array arm was left out on the word of {@link FilterContext.neverArray}. */
  readonly reliesOnRecord: boolean;
}

class Translator {
  readonly params: unknown[] = [];
  readonly #d: SqlDialect;
  readonly #context: FilterContext;
  /** The key path in the stored document of an element's JSON (see {@link Translator.#keyPath}), by its SQL. */
  readonly #elementPaths = new Map<string, readonly string[]>();
  #aliases = 0;
  /** Some arm was left out on the word of the context's record (see {@link FilterContext.neverArray}). */
  reliesOnRecord = false;

  constructor(dialect: SqlDialect, context: FilterContext) {
    this.#d = dialect;
    this.#context = context;
  }

  /**
   * The key path of `ref` in the stored document, array positions left out, or undefined when `ref` is in
   * something else (an `$elemMatch` element).
   */
  #keyPath(ref: JsonRef): readonly string[] | undefined {
    const base = ref.doc === this.#d.document ? [] : this.#elementPaths.get(ref.doc);
    if (base === undefined) return undefined;
    const keys = [...base];
    for (const s of ref.path) if (typeof s === 'string') keys.push(s);
    return keys;
  }

  /** No stored document ever held an array at `ref` (per the context's record); noted when relied on. */
  #neverArray(ref: JsonRef): boolean {
    const never = this.#context.neverArray;
    if (never === undefined) return false;
    const path = this.#keyPath(ref);
    if (path === undefined || path.length === 0 || !never(path)) return false;
    this.reliesOnRecord = true;
    return true;
  }

  /** Where an element's JSON (`doc`, of the array at `array`) sits in the stored document, for {@link Translator.#keyPath}. */
  #element(doc: string, array: JsonRef, key?: string): string {
    const path = this.#keyPath(array);
    if (path !== undefined) this.#elementPaths.set(doc, key === undefined ? path : [...path, key]);
    return doc;
  }

  /** {@link SqlDialect.isArray}, after the context's guard when `ref` is in the stored document. */
  #isArray(ref: JsonRef): string {
    if (this.#neverArray(ref)) return '1=0';
    const guard = ref.doc === this.#d.document ? this.#context.arrayAt?.(ref.path) : undefined;
    return guard === undefined ? this.#d.isArray(ref) : `${guard} AND ${this.#d.isArray(ref)}`;
  }

  #p(value: unknown): string {
    this.params.push(value);
    return '?';
  }

  #alias(): string {
    return `e${++this.#aliases}`;
  }

  /** The filter on the object at `root` (the document, or an `$elemMatch` element); `_id` only at the top. */
  filter(filter: Filter, root: JsonRef): string {
    const fromTop = root.doc === this.#d.document && root.path.length === 0;
    const parts: string[] = [];
    for (const [key, condition] of Object.entries(filter)) {
      if (key === '$and') {
        const subs = (condition as Filter[]).map((f) => this.filter(f, root));
        parts.push(subs.length === 0 ? '1=1' : balanced(subs, 'AND'));
      } else if (key === '$or') {
        const subs = (condition as Filter[]).map((f) => this.filter(f, root));
        parts.push(subs.length === 0 ? '1=0' : balanced(subs, 'OR'));
      } else if (fromTop && key === ID_PATH) {
        for (const [op, operand] of fieldConditions(condition)) parts.push(this.#idCondition(op, operand));
      } else {
        const segments = key.split('.');
        const reach: Reach = { any: (test) => this.#routes(root, segments, 0, test), missing: () => this.#missing(root, segments, 0), whole: false, ...(fromTop ? { segments } : {}) };
        for (const [op, operand] of fieldConditions(condition)) parts.push(this.#condition(op, operand, reach));
      }
    }
    return parts.length === 0 ? '1=1' : balanced(parts, 'AND');
  }

  /** One operator on what a path reaches. Negations negate the whole. */
  #condition(op: string, operand: unknown, reach: Reach): string {
    const { any, whole } = reach;
    switch (op) {
      case '$ne':
        return not(this.#condition('$eq', operand, reach));
      case '$nin':
        return not(this.#condition('$in', operand, reach));
      case '$not':
        return not(balanced(fieldConditions(operand).map(([o, x]) => this.#condition(o, x, reach)), 'AND'));
      case '$exists': {
        const present = any((ref) => this.#d.exists(ref));
        return operand === true ? present : not(present);
      }
      case '$all': {
        const values = operand as JsonPrimitive[];
        return values.length === 0 ? '1=0' : balanced(values.map((v) => this.#condition('$eq', v, reach)), 'AND');
      }
      case '$eq':
      case '$in': {
        const values = op === '$eq' ? [operand as JsonPrimitive] : (operand as JsonPrimitive[]);
        if (values.length === 0) return '1=0';
        if (reach.segments !== undefined && reach.segments.length > 1 && !values.includes(null)) {
          const segments = reach.segments;
          const arrays = (depth: number): boolean => !this.#neverArray({ doc: this.#d.document, path: segments.slice(0, depth) });
          const reached = this.#d.reachesAny?.(segments, values as (string | number | boolean)[], arrays);
          if (reached !== undefined) return this.#fragment(reached);
        }
        const reached = any((ref) => this.#in(ref, values, whole));
        return values.includes(null) ? `(${reach.missing()}) OR (${reached})` : reached;
      }
      case '$size':
        return any((ref) => `${this.#isArray(ref)} AND ${this.#d.arrayLength(ref)} = ${this.#p(operand)}`);
      case '$type': {
        const names = operand as JsonTypeName[];
        return any((ref) => {
          if (whole) return this.#d.typeIn(ref, names);
          const alias = this.#alias();
          return `(${this.#d.typeIn(ref, names)}) OR (${this.#isArray(ref)} AND ${EXISTS_ELEMENT(this.#d.elements(ref, alias), this.#d.elementTypeIn(alias, names))})`;
        });
      }
      case '$regex': {
        const prefix = regexPrefix(operand as string) ?? '';
        return any((ref) => this.#scalarOrElement(ref, 'string', whole, (v) => this.#fragment(this.#d.startsWith(v, prefix))));
      }
      case '$mod': {
        const [divisor, remainder] = operand as [number, number];
        return any((ref) => this.#scalarOrElement(ref, 'number', whole, (v) => `${this.#d.truncatedMod(v, divisor)} = ${this.#p(remainder)}`));
      }
      case '$elemMatch':
        return any((ref) => {
          const alias = this.#alias();
          return `${this.#isArray(ref)} AND ${EXISTS_ELEMENT(this.#d.elements(ref, alias), this.#elementMatches(alias, operand as FieldOperators | Filter))}`;
        });
      default: {
        const kind = typeof operand as 'string' | 'number';
        const sqlOp = RANGE_SQL[op] ?? '=';
        return any((ref) => this.#scalarOrElement(ref, kind, whole, (v) => `${v} ${sqlOp} ${this.#p(this.#d.param(operand as string | number))}`));
      }
    }
  }

  /** An `$elemMatch` operand on the element row `alias`: operators on the element, or a filter on an object element. */
  #elementMatches(alias: string, condition: FieldOperators | Filter): string {
    const d = this.#d;
    const keys = Object.keys(condition);
    if (keys.every((k) => k.startsWith('$') && k !== '$and' && k !== '$or')) {
      const element: JsonRef = { doc: d.elementDoc(alias), path: [] };
      const reach: Reach = { any: (test) => test(element), missing: () => '1=0', whole: true };
      return balanced(fieldConditions(condition).map(([op, operand]) => this.#condition(op, operand, reach)), 'AND');
    }
    return `${d.elementTypeIn(alias, ['object'])} AND (${this.filter(condition as Filter, { doc: d.elementObject(alias), path: [] })})`;
  }

  /** Pushes a fragment's parameters and gives its SQL. */
  #fragment(fragment: SqlFragment): string {
    this.params.push(...fragment.params);
    return fragment.sql;
  }

  /**
   * The value at `ref` is a scalar of `kind` for which `test` holds, or (unless `whole`) an array with such
   * an element. The test comes before the type check: one JSON read fewer for most documents.
   */
  #scalarOrElement(ref: JsonRef, kind: Exclude<ScalarKind, 'null'>, whole: boolean, test: (value: string) => string): string {
    const d = this.#d;
    // `test` adds its parameters: each arm calls it once, in the order of the SQL.
    const scalar = (): string => `(${test(d.value(ref, kind))} AND ${d.isKind(ref, kind)})`;
    if (whole || this.#neverArray(ref)) return scalar();
    if (ref.doc !== d.document && d.children !== undefined) {
      // Inside an element: one pass over the value's rows (itself, or its elements) reads the small
      // element once. On the stored document the two reads below are cheaper: engines cache its parse.
      const alias = this.#alias();
      const rows = d.children(ref, alias);
      return EXISTS_ELEMENT(rows.from, `${rows.notMember} AND ${d.elementIsKind(alias, kind)} AND ${test(d.elementValue(alias, kind))}`);
    }
    const first = scalar();
    const alias = this.#alias();
    const element = `(${this.#isArray(ref)} AND ${EXISTS_ELEMENT(d.elements(ref, alias), `${d.elementIsKind(alias, kind)} AND ${test(d.elementValue(alias, kind))}`)})`;
    return `${first} OR ${element}`;
  }

  /**
   * The routes a path may take from `ref` (an object) after `i` segments, each ending in `test`: MongoDB's
   * walk in SQL. Every step after the first may meet an object (a key), an array and an integer segment (an
   * index), or an array and a key (every object element), so a path of k segments has at most 2^(k-1) arms.
   * The first step is always on an object. A key of an array reads as missing in every dialect, where every
   * test is false, so the value's type picks one arm (a `CASE`): a document pays for the route it takes,
   * not for every route. The array arm is written first, as its parameters come first.
   */
  #routes(ref: JsonRef, segments: readonly string[], i: number, test: (ref: JsonRef) => string): string {
    if (i === segments.length) return test(ref);
    const segment = segments[i] as string;
    if (i === 0) return this.#routes(step(ref, segment), segments, i + 1, test);
    const d = this.#d;
    // Never an array here: the value is an object or nothing, and only the key route can reach anything.
    if (this.#neverArray(ref)) return this.#routes(step(ref, segment), segments, i + 1, test);
    if (d.children !== undefined && ref.doc === d.document && !INDEX_SEGMENT.test(segment) && this.#context.arrayAt?.(ref.path) === undefined) {
      // One pass over the value's rows: an array's object elements, or the object's member `segment`. The
      // two kinds of row exclude each other, so an OR of guarded arms reads one arm per row, as a CASE
      // would; SQLite runs the OR ~1.4× faster (bench/documents-filter.bench.ts, dotted path).
      const alias = this.#alias();
      const rows = d.children(ref, alias);
      const inElement = this.#inObjectElement(alias, ref, segments, i, test);
      const inMember = this.#routes({ doc: this.#element(d.elementDoc(alias), ref, segment), path: [] }, segments, i + 1, test);
      return EXISTS_ELEMENT(rows.from, `(${rows.element} AND (${inElement})) OR (${rows.member(segment)} AND (${inMember}))`);
    }
    const isArray = this.#isArray(ref);
    let inArray: string;
    if (INDEX_SEGMENT.test(segment)) inArray = this.#routes(step(ref, Number(segment)), segments, i + 1, test);
    else {
      const alias = this.#alias();
      inArray = EXISTS_ELEMENT(d.elements(ref, alias), this.#inObjectElement(alias, ref, segments, i, test));
    }
    return `CASE WHEN ${isArray} THEN ${inArray} ELSE ${this.#routes(step(ref, segment), segments, i + 1, test)} END`;
  }

  /** The routes of the path's segment `i` (a key) and on in the element row `alias` of the array at `array`, when an object. */
  #inObjectElement(alias: string, array: JsonRef, segments: readonly string[], i: number, test: (ref: JsonRef) => string): string {
    const d = this.#d;
    const path = [segments[i] as string];
    const object = d.objectElement?.(alias);
    if (object === undefined) return this.#routes({ doc: this.#element(d.elementObject(alias), array), path }, segments, i + 1, test);
    // Positive: an element that is not an object reaches nothing, so the test is false there.
    return `${object.is} AND (${this.#routes({ doc: this.#element(object.doc, array), path }, segments, i + 1, test)})`;
  }

  /**
   * The path from `ref` after `i` segments ends on nothing without going through an array's elements: where
   * `null` matches. The walk is one route, decided by each value's type.
   */
  #missing(ref: JsonRef, segments: readonly string[], i: number): string {
    if (i === segments.length) return not(this.#d.exists(ref));
    const segment = segments[i] as string;
    const byKey = this.#missing(step(ref, segment), segments, i + 1);
    if (i === 0 || this.#neverArray(ref)) return byKey;
    const isArray = this.#d.isArray(ref);
    if (INDEX_SEGMENT.test(segment)) return `CASE WHEN ${isArray} THEN ${this.#missing(step(ref, Number(segment)), segments, i + 1)} ELSE ${byKey} END`;
    return `${not(isArray)} AND (${byKey})`;
  }

  /** The value at `ref` (or, unless `whole`, one of its elements) equals one of `values` (null: is null). */
  #in(ref: JsonRef, values: readonly JsonPrimitive[], whole: boolean): string {
    const d = this.#d;
    const arms: string[] = [];
    if (values.includes(null)) {
      const alias = this.#alias();
      arms.push(whole ? d.isKind(ref, 'null') : `${d.isKind(ref, 'null')} OR (${this.#isArray(ref)} AND ${EXISTS_ELEMENT(d.elements(ref, alias), d.elementIsKind(alias, 'null'))})`);
    }
    for (const kind of ['number', 'string', 'boolean'] as const) {
      const ofKind = values.filter((v) => typeof v === kind) as (string | number | boolean)[];
      if (ofKind.length === 0) continue;
      // A long list is one membership test against a set (for the scalar and for array elements); a short
      // one is inline equalities.
      const test =
        ofKind.length > INLINE_VALUES
          ? (v: string): string => this.#fragment(d.memberOf(v, kind, ofKind))
          : (v: string): string => (ofKind.length === 1 ? `${v} = ${this.#p(d.param(ofKind[0] as string | number | boolean))}` : `${v} IN (${ofKind.map((x) => this.#p(d.param(x))).join(', ')})`);
      arms.push(this.#scalarOrElement(ref, kind, whole, test));
    }
    return balanced(arms, 'OR');
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
        if (ids.length > INLINE_VALUES) inList = this.#fragment(this.#d.memberOf(id, 'string', ids));
        else if (ids.length > 0) inList = `${id} IN (${ids.map((v) => this.#p(v)).join(', ')})`;
        return op === '$in' ? inList : not(inList);
      }
      case '$exists':
        return operand === true ? '1=1' : '1=0';
      case '$size':
      case '$elemMatch':
        return '1=0';
      case '$all': {
        const ids = new Set(operand as unknown[]);
        return ids.size === 1 && typeof [...ids][0] === 'string' ? `${id} = ${this.#p([...ids][0])}` : '1=0';
      }
      case '$not':
        return not(balanced(fieldConditions(operand).map(([o, x]) => this.#idCondition(o, x)), 'AND'));
      case '$type':
        return (operand as JsonTypeName[]).includes('string') ? '1=1' : '1=0';
      case '$regex':
        return this.#fragment(this.#d.startsWith(id, regexPrefix(operand as string) ?? ''));
      case '$mod':
        return '1=0';
      default:
        return typeof operand === 'string' ? `${id} ${RANGE_SQL[op] ?? '='} ${this.#p(operand)}` : '1=0';
    }
  }
}

/** `ref` one step further. */
function step(ref: JsonRef, next: PathStep): JsonRef {
  return { doc: ref.doc, path: [...ref.path, next] };
}

const RANGE_SQL: Readonly<Record<string, string>> = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' };

const NO_CONTEXT: FilterContext = Object.freeze({});

/** Translates a validated filter to a boolean SQL expression; `context` lets it skip what cannot match. */
export function filterToSql(filter: Filter, dialect: SqlDialect, context: FilterContext = NO_CONTEXT): FilterSql {
  if (isEmptyFilter(filter)) return MATCH_ALL;
  const t = new Translator(dialect, context);
  const sql = t.filter(filter, { doc: dialect.document, path: [] });
  return { sql, params: t.params, reliesOnRecord: t.reliesOnRecord };
}

const MATCH_ALL: FilterSql = Object.freeze({ sql: '1=1', params: Object.freeze([]), reliesOnRecord: false });

/** A top-level `$eq` or `$in` on one field, split off a filter so that an adapter can drive a query by an index. */
export interface FieldEquality {
  /** The field's path (never `_id`). */
  readonly path: string;
  /** The values the field must equal (or, for an array, contain one of): distinct, without null. */
  readonly values: readonly (string | number | boolean)[];
  /** The rest of the filter: the original is exactly `path $in values` AND `rest`. */
  readonly rest: Filter;
}

/** Which equalities {@link splitEquality} may split off. */
export interface SplitEqualityOptions {
  /** The most values an `$in` may have. @defaultValue 8 */
  readonly maxValues?: number;
  /** Whether a dotted path may be split off (see {@link splitEquality}). @defaultValue false */
  readonly dotted?: boolean;
}

/**
 * Finds a top-level `$eq` (or `$in` of at most `maxValues` values) without null on a path for which
 * `usable` holds, and splits it off the filter. Undefined when there is none. A dotted path is considered
 * only with `dotted`: it may reach its values through an array (`a.b` in `{a: [{b: 1}]}`), which an index
 * on the value at `$.a.b` does not see unless it also records the types on the way (see `sqliteIndexArms`).
 */
export function splitEquality(filter: Filter, usable: (path: string) => boolean, { maxValues = 8, dotted = false }: SplitEqualityOptions = {}): FieldEquality | undefined {
  // Called on every find: no spread, `delete` or Map on the common path (one field, one value).
  for (const key of Object.keys(filter)) {
    if (key === '$and' || key === '$or' || key === ID_PATH || (!dotted && key.includes('.')) || !usable(key)) continue;
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

/**
 * The columns of a path's sort key (rank, then the dialect's value columns), as the reference's `sortKey`:
 * the smallest (ascending) or largest (descending) of the values the path reaches and of the elements of the
 * arrays among them. The routes are the filter's, but here only one is taken, by the values' types: an
 * array on the way is a subquery over its elements that keeps the best key. Inside one, an element that
 * reaches nothing ranks `nothing` (after every key in that order), so it is never picked over one that
 * reaches something; nothing at all is null.
 */
function sortKeyColumns(d: SqlDialect, path: string, direction: 1 | -1): string[] {
  const desc = direction === -1;
  const dir = desc ? ' DESC' : '';
  const nothingInside = desc ? -1 : 7;
  let aliases = 0;
  const columns = (ref: JsonRef, segments: readonly string[], i: number): string[] => {
    // Below an array's elements the walk is on an element object, never on the stored document.
    const inside = ref.doc !== d.document;
    if (i === segments.length) {
      const alias = `s${++aliases}`;
      const element = [d.elementSortRank(alias), ...d.elementSortValues(alias)];
      const order = element.map((c) => `${c}${dir}`).join(', ');
      return [d.sortRank(ref, inside ? nothingInside : 1), ...d.sortValues(ref)].map((direct, k) => {
        const best = `(SELECT ${element[k]} FROM ${d.elements(ref, alias)} ORDER BY ${order} LIMIT 1)`;
        return `CASE WHEN ${d.isArray(ref)} THEN CASE WHEN ${d.arrayLength(ref)} = 0 THEN ${k === 0 ? '0' : 'NULL'} ELSE ${best} END ELSE ${direct} END`;
      });
    }
    const segment = segments[i] as string;
    const byKey = columns(step(ref, segment), segments, i + 1);
    if (i === 0) return byKey;
    if (INDEX_SEGMENT.test(segment)) {
      const byIndex = columns(step(ref, Number(segment)), segments, i + 1);
      return byKey.map((c, k) => `CASE WHEN ${d.isArray(ref)} THEN ${byIndex[k]} ELSE ${c} END`);
    }
    const alias = `s${++aliases}`;
    const inElements = columns({ doc: d.elementObject(alias), path: [segment] }, segments, i + 1);
    const order = inElements.map((c) => `${c}${dir}`).join(', ');
    return byKey.map((c, k) => {
      const best = `(SELECT ${inElements[k]} FROM ${d.elements(ref, alias)} ORDER BY ${order} LIMIT 1)`;
      const picked = k === 0 ? `COALESCE(NULLIF(${best}, ${nothingInside}), ${inside ? nothingInside : 1})` : best;
      return `CASE WHEN ${d.isArray(ref)} THEN ${picked} ELSE ${c} END`;
    });
  };
  return columns({ doc: d.document, path: [] }, path.split('.'), 0);
}

/** The ORDER BY list and the keyset condition ("strictly after") of a find. */
export function sortToSql(query: Pick<DriverFind, 'sort' | 'after'>, dialect: SqlDialect): { orderBy: string; after: SqlFragment | undefined } {
  if (query.sort.length === 0 && query.after === undefined) return { orderBy: dialect.idColumn, after: undefined };
  const columns: { sql: string; desc: boolean }[] = [];
  for (const [path, direction] of query.sort) {
    const exprs = path === ID_PATH ? [dialect.idColumn] : sortKeyColumns(dialect, path, direction);
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
