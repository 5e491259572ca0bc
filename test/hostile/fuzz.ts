/**
 * Hostile-input fuzzers, one per port: thousands of random operations with keys and values chosen to
 * break things (NUL bytes, `__proto__`, `../` and absolute paths, lone surrogates, 10 MiB values, deep
 * nesting, wrong types). Each fuzzer keeps a model of what the store accepted and checks, at the end, that
 * a full read of the store matches it. Anything thrown that is not a StowageError fails the run.
 */
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { StowageError, type Cache, type ConfigStore, type DocumentStore, type JsonObject, type JsonValue, type Queue, type SecretStore } from '../../src/index.js';

/** A small seeded PRNG (mulberry32), so a failing run can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What a fuzz run did. */
export interface FuzzReport {
  /** Operations attempted. */
  ops: number;
  /** Operations the store accepted. */
  accepted: number;
  /** Operations rejected, by error code. */
  rejected: Record<string, number>;
}

const TEN_MIB = 'x'.repeat(10 * 1024 * 1024);

function nested(depth: number): JsonValue {
  let v: JsonValue = 'bottom';
  for (let i = 0; i < depth; i++) v = { d: v };
  return v;
}

/** Key-like strings that have broken storage systems before. */
export const HOSTILE_KEYS: readonly unknown[] = [
  '',
  '\u0000',
  'a\u0000b',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '__proto__/polluted',
  'constructor/prototype',
  '../escape',
  '../../etc/passwd',
  'a/../../b',
  '..',
  '.',
  'a/./b',
  'a//b',
  '/etc/passwd',
  '/tmp/stowage-hostile-abs',
  'C:\\Windows\\system32',
  '%2e%2e%2fescape',
  'lone\ud800surrogate',
  '\udc00low',
  'emoji-😀',
  'ünïcödé/κλειδί',
  ' ',
  'tab\there',
  'new\nline',
  'x'.repeat(1025),
  'y'.repeat(300),
  '$where',
  'a.b',
  'key:with:colons',
  'ok/key',
  'plain',
  42,
  null,
  undefined,
  { toString: () => 'obj' },
  ['arr'],
];

/** Values that JSON stores must refuse or store faithfully. */
export function hostileValue(rand: () => number): unknown {
  const pick = Math.floor(rand() * 24);
  switch (pick) {
    case 0:
      return rand() < 0.2 ? TEN_MIB : 'short';
    case 1:
      return nested(Math.floor(rand() * 120));
    case 2:
      return JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as JsonValue;
    case 3:
      return { constructor: { prototype: { x: 1 } } };
    case 4:
      return 'lone\ud800';
    case 5:
      return Number.NaN;
    case 6:
      return Number.POSITIVE_INFINITY;
    case 7:
      return undefined;
    case 8:
      return () => 1;
    case 9:
      return Symbol('s');
    case 10:
      return 10n;
    case 11:
      return new Date(0);
    case 12:
      return new Map([[1, 2]]);
    case 13:
      return Buffer.from('buf');
    case 14: {
      const cyclic: Record<string, unknown> = { a: 1 };
      cyclic.self = cyclic;
      return cyclic;
    }
    case 15:
      return { '\u0000key': 'nul in key' };
    case 16:
      return [1, 'two', null, true, { three: [3] }];
    case 17:
      return -0;
    case 18:
      return 1e308;
    case 19:
      return '😀 emoji and ünïcödé';
    case 20:
      return { nested: { deep: { array: [1, 2, { x: 'y' }] } } };
    case 21:
      return null;
    case 22:
      return true;
    default:
      return Math.floor(rand() * 1e6);
  }
}

function pickKey(rand: () => number, fresh: () => string): unknown {
  return rand() < 0.55 ? HOSTILE_KEYS[Math.floor(rand() * HOSTILE_KEYS.length)] : fresh();
}

