/**
 * The differential test of the filter language and the sort order: seeded random documents, ≥ 2,000 random
 * filters and ≥ 200 random sorts, on every documents adapter that runs here (mem, sqlite, MariaDB, PostgreSQL), compared
 * with each other (they must agree exactly) and with mingo, an independent implementation of MongoDB's query
 * language. Every difference from mingo must be explained by a deviation of {@link DEVIATIONS} — the list the
 * README's deviation table words — or the test fails.
 *
 * A new seed each run, printed; `STOWAGE_TEST_SEED=<n>` replays one.
 */
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { find as mingoFind, Query } from 'mingo';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryDocumentsDriver } from '../../src/adapters/memory/index.js';
import { mysqlDocumentsScheme } from '../../src/adapters/mysql/index.js';
import { postgresDocumentsScheme } from '../../src/adapters/postgres/index.js';
import { SqliteDocumentsDriver } from '../../src/adapters/sqlite/documents-driver.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';
import { parseUrl } from '../../src/driver/url.js';
import type { JsonObject, JsonPrimitive, JsonValue } from '../../src/ports/common.js';
import type { Collection, DocumentStore, Filter, Sort } from '../../src/ports/documents.js';
import { serviceSuite } from '../support/services.js';
import { prng } from '../hostile/fuzz.js';

const SEED = process.env.STOWAGE_TEST_SEED !== undefined ? Number(process.env.STOWAGE_TEST_SEED) : randomInt(2 ** 31);
console.log(`documents differential test: seed ${SEED} (replay with STOWAGE_TEST_SEED=${SEED})`);

const DOCS = 150;
const FILTERS = 2_000;
const SORTS = 200;

const random = prng(SEED);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const chance = (p: number): boolean => random() < p;

// Keys: plain, numeric-looking (MongoDB reads them as array indexes where the value is an array), with a
// space, an apostrophe and non-ASCII letters.
const KEYS = ['a', 'b', 'n', 's', '0', '1', 'x y', "it's", 'é', 'k'];
const NUMBERS = [-1, 0, 0.5, 1, 2, 2.5, 10, 1e6];
// No character from U+E000 to U+FFFF: mingo orders strings by UTF-16 unit, MongoDB (and Stowage) by code
// point, and the two orders differ only there. Astral characters are in.
const STRINGS = ['', 'a', 'b', 'ab', 'B', 'a b', '1', 'é', 'e\u0301', '\u{1F600}', 'true', 'null'];

function scalar(): JsonPrimitive {
  const r = random();
  if (r < 0.35) return pick(NUMBERS);
  if (r < 0.75) return pick(STRINGS);
  if (r < 0.9) return chance(0.5);
  return null;
}

function value(depth: number): JsonValue {
  const r = random();
  if (depth >= 3 || r < 0.55) return scalar();
  if (r < 0.8) return Array.from({ length: Math.floor(random() * 4) }, () => (chance(0.3) ? value(depth + 1) : scalar()));
  return object(depth + 1);
}

function object(depth: number): JsonObject {
  const out: JsonObject = {};
  const n = Math.floor(random() * (depth === 0 ? 6 : 3)) + (depth === 0 ? 1 : 0);
  for (let i = 0; i < n; i++) out[pick(KEYS)] = value(depth);
  return out;
}

function path(): string {
  const steps = 1 + Math.floor(random() * (chance(0.5) ? 1 : 3));
  return Array.from({ length: steps }, () => pick(KEYS)).join('.');
}

function operand(): JsonPrimitive {
  return scalar();
}

function rangeOperand(): string | number {
  return chance(0.5) ? pick(NUMBERS) : pick(STRINGS);
}

function fieldCondition(nested = false): JsonPrimitive | Record<string, unknown> {
  const r = random();
  if (r < 0.2) return operand();
  const ops: Record<string, unknown> = {};
  const count = chance(0.8) ? 1 : 2;
  const names = ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists', '$size', '$all', '$not', '$regex', '$type', '$mod'];
  for (let i = 0; i < count; i++) {
    const op = pick(nested ? names : [...names, '$elemMatch', '$elemMatch']);
    if (op === '$eq' || op === '$ne') ops[op] = operand();
    else if (op === '$regex') {
      const text = pick([...STRINGS, 'a.b', 'a+']);
      ops[op] = `^${[...text].slice(0, Math.floor(random() * 3)).join('').replace(/[.^$*+?()[\]{}|\\/-]/g, '\\$&')}`;
    }
    else if (op === '$size') ops[op] = Math.floor(random() * 3);
    else if (op === '$type') ops[op] = pick(['number', 'string', 'bool', 'null', 'object', 'array']);
    else if (op === '$all') ops[op] = Array.from({ length: Math.floor(random() * 3) }, operand);
    else if (op === '$not') {
      const inner = fieldCondition(true);
      if (typeof inner !== 'object' || inner === null) ops[op] = { $eq: inner };
      else {
        // One level of $not: MongoDB refuses $not inside $not.
        const rest = Object.fromEntries(Object.entries(inner).filter(([o]) => o !== '$not'));
        ops[op] = Object.keys(rest).length > 0 ? rest : { $exists: true };
      }
    }
    else if (op === '$in' || op === '$nin') ops[op] = Array.from({ length: Math.floor(random() * (chance(0.3) ? 9 : 4)) }, operand);
    else if (op === '$exists') ops[op] = chance(0.5);
    else if (op === '$mod') ops[op] = [pick([2, 3, -2]), pick([0, 1, -1])];
    else if (op === '$elemMatch') {
      // Operators on the element, or a filter on an object element (one level: no $elemMatch inside).
      const inner = fieldCondition(true);
      if (chance(0.5)) ops[op] = typeof inner === 'object' && inner !== null ? inner : { $eq: inner };
      else ops[op] = { [path()]: inner, ...(chance(0.3) ? { [pick(KEYS)]: fieldCondition(true) } : {}) };
    }
    else ops[op] = rangeOperand();
  }
  return ops;
}

function filter(depth = 0): Filter {
  const out: Record<string, unknown> = {};
  const n = 1 + Math.floor(random() * 2);
  for (let i = 0; i < n; i++) {
    if (depth < 2 && chance(0.2)) out[pick(['$and', '$or'])] = Array.from({ length: 1 + Math.floor(random() * 3) }, () => filter(depth + 1));
    else if (chance(0.05)) out._id = chance(0.5) ? pick(['d001', 'd050', 'zzz']) : { $in: ['d002', 'd003', 'd100', 'x'] };
    else out[path()] = fieldCondition();
  }
  return out as Filter;
}

function sort(): [string, 1 | -1][] {
  const keys = 1 + Math.floor(random() * 2);
  const out: [string, 1 | -1][] = [];
  for (let i = 0; i < keys; i++) {
    const p = path();
    if (!out.some(([q]) => q === p)) out.push([p, chance(0.5) ? 1 : -1]);
  }
  return out;
}

const documents = new Map<string, JsonObject>();
for (let i = 0; i < DOCS; i++) documents.set(`d${String(i).padStart(3, '0')}`, object(0));
const filters = Array.from({ length: FILTERS }, () => filter());
const sorts = Array.from({ length: SORTS }, sort);

/**
 * The values a path reaches as MongoDB walks it (into arrays: by index for an integer segment, else through
 * every object element), and whether it went through an array on the way: written here again, for the
 * explanations below only, independently of the reference evaluator.
 */
function reached(data: JsonValue, p: string): { values: JsonValue[]; throughArray: boolean; expanded: boolean } {
  const out = { values: [] as JsonValue[], throughArray: false, expanded: false };
  const go = (v: JsonValue | undefined, rest: string[]): void => {
    if (v === undefined) return;
    if (rest.length === 0) {
      out.values.push(v);
      return;
    }
    const [head, ...tail] = rest as [string, ...string[]];
    if (Array.isArray(v)) {
      out.throughArray = true;
      if (/^(0|[1-9][0-9]*)$/.test(head)) go(v[Number(head)], tail);
      else {
        out.expanded = true;
        for (const e of v) if (typeof e === 'object' && e !== null && !Array.isArray(e) && Object.hasOwn(e, head)) go(e[head], tail);
      }
    } else if (typeof v === 'object' && v !== null && Object.hasOwn(v, head)) go(v[head], tail);
  };
  go(data, p.split('.'));
  return out;
}