async function attempt<T>(report: FuzzReport, what: string, fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false }> {
  report.ops++;
  try {
    const value = await fn();
    report.accepted++;
    return { ok: true, value };
  } catch (err) {
    if (!StowageError.is(err)) {
      throw new Error(`${what} threw a non-StowageError: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    }
    report.rejected[err.code] = (report.rejected[err.code] ?? 0) + 1;
    return { ok: false };
  }
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'undefined';
  } catch {
    return 'unserialisable';
  }
}

function normalise(value: unknown): unknown {
  // What a JSON store gives back: JSON.parse(JSON.stringify(v)) (e.g. -0 becomes 0).
  return JSON.parse(JSON.stringify(value)) as unknown;
}

function newReport(): FuzzReport {
  return { ops: 0, accepted: 0, rejected: {} };
}

/** Fuzzes a config store; the store must start empty. */
export async function fuzzConfig(store: ConfigStore, ops: number, seed: number): Promise<FuzzReport> {
  const rand = prng(seed);
  const report = newReport();
  const model = new Map<string, unknown>();
  let n = 0;
  for (let i = 0; i < ops; i++) {
    const key = pickKey(rand, () => `k${n++ % 200}`);
    const r = rand();
    if (r < 0.6) {
      const value = hostileValue(rand);
      const res = await attempt(report, `config.put(${String(key)})`, () => store.put(key as string, value as JsonValue));
      if (res.ok) model.set(key as string, normalise(value));
    } else if (r < 0.75) {
      const res = await attempt(report, 'config.delete', () => store.delete(key as string));
      if (res.ok) model.delete(key as string);
    } else {
      const res = await attempt(report, 'config.get', () => store.get(key as string));
      if (res.ok) assert.ok(isDeepStrictEqual(res.value?.value, model.get(key as string)), `get ${String(key)} disagrees with the model`);
    }
  }
  const { entries } = await store.list('');
  assert.deepEqual(new Set(entries.map((e) => e.key)), new Set(model.keys()), 'config keys differ from the model');
  for (const e of entries) assert.ok(isDeepStrictEqual(e.value, model.get(e.key)), `config value of ${e.key} differs from the model`);
  return report;
}

/** Fuzzes a secret store; the store must start empty. */
export async function fuzzSecrets(store: SecretStore, ops: number, seed: number): Promise<FuzzReport> {
  const rand = prng(seed);
  const report = newReport();
  const model = new Map<string, string>();
  let n = 0;
  for (let i = 0; i < ops; i++) {
    const name = pickKey(rand, () => `s${n++ % 100}`);
    const r = rand();
    if (r < 0.6) {
      const raw = hostileValue(rand);
      const value = typeof raw === 'string' ? raw : rand() < 0.5 ? safeStringify(raw) : raw;
      const res = await attempt(report, 'secrets.put', () => store.put(name as string, value as string));
      if (res.ok) model.set(name as string, value instanceof Uint8Array ? new TextDecoder().decode(value) : (value as string));
    } else if (r < 0.7) {
      const res = await attempt(report, 'secrets.destroy', () => store.destroy(name as string));
      if (res.ok) model.delete(name as string);
    } else {
      const res = await attempt(report, 'secrets.get', () => store.get(name as string));
      if (res.ok) assert.equal(res.value.value.reveal(), model.get(name as string), `secret ${String(name)} disagrees with the model`);
    }
  }
  const names = await store.list();
  assert.deepEqual(new Set(names), new Set(model.keys()), 'secret names differ from the model');
  for (const name of names) assert.equal((await store.get(name)).value.reveal(), model.get(name));
  return report;
}

/** Fuzzes a cache; the cache must start empty and hold every entry (no eviction during the run). */
export async function fuzzCache(cache: Cache, ops: number, seed: number): Promise<FuzzReport> {
  const rand = prng(seed);
  const report = newReport();
  const model = new Map<string, unknown>();
  let n = 0;
  for (let i = 0; i < ops; i++) {
    const key = pickKey(rand, () => `c${n++ % 200}`);
    const r = rand();
    if (r < 0.55) {
      const value = hostileValue(rand);
      const res = await attempt(report, 'cache.set', () => cache.set(key as string, value as JsonValue));
      if (res.ok) model.set(key as string, normalise(value));
    } else if (r < 0.7) {
      const res = await attempt(report, 'cache.delete', () => cache.delete(key as string));
      if (res.ok) model.delete(key as string);
    } else {
      const res = await attempt(report, 'cache.get', () => cache.get(key as string));
      if (res.ok) assert.ok(isDeepStrictEqual(res.value, model.get(key as string)), `cache get ${String(key)} disagrees with the model`);
    }
  }
  const keys = [...model.keys()];
  const values = await cache.getMany(keys);
  keys.forEach((k, i) => assert.ok(isDeepStrictEqual(values[i], model.get(k)), `cache value of ${k} differs from the model`));
  return report;
}

/** Fuzzes a queue's publish path; at the end every accepted message is read back from a fresh group. */
export async function fuzzQueue(queue: Queue, ops: number, seed: number): Promise<FuzzReport> {
  const rand = prng(seed);
  const report = newReport();
  const model = new Map<string, string[]>();
  const seenIds = new Map<string, Set<string>>();
  const topics = ['t1', 't2'];
  for (let i = 0; i < ops; i++) {
    const topic = rand() < 0.3 ? HOSTILE_KEYS[Math.floor(rand() * HOSTILE_KEYS.length)] : topics[Math.floor(rand() * topics.length)];
    const raw = hostileValue(rand);
    const payload = typeof raw === 'string' ? raw : rand() < 0.2 ? raw : `p${i}`;
    const id = rand() < 0.3 ? (rand() < 0.5 ? `id-${Math.floor(rand() * 50)}` : HOSTILE_KEYS[Math.floor(rand() * HOSTILE_KEYS.length)]) : undefined;
    const headers: Record<string, string> | undefined = rand() < 0.1 ? { 'stowage-forged': 'x' } : rand() < 0.1 ? { ok: 'h\u0000' } : undefined;
    const res = await attempt(report, 'queue.publish', () =>
      queue.publish(topic as string, payload as string, { id: id as string | undefined, headers }),
    );
    if (res.ok && !res.value.duplicate) {
      const list = model.get(topic as string) ?? [];
      list.push(payload instanceof Uint8Array ? new TextDecoder().decode(payload) : (payload as string));
      model.set(topic as string, list);
    }
    if (res.ok && id !== undefined) {
      const ids = seenIds.get(topic as string) ?? new Set();
      assert.equal(res.value.duplicate, ids.has(id as string), `dedupe of id ${String(id)} disagrees with the model`);
      ids.add(id as string);
      seenIds.set(topic as string, ids);
    }
  }
  for (const topic of topics) {
    const expected = model.get(topic) ?? [];
    const got: string[] = [];
    const controller = new AbortController();
    const consumer = queue.consume(topic, 'fuzz-check', { prefetch: 256, signal: controller.signal, ackWaitMs: 60_000 });
    if (expected.length > 0) {
      for await (const d of consumer) {
        got.push(d.text());
        await d.ack();
        if (got.length >= expected.length) break;
      }
    }
    controller.abort();
    await consumer.close();
    assert.deepEqual(got, expected, `messages of ${topic} differ from the model`);
    const stats = await queue.stats(topic);
    assert.equal(stats.messages, expected.length);
  }
  return report;
}

/** Fuzzes a document store; the collection must start empty. */
export async function fuzzDocuments(store: DocumentStore, ops: number, seed: number): Promise<FuzzReport> {
  const rand = prng(seed);
  const report = newReport();
  const col = await store.collection('fuzz');
  const model = new Map<string, unknown>();
  let n = 0;
  for (let i = 0; i < ops; i++) {
    const id = pickKey(rand, () => `d${n++ % 200}`);
    const r = rand();
    const raw = hostileValue(rand);
    const data = rand() < 0.7 ? { v: raw } : raw;
    if (r < 0.55) {
      const res = await attempt(report, 'documents.put', () => col.put(id as string, data as JsonObject));
      if (res.ok) model.set(id as string, normalise(data));
    } else if (r < 0.65) {
      const res = await attempt(report, 'documents.delete', () => col.delete(id as string));
      if (res.ok) model.delete(id as string);
    } else if (r < 0.75) {
      const res = await attempt(report, 'documents.find', () => col.find({ v: raw as string }, { limit: 5 }));
      void res;
    } else {
      const res = await attempt(report, 'documents.get', () => col.get(id as string));
      if (res.ok) assert.ok(isDeepStrictEqual(res.value?.data, model.get(id as string)), `document ${String(id)} disagrees with the model`);
    }
  }
  const all: { id: string; data: unknown }[] = [];
  let after: string | undefined;
  do {
    const page = await col.find({}, { limit: 500, after });
    all.push(...page.items);
    after = page.next;
  } while (after !== undefined);
  assert.deepEqual(new Set(all.map((d) => d.id)), new Set(model.keys()), 'document ids differ from the model');
  for (const d of all) assert.ok(isDeepStrictEqual(d.data, model.get(d.id)), `document ${d.id} differs from the model`);
  return report;
}

/** Collection names that collide by case or by their SQL spelling, and some that are not names at all. */
const HOSTILE_COLLECTIONS: readonly string[] = ['tenantA', 'TENANTA', 'tenanta', 'users', 'Users', 'users__x', 'constructor', 'toString', '__proto__', 'a b', ''];
/** Index specs whose names collide by case or would collide as `ix_<collection>__<index>`. */
const HOSTILE_INDEXES = [
  { name: 'email', fields: ['email'], unique: true },
  { name: 'x__email', fields: ['email'], unique: true },
  { name: 'K', fields: ['k'], unique: false },
  { name: 'k', fields: ['k'], unique: false },
] as const;

/**
 * Fuzzes collection and index names on a document store that starts empty: names that differ only by case
 * are refused (ALREADY_EXISTS), never merged, and each collection keeps its own documents and unique
 * indexes. The model says, for every call, which code it must give.
 */
export async function fuzzNames(store: DocumentStore, ops: number, seed: number): Promise<FuzzReport> {
  const rand = prng(seed);
  const report = newReport();
  /** Per collection that exists: its index names (with whether unique) and its documents' emails. */
  const model = new Map<string, { indexes: Map<string, boolean>; emails: string[] }>();
  const lower = (name: string): string => name.toLowerCase();
  /** Runs a call and checks that it gives the code the model expects (undefined: accepted). */
  const expectCode = async <T>(what: string, expected: string | undefined, fn: () => Promise<T>): Promise<T | undefined> => {
    report.ops++;
    let code: string | undefined;
    let value: T | undefined;
    try {
      value = await fn();
      report.accepted++;
    } catch (err) {
      if (!StowageError.is(err)) throw new Error(`${what} threw a non-StowageError: ${String(err)}`);
      code = err.code;
      report.rejected[code] = (report.rejected[code] ?? 0) + 1;
    }
    assert.equal(code, expected, `${what}: the model expects ${expected ?? 'success'}`);
    return value;
  };
  for (let i = 0; i < ops; i++) {
    const name = HOSTILE_COLLECTIONS[Math.floor(rand() * HOSTILE_COLLECTIONS.length)] as string;
    const index = rand() < 0.5 ? HOSTILE_INDEXES[Math.floor(rand() * HOSTILE_INDEXES.length)] : undefined;
    const valid = /^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(name);
    const twin = [...model.keys()].some((other) => other !== name && lower(other) === lower(name));
    const entry = model.get(name);
    const indexTwin = index !== undefined && [...(entry?.indexes.keys() ?? [])].some((n) => n !== index.name && lower(n) === lower(index.name));
    const newUnique = index !== undefined && index.unique && entry?.indexes.has(index.name) !== true;
    const duplicates = entry !== undefined && new Set(entry.emails).size !== entry.emails.length;
    const expected = !valid ? 'INVALID_ARGUMENT' : twin || indexTwin ? 'ALREADY_EXISTS' : newUnique && duplicates ? 'CONFLICT' : undefined;
    const col = await expectCode(`collection(${JSON.stringify(name)}, index ${index?.name ?? '-'})`, expected, () =>
      store.collection(name, { indexes: index === undefined ? [] : [{ ...index, fields: [...index.fields] }] }),
    );
    // The collection exists once its name passed (an index refused after that leaves it created).
    if (valid && !twin && !model.has(name)) model.set(name, { indexes: new Map(), emails: [] });
    if (col === undefined) continue;
    const state = model.get(name) as { indexes: Map<string, boolean>; emails: string[] };
    if (index !== undefined) state.indexes.set(index.name, index.unique);
    const email = `e${Math.floor(rand() * 4)}`;
    const conflict = [...state.indexes.values()].some(Boolean) && state.emails.includes(email);
    await expectCode(`insert ${email} into ${name}`, conflict ? 'CONFLICT' : undefined, () => col.insert({ email, k: 1 }));
    if (!conflict) state.emails.push(email);
  }
  assert.deepEqual(await store.collections(), [...model.keys()].sort(), 'collections differ from the model');
  for (const [name, state] of model) {
    const col = await store.collection(name);
    assert.equal(await col.count(), state.emails.length, `documents of ${name} differ from the model`);
    assert.deepEqual((await col.indexes()).map((i) => i.name).sort(), [...state.indexes.keys()].sort(), `indexes of ${name} differ from the model`);
  }
  return report;
}