/** The paths and operators of a filter, flattened (the operators inside `$not` and `$elemMatch` too). */
function conditions(f: Filter): [string, string][] {
  const out: [string, string][] = [];
  const operators = (key: string, ops: Record<string, unknown>): void => {
    for (const [op, operand] of Object.entries(ops)) {
      out.push([key, op]);
      if (op === '$not') operators(key, operand as Record<string, unknown>);
    }
  };
  for (const [key, cond] of Object.entries(f)) {
    if (key === '$and' || key === '$or') for (const sub of cond as Filter[]) out.push(...conditions(sub));
    else if (typeof cond === 'object' && cond !== null && !Array.isArray(cond)) operators(key, cond as Record<string, unknown>);
    else out.push([key, '$eq']);
  }
  return out;
}

/** The `$elemMatch` operands of a filter, with their paths. */
function elemMatches(f: Filter): [string, Record<string, unknown>][] {
  const out: [string, Record<string, unknown>][] = [];
  const operators = (key: string, ops: Record<string, unknown>): void => {
    for (const [op, operand] of Object.entries(ops)) {
      if (op === '$elemMatch') out.push([key, operand as Record<string, unknown>]);
      if (op === '$not') operators(key, operand as Record<string, unknown>);
    }
  };
  for (const [key, cond] of Object.entries(f)) {
    if (key === '$and' || key === '$or') for (const sub of cond as Filter[]) out.push(...elemMatches(sub));
    else if (typeof cond === 'object' && cond !== null && !Array.isArray(cond)) operators(key, cond as Record<string, unknown>);
  }
  return out;
}

/**
 * The known deviations from MongoDB's semantics, each a predicate on the document and the filter that says
 * whether it may explain a different answer. The README's deviation table has one row per entry.
 */
const DEVIATIONS: readonly { readonly id: string; readonly explains: (data: JsonObject, f: Filter) => boolean }[] = [];

const hasNestedArray = (v: JsonValue): boolean => Array.isArray(v) && v.some((e) => Array.isArray(e));

/**
 * Where mingo itself differs from MongoDB, so a difference is not Stowage's: mingo's equality (and `$regex`)
 * looks inside nested arrays (`{a: 1}` matches `{a: [[1]]}`), MongoDB's looks one level down only, as Stowage's does;
 * mingo's `$all` wants an array field, MongoDB's is the `$and` of the equalities (so `{a: {$all: [1]}}`
 * matches `{a: 1}`, and `$all: [null]` a missing field), as Stowage's is.
 */
const ORACLE_DEVIATIONS: readonly { readonly id: string; readonly explains: (data: JsonObject, f: Filter) => boolean }[] = [
  {
    id: 'mingo-nested-array-equality',
    explains: (data, f) =>
      conditions(f).some(([p, op]) => ['$eq', '$ne', '$in', '$nin', '$all', '$regex', '$gt', '$gte', '$lt', '$lte', '$mod'].includes(op) && reached(data, p).values.some(hasNestedArray)) ||
      // …and inside $elemMatch, an element that is itself an array is compared element by element.
      elemMatches(f).some(([p]) => reached(data, p).values.some(hasNestedArray)),
  },
  {
    // MongoDB's $type matches an array whose element has the type, and values reached through an array;
    // mingo's looks at the field only.
    id: 'mingo-type-of-elements',
    explains: (data, f) => conditions(f).some(([p, op]) => op === '$type' && (reached(data, p).throughArray || reached(data, p).values.some(Array.isArray))),
  },
  {
    id: 'mingo-all-on-a-scalar',
    explains: (data, f) => conditions(f).some(([p, op]) => op === '$all' && !reached(data, p).values.some(Array.isArray)),
  },
  {
    // Through an array's elements MongoDB reaches each value on its own; mingo gathers them into one array,
    // which `$size`, `$exists`, `$type` and `$elemMatch` then see (`{'a.b': {$size: 0}}` matches `{a: [1]}`).
    id: 'mingo-gathers-values-into-an-array',
    explains: (data, f) =>
      conditions(f).some(([p, op]) => ['$size', '$exists', '$type', '$elemMatch'].includes(op) && reached(data, p).expanded),
  },
  {
    // MongoDB's $mod matches numbers only; mingo's coerces (null, false, '' and [] % 2 are 0 in JavaScript).
    id: 'mingo-mod-of-a-non-number',
    explains: (data, f) =>
      [...conditions(f).filter(([, op]) => op === '$mod').map(([p]) => p), ...elemMatches(f).map(([p]) => p)].some((p) =>
        reached(data, p).values.some((v) => [v, ...(Array.isArray(v) ? v : [])].some((x) => typeof x !== 'number'))),
  },
  {
    // MongoDB does not walk a path into an array that is an element of an array; mingo does, for some
    // operators (`{'k.n': {$exists: true}}` matches `{k: [[2]]}` there).
    id: 'mingo-path-through-nested-array',
    explains: (data, f) =>
      conditions(f).some(([p]) => {
        const segments = p.split('.');
        return segments.slice(1).some((_, i) => reached(data, segments.slice(0, i + 1).join('.')).values.some(hasNestedArray));
      }),
  },
  {
    // MongoDB's $mod truncates a non-integer value toward zero (2.5 % 2 is 0); mingo's takes JavaScript's %.
    id: 'mingo-mod-of-a-fraction',
    explains: (data, f) =>
      conditions(f).some(([p, op]) => op === '$mod' && reached(data, p).values.some((v) => [v, ...(Array.isArray(v) ? v : [])].some((x) => typeof x === 'number' && !Number.isInteger(x)))) ||
      elemMatches(f).some(([p]) => reached(data, p).values.some((v) => Array.isArray(v) && v.some((x) => typeof x === 'number' && !Number.isInteger(x)))),
  },
];

/**
 * Documents whose sort keys MongoDB and Stowage order alike: none of the keys' candidates (the values a path
 * reaches and their elements) is an object or a nested array (MongoDB compares those field by field and
 * element by element; Stowage ranks them equal), and no path went through an array's elements (MongoDB's
 * key there also counts an element without the key as null).
 */
function sortsLikeMongo(data: JsonObject, spec: readonly [string, 1 | -1][]): boolean {
  return spec.every(([p]) => {
    const { values, expanded } = reached(data, p);
    const candidates = values.flatMap((v) => (Array.isArray(v) ? v : [v]));
    // mingo's own departure: it orders a non-empty array as a whole (by type, then element by element), where
    // MongoDB keys it by its smallest (ascending) or largest (descending) element; those are left out here
    // (the filter table's sort cases check that rule on every adapter).
    const mingoWholeArray = values.some((v) => Array.isArray(v) && v.length > 0);
    return !expanded && !mingoWholeArray && candidates.every((v) => typeof v !== 'object' || v === null);
  });
}

interface Subject {
  readonly name: string;
  col: Collection | undefined;
  /** Filters only: a sort reads no index, so the subject's sorts would repeat its unindexed twin's. */
  readonly filtersOnly?: boolean;
}

/**
 * The indexes of the `indexed` subjects, on paths the random filters use (keys of `KEYS`, dotted ones and a
 * numeric segment among them), so that the plans indexes open (index ranges, guards that skip the array
 * walk where no document holds an array) meet every shape of document.
 */
const INDEXES = [{ fields: ['a'] }, { fields: ['n', 's'] }, { fields: ['a.b'] }, { fields: ['k.n.s'] }, { fields: ['b.0'] }];

async function load(store: DocumentStore, indexed = false): Promise<Collection> {
  const col = await store.collection(indexed ? 'indexed' : 'diff', indexed ? { indexes: INDEXES } : {});
  const entries = [...documents.entries()];
  for (const [id, data] of entries) await col.put(id, structuredClone(data));
  return col;
}

async function idsOf(col: Collection, f: Filter, s?: Sort | [string, 1 | -1][]): Promise<string[]> {
  const page = await col.find(f, { limit: 1_000, sort: s as Sort });
  return page.items.map((d) => d.id);
}

const mingoDocs = [...documents.entries()].map(([id, data]) => ({ ...structuredClone(data), _id: id }));

function mingoMatches(f: Filter): Set<string> {
  const q = new Query(f as Record<string, unknown>);
  return new Set(mingoDocs.filter((d) => q.test(d)).map((d) => d._id));
}

function runDifferential(subjects: Subject[], label: string): void {
  it(`${FILTERS} random filters agree on ${label} and differ from MongoDB (mingo) only by the listed deviations`, async () => {
    const cols = subjects.map((s) => s.col as Collection);
    let partial = 0;
    const disagreements: string[] = [];
    const unexplained: string[] = [];
    const used = new Map<string, number>();
    for (const f of filters) {
      const results = await Promise.all(cols.map((c) => idsOf(c, f)));
      const reference = results[0] as string[];
      results.forEach((r, i) => {
        if (r.join() !== reference.join()) disagreements.push(`${subjects[i]?.name} vs ${subjects[0]?.name} on ${JSON.stringify(f)}: [${r.join()}] vs [${reference.join()}]`);
      });
      if (reference.length > 0 && reference.length < DOCS) partial++;
      const ours = new Set(reference);
      const theirs = mingoMatches(f);
      for (const [id, data] of documents) {
        if (ours.has(id) === theirs.has(id)) continue;
        const deviation = [...DEVIATIONS, ...ORACLE_DEVIATIONS].find((d) => d.explains(data, f));
        if (deviation === undefined) unexplained.push(`${JSON.stringify(f)} on ${id} ${JSON.stringify(data)}: Stowage ${ours.has(id)}, MongoDB ${theirs.has(id)}`);
        else used.set(deviation.id, (used.get(deviation.id) ?? 0) + 1);
      }
    }
    console.log(`seed ${SEED}: ${partial}/${FILTERS} filters match some but not all documents; deviations seen: ${JSON.stringify(Object.fromEntries(used))}`);
    expect(disagreements.slice(0, 5), `seed ${SEED}`).toEqual([]);
    expect(unexplained.slice(0, 5), `seed ${SEED}`).toEqual([]);
    // Not vacuous: a good share of filters split the documents.
    expect(partial, `seed ${SEED}`).toBeGreaterThan(FILTERS * 0.25);
  }, 120_000);

  it(`${SORTS} random sorts agree on ${label}, with cursors, and with MongoDB (mingo) outside the listed deviations`, async () => {
    const sorted = subjects.filter((s) => s.filtersOnly !== true);
    const cols = sorted.map((s) => s.col as Collection);
    const disagreements: string[] = [];
    const unexplained: string[] = [];
    for (const [i, spec] of sorts.entries()) {
      const asObject = Object.fromEntries(spec) as Sort;
      // Stowage is given the pairs; mingo takes an object only, which reorders integer-like keys.
      const results = await Promise.all(cols.map((c) => idsOf(c, {}, spec)));
      const reference = results[0] as string[];
      results.forEach((r, j) => {
        if (r.join() !== reference.join()) disagreements.push(`${sorted[j]?.name} on ${JSON.stringify(spec)}`);
      });
      if (i % 20 === 0) {
        // Page through with a small limit: the concatenation is the same order.
        for (const [j, c] of cols.entries()) {
          const paged: string[] = [];
          let after: string | undefined;
          do {
            const page = await c.find({}, { sort: spec, limit: 7, after });
            paged.push(...page.items.map((d) => d.id));
            after = page.next;
          } while (after !== undefined && paged.length <= DOCS);
          if (paged.join() !== reference.join()) disagreements.push(`${sorted[j]?.name} paged on ${JSON.stringify(spec)}`);
        }
      }
      // mingo ties are broken by _id as Stowage's are; only documents whose sort values MongoDB and Stowage
      // order alike (no arrays or objects, nothing reached through an array) are compared.
      if (Object.keys(asObject).join('.') !== spec.map(([p]) => p).join('.')) continue;
      const mongoOrder = mingoFind(mingoDocs, {}).sort({ ...asObject, _id: 1 }).all().map((d) => d._id as string);
      const comparable = (id: string) => sortsLikeMongo(documents.get(id) as JsonObject, spec);
      const a = reference.filter(comparable).join();
      const b = mongoOrder.filter(comparable).join();
      if (a !== b) {
        const ours = reference.filter(comparable);
        const theirs = mongoOrder.filter(comparable);
        const at = ours.findIndex((id, k) => id !== theirs[k]);
        const show = (id: string | undefined) => `${id} ${JSON.stringify(spec.map(([p]) => reached(documents.get(id ?? '') ?? {}, p).values))}`;
        unexplained.push(`${JSON.stringify(spec)} at ${at}: Stowage ${show(ours[at])}, MongoDB ${show(theirs[at])}`);
      }
    }
    expect(disagreements.slice(0, 5), `seed ${SEED}`).toEqual([]);
    expect(unexplained.slice(0, 3), `seed ${SEED}`).toEqual([]);
  }, 120_000);
}

describe('documents differential: mem:// and sqlite://', () => {
  const root = mkdtempSync(join(tmpdir(), 'stowage-diff-'));
  const subjects: Subject[] = [{ name: 'mem', col: undefined }, { name: 'sqlite', col: undefined }, { name: 'sqlite indexed', col: undefined, filtersOnly: true }];
  const stores: DocumentStore[] = [];
  beforeAll(async () => {
    stores.push(createDocumentStore(new MemoryDocumentsDriver()));
    stores.push(createDocumentStore(new SqliteDocumentsDriver({ file: join(root, 'diff.db'), synchronous: 'normal' })));
    for (const [i, store] of stores.entries()) (subjects[i] as Subject).col = await load(store);
    (subjects[2] as Subject).col = await load(stores[1] as DocumentStore, true);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    rmSync(root, { recursive: true, force: true });
  });
  runDifferential(subjects, 'mem and sqlite');
});

serviceSuite('mariadb', (svc) => {
  const subjects: Subject[] = [{ name: 'mem', col: undefined }, { name: 'mariadb', col: undefined }, { name: 'mariadb indexed', col: undefined, filtersOnly: true }];
  const stores: DocumentStore[] = [];
  const database = `stowage_diff_${process.pid}`;
  const context = {
    dataDir: '/nonexistent',
    env: {},
    logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
    openDriver: () => Promise.reject(new Error('not used')),
  };
  const admin = async () => {
    const url = new URL(svc().url.replace(/^mysql:/, 'http:'));
    return mysql.createConnection({ host: url.hostname, port: Number(url.port), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) });
  };
  beforeAll(async () => {
    const conn = await admin();
    await conn.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4`);
    await conn.end();
    const driver = await mysqlDocumentsScheme.open(parseUrl(svc().url.replace(/\/[^/?]*(\?|$)/, `/${database}$1`)), context);
    stores.push(createDocumentStore(new MemoryDocumentsDriver()), createDocumentStore(driver));
    for (const [i, store] of stores.entries()) (subjects[i] as Subject).col = await load(store);
    (subjects[2] as Subject).col = await load(stores[1] as DocumentStore, true);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    const conn = await admin();
    await conn.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await conn.end();
  });
  runDifferential(subjects, 'mem and MariaDB');
}, { title: 'documents differential: MariaDB' });

serviceSuite('postgres', (svc) => {
  const subjects: Subject[] = [{ name: 'mem', col: undefined }, { name: 'postgres', col: undefined }];
  const stores: DocumentStore[] = [];
  const prefix = `diff${process.pid}_`;
  const context = {
    dataDir: '/nonexistent',
    env: {},
    logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
    openDriver: () => Promise.reject(new Error('not used')),
  };
  beforeAll(async () => {
    const driver = await postgresDocumentsScheme.open(parseUrl(`${svc().url}?tablePrefix=${prefix}`), context);
    stores.push(createDocumentStore(new MemoryDocumentsDriver()), createDocumentStore(driver));
    for (const [i, store] of stores.entries()) (subjects[i] as Subject).col = await load(store);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
  });
  runDifferential(subjects, 'mem and PostgreSQL');
}, { title: 'documents differential: PostgreSQL' });
