/**
 * The documents contract suite: every documents adapter runs it (`test/contract/<adapter>-documents.test.ts`),
 * and a third-party adapter can run it too.
 *
 * Long (~800 lines) because it is the contract: one case per promise of the port, read top to bottom by an
 * adapter's author. The filter and sort cases, which are data, live in `documents-cases.ts`.
 *
 * @module
 */
import assert from 'node:assert/strict';
import type { JsonObject } from '../ports/common.js';
import type { Collection, DocumentRecord, DocumentStore, Filter, Migration, Sort } from '../ports/documents.js';
import { rejectsWith, withInstance, type ContractOptions } from './harness.js';
import { MAX_FILTER_DEPTH, MAX_FILTER_TERMS } from '../core/documents/filter.js';
import { FILTER_CASES, FILTER_DATASET, SORT_CASES } from './documents-cases.js';

export { FILTER_CASES, FILTER_DATASET, SORT_CASES, type FilterCase, type SortCase } from './documents-cases.js';

/** Options of {@link documentsContract}. */
export type DocumentsContractOptions = ContractOptions<DocumentStore>;

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function loadDataset(store: DocumentStore, name = 'dataset'): Promise<Collection> {
  const col = await store.collection(name);
  for (const [id, data] of Object.entries(FILTER_DATASET)) await col.insert(structuredClone(data), { id });
  return col;
}

async function findAll(col: Collection, filter: Filter, sort: Sort, limit: number): Promise<string[]> {
  const ids: string[] = [];
  let after: string | undefined;
  for (let page = 0; page < 1000; page++) {
    const result = await col.find(filter, { sort, limit, after });
    ids.push(...result.items.map((d) => d.id));
    if (result.next === undefined) return ids;
    after = result.next;
  }
  assert.fail('find() kept returning a next cursor');
}

async function snapshot(col: Collection): Promise<DocumentRecord[]> {
  return (await col.find({}, { limit: 10_000 })).items as DocumentRecord[];
}

/**
 * Registers the documents contract tests.
 *
 * @example
 * ```ts
 * import { describe, it } from 'node:test'; // or vitest's, jest's, mocha's describe/it
 * import { createStowage } from 'stowage';
 * import { documentsContract } from 'stowage/testing';
 *
 * documentsContract({
 *   test: { describe, it },
 *   name: 'mem://',
 *   factory: async () => (await createStowage({ documents: 'mem://' }, { ports: ['documents'] })).documents,
 * });
 * ```
 */
export function documentsContract(options: DocumentsContractOptions): void {
  const { test, name, factory } = options;
  const { describe, it } = test;
  const run = (fn: (store: DocumentStore) => Promise<void>) => () => withInstance(factory, fn);

  describe(`documents contract: ${name}`, () => {
    describe('writes and versions', () => {
      it('insert assigns a UUIDv7 id and version 1', run(async (store) => {
        const col = await store.collection('things');
        const doc = await col.insert({ a: 1 });
        assert.match(doc.id, UUIDV7);
        assert.equal(doc.version, 1);
        assert.deepEqual(doc.data, { a: 1 });
        assert.deepEqual(await col.get(doc.id), doc);
      }));

      it('ids generated one after another increase', run(async (store) => {
        const col = await store.collection('things');
        const ids: string[] = [];
        for (let i = 0; i < 20; i++) ids.push((await col.insert({ i })).id);
        assert.deepEqual([...ids].sort(), ids);
      }));

      it('insert of an existing id is ALREADY_EXISTS and changes nothing', run(async (store) => {
        const col = await store.collection('things');
        await col.insert({ a: 1 }, { id: 'x' });
        await rejectsWith(col.insert({ a: 2 }, { id: 'x' }), 'ALREADY_EXISTS');
        assert.deepEqual(await col.get('x'), { id: 'x', version: 1, data: { a: 1 } });
      }));

      it('get of an absent id is undefined', run(async (store) => {
        const col = await store.collection('things');
        assert.equal(await col.get('nope'), undefined);
      }));

      it('put creates, then replaces with the version increased by one', run(async (store) => {
        const col = await store.collection('things');
        assert.equal((await col.put('p', { a: 1, b: 1 })).version, 1);
        const second = await col.put('p', { a: 2 });
        assert.equal(second.version, 2);
        assert.deepEqual((await col.get('p'))?.data, { a: 2 });
      }));

      it('put with a stale ifVersion is CONFLICT and changes nothing', run(async (store) => {
        const col = await store.collection('things');
        await col.put('p', { a: 1 });
        await col.put('p', { a: 2 }, { ifVersion: 1 });
        const err = await rejectsWith(col.put('p', { a: 3 }, { ifVersion: 1 }), 'CONFLICT');
        // The details are part of the contract (see ConflictDetails in stowage/driver).
        assert.deepEqual(err.details, { currentVersion: 2 });
        assert.deepEqual(await col.get('p'), { id: 'p', version: 2, data: { a: 2 } });
      }));

      it('put with ifVersion 0 creates only', run(async (store) => {
        const col = await store.collection('things');
        assert.equal((await col.put('p', { a: 1 }, { ifVersion: 0 })).version, 1);
        await rejectsWith(col.put('p', { a: 2 }, { ifVersion: 0 }), 'CONFLICT');
        await rejectsWith(col.put('q', { a: 2 }, { ifVersion: 3 }), 'CONFLICT');
        assert.equal(await col.get('q'), undefined);
        assert.deepEqual((await col.get('p'))?.data, { a: 1 });
      }));

      it('delete says whether the document existed and honours ifVersion', run(async (store) => {
        const col = await store.collection('things');
        await col.put('d', { a: 1 });
        await rejectsWith(col.delete('d', { ifVersion: 2 }), 'CONFLICT');
        assert.ok(await col.get('d'));
        assert.equal(await col.delete('d', { ifVersion: 1 }), true);
        assert.equal(await col.delete('d'), false);
        assert.equal(await col.get('d'), undefined);
      }));

      it('a document written after a delete starts again at version 1', run(async (store) => {
        const col = await store.collection('things');
        await col.put('d', { a: 1 });
        await col.put('d', { a: 2 });
        await col.delete('d');
        assert.equal((await col.insert({ a: 3 }, { id: 'd' })).version, 1);
      }));

      it('returned data is a copy that the caller may change', run(async (store) => {
        const col = await store.collection('things');
        const input = { nested: { a: 1 } };
        const doc = await col.insert(input, { id: 'c' });
        input.nested.a = 2;
        (doc.data.nested as { a: number }).a = 3;
        assert.deepEqual((await col.get('c'))?.data, { nested: { a: 1 } });
      }));

      it('patch merges objects, removes null fields, replaces arrays and bumps the version', run(async (store) => {
        const col = await store.collection('things');
        await col.put('p', { a: 1, keep: 'k', o: { x: 1, y: 2 }, list: [1, 2, 3], gone: true });
        const doc = await col.patch('p', { a: 2, o: { y: null, z: 3 }, list: [4], gone: null, added: { q: 1 } });
        assert.equal(doc.version, 2);
        assert.deepEqual(doc.data, { a: 2, keep: 'k', o: { x: 1, z: 3 }, list: [4], added: { q: 1 } });
        assert.deepEqual((await col.get('p'))?.data, doc.data);
      }));

      it('patch of an absent document is NOT_FOUND and creates nothing', run(async (store) => {
        const col = await store.collection('things');
        await rejectsWith(col.patch('nope', { a: 1 }), 'NOT_FOUND');
        assert.equal(await col.get('nope'), undefined);
      }));

      it('patch with a stale ifVersion is CONFLICT and changes nothing', run(async (store) => {
        const col = await store.collection('things');
        await col.put('p', { a: 1 });
        await col.put('p', { a: 2 });
        await rejectsWith(col.patch('p', { a: 3 }, { ifVersion: 1 }), 'CONFLICT');
        assert.deepEqual(await col.get('p'), { id: 'p', version: 2, data: { a: 2 } });
        assert.equal((await col.patch('p', { b: 1 }, { ifVersion: 2 })).version, 3);
      }));

      it('concurrent patches without ifVersion are all applied', run(async (store) => {
        const col = await store.collection('things');
        await col.put('p', {});
        await Promise.all([0, 1, 2, 3, 4, 5].map((i) => col.patch('p', { [`f${i}`]: i })));
        const doc = await col.get('p');
        assert.equal(doc?.version, 7);
        assert.deepEqual(doc?.data, { f0: 0, f1: 1, f2: 2, f3: 3, f4: 4, f5: 5 });
      }));

      it('insertMany stores every document with its own id and version 1', run(async (store) => {
        const col = await store.collection('things');
        const docs = await col.insertMany([{ i: 1 }, { i: 2 }, { i: 3 }]);
        assert.equal(docs.length, 3);
        assert.equal(new Set(docs.map((d) => d.id)).size, 3);
        for (const d of docs) assert.deepEqual(await col.get(d.id), { ...d, version: 1 });
        assert.deepEqual(await col.insertMany([]), []);
      }));

      it('collections() lists the collections opened', run(async (store) => {
        await store.collection('alpha');
        await store.collection('beta');
        const names = await store.collections();
        assert.ok(names.includes('alpha') && names.includes('beta'), `got ${names.join(', ')}`);
      }));

      it('health() reports ok', run(async (store) => {
        const report = await store.health();
        assert.equal(report.ok, true, report.error?.message);
        assert.equal(report.backend, store.backend);
      }));
    });

    describe('filters', () => {
      it(`find returns exactly the expected documents for each of the ${FILTER_CASES.length} filters of the table`, run(async (store) => {
        const col = await loadDataset(store);
        const failures: string[] = [];
        for (const c of FILTER_CASES) {
          const got = (await col.find(c.filter, { limit: 1000 })).items.map((d) => d.id);
          if (got.join() !== c.expected.join()) {
            failures.push(`${c.name}: ${JSON.stringify(c.filter)} → [${got.join()}], expected [${c.expected.join()}]`);
          }
        }
        assert.deepEqual(failures, []);
      }), 60_000);

      it('count agrees with the filter table', run(async (store) => {
        const col = await loadDataset(store);
        const failures: string[] = [];
        for (const c of FILTER_CASES) {
          const got = await col.count(c.filter);
          if (got !== c.expected.length) failures.push(`${c.name}: count ${got}, expected ${c.expected.length}`);
        }
        assert.deepEqual(failures, []);
      }), 60_000);

      it('filters on indexed fields give the same results', run(async (store) => {
        await loadDataset(store);
        const col = await store.collection('dataset', {
          indexes: [{ fields: ['n'] }, { fields: ['s'] }, { fields: ['b', 'n'] }, { fields: ['tags'] }, { fields: ['o.k'] }, { fields: ['m'] }],
        });
        const failures: string[] = [];
        for (const c of FILTER_CASES) {
          const got = (await col.find(c.filter, { limit: 1000 })).items.map((d) => d.id);
          if (got.join() !== c.expected.join()) failures.push(`${c.name}: [${got.join()}], expected [${c.expected.join()}]`);
        }
        assert.deepEqual(failures, []);
      }), 60_000);

      it('keys with spaces, apostrophes, digits and non-ASCII letters can be filtered, sorted and indexed', run(async (store) => {
        const col = await store.collection('odd', { indexes: [{ fields: ["it's"] }, { fields: ['a b.\u00e9'], unique: true }] });
        await col.insert({ "it's": 1, 'a b': { '\u00e9': 'x' }, '0': { '1': true } }, { id: 'p' });
        await col.insert({ "it's": 2, 'a b': { '\u00e9': 'y' }, '0': [true] }, { id: 'q' });
        assert.deepEqual((await col.find({ "it's": 1 })).items.map((d) => d.id), ['p']);
        assert.deepEqual((await col.find({ 'a b.\u00e9': { $gte: 'y' } })).items.map((d) => d.id), ['q']);
        assert.deepEqual((await col.find({ '0.1': true })).items.map((d) => d.id), ['p']);
        assert.deepEqual((await col.find({}, { sort: { "it's": -1 } })).items.map((d) => d.id), ['q', 'p']);
        await rejectsWith(col.insert({ 'a b': { '\u00e9': 'x' } }), 'CONFLICT');
      }));

      it('invalid filters are INVALID_ARGUMENT', run(async (store) => {
        const col = await loadDataset(store);
        const bad: unknown[] = [
          { n: { $regex: 'a' } },
          { $where: 'true' },
          { $nor: [] },
          { n: { a: 1 } },
          { n: {} },
          { n: [1] },
          { n: { $eq: [1] } },
          { n: { $eq: { a: 1 } } },
          { n: { $in: 1 } },
          { n: { $nin: 'a' } },
          { n: { $in: [[1]] } },
          { n: { $in: [{ a: 1 }] } },
          { n: { $gt: null } },
          { n: { $gt: true } },
          { n: { $lt: [1] } },
          { n: { $exists: 1 } },
          { tags: { $size: -1 } },
          { tags: { $size: 1.5 } },
          { tags: { $size: '1' } },
          { tags: { $all: 'x' } },
          { tags: { $all: [['x']] } },
          { n: { $not: 1 } },
          { n: { $not: {} } },
          { n: { $mod: [0, 1] } },
          { n: { $mod: [2] } },
          { n: { $mod: [1.5, 0] } },
          { n: { $mod: 2 } },
          { tags: { $elemMatch: {} } },
          { tags: { $elemMatch: 5 } },
          { tags: { $elemMatch: { $eq: 'x', k: 1 } } },
          { o: { $elemMatch: { _id: 'a' } } },
          { o: { $elemMatch: { k: { $bad: 1 } } } },
          { n: { $not: { a: 1 } } },
          { n: { $not: { $regex: 'a' } } },
          { s: { $regex: '^a.*' } },
          { s: { $regex: 'apple' } },
          { s: { $regex: '^a$' } },
          { s: { $regex: '^(a|b)' } },
          { s: { $regex: '^a\\d' } },
          { s: { $regex: 1 } },
          { s: { $type: 'int' } },
          { s: { $type: 2 } },
          { s: { $type: [] } },
          { s: { $type: ['number', 'x'] } },
          { s: { $regex: '^a', $options: 'i' } },
          { n: Number.NaN },
          { n: undefined },
          { $and: {} },
          { $or: [1] },
          { $or: [[]] },
          { '': 1 },
          { 'a..b': 1 },
          { 'a.$b': 1 },
          { 'a\u0000b': 1 },
          { '_id.x': 1 },
          // MariaDB cannot address a key starting with "-", so no adapter accepts one.
          { '-1': true },
          { 'o.-k': { $exists: false } },
          [],
          'n',
        ];
        for (const filter of bad) {
          await rejectsWith(col.find(filter as Filter), 'INVALID_ARGUMENT');
          await rejectsWith(col.count(filter as Filter), 'INVALID_ARGUMENT');
        }
      }));
    });

    describe('filter size and shape', () => {
      it('long lists, many branches and many keys give the results of the short filter they amount to', run(async (store) => {
        const col = await loadDataset(store);
        const ids = async (filter: Filter) => (await col.find(filter, { limit: 1000 })).items.map((d) => d.id);
        const absent = Array.from({ length: 2_000 }, (_, i) => `absent ${i}`);
        const absentNumbers = Array.from({ length: 2_000 }, (_, i) => 1e6 + i);
        assert.deepEqual(await ids({ n: { $in: [...absent, 1, ...absentNumbers, '5'] } }), ['a', 'j', 'k']);
        assert.deepEqual(await ids({ tags: { $nin: [...absent, 'x', ...absentNumbers] } }), ['b', 'c', 'f', 'g', 'h', 'i', 'j', 'k', 'l']);
        assert.deepEqual(await ids({ _id: { $in: [...absent, 'c', 'e'] } }), ['c', 'e']);
        assert.deepEqual(await ids({ $or: [...absentNumbers.slice(0, 1_500).map((n) => ({ n })), { s: 'b' }] }), ['l']);
        assert.deepEqual(await ids({ $and: [...absent.slice(0, 1_500).map((s) => ({ s: { $ne: s } })), { n: 1 }] }), ['a', 'k']);
        const manyKeys: Record<string, unknown> = { n: 1 };
        for (let i = 0; i < 1_200; i++) manyKeys[`x${i}`] = { $exists: false };
        assert.deepEqual(await ids(manyKeys as Filter), ['a', 'k']);
        assert.equal(await col.count(manyKeys as Filter), 2);
      }), 60_000);

      it(`filters nested deeper than ${MAX_FILTER_DEPTH} levels are INVALID_ARGUMENT, more than ${MAX_FILTER_TERMS} terms RESOURCE_EXHAUSTED`, run(async (store) => {
        const col = await loadDataset(store);
        const nested = (levels: number): Filter => {
          let filter: Filter = { n: 1 };
          for (let i = 1; i < levels; i++) filter = { $and: [filter] };
          return filter;
        };
        assert.deepEqual((await col.find(nested(MAX_FILTER_DEPTH))).items.map((d) => d.id), ['a', 'k']);
        for (const levels of [MAX_FILTER_DEPTH + 1, 5_000, 100_000]) {
          await rejectsWith(col.find(nested(levels)), 'INVALID_ARGUMENT');
          await rejectsWith(col.count(nested(levels)), 'INVALID_ARGUMENT');
        }
        const huge = { n: { $in: Array.from({ length: MAX_FILTER_TERMS }, (_, i) => i) } };
        await rejectsWith(col.find(huge), 'RESOURCE_EXHAUSTED');
        await rejectsWith(col.count({ $or: Array.from({ length: MAX_FILTER_TERMS }, (_, i) => ({ n: i })) }), 'RESOURCE_EXHAUSTED');
      }), 60_000);

      it('a filter is read once: a getter or a Proxy cannot show the checks one key and the query another', run(async (store) => {
        const col = await loadDataset(store);
        await store.collection('other').then((other) => other.insert({ secret: 1 }, { id: 'other' }));
        const hostileKey = "n') UNION SELECT 1 -- \\'";
        let reads = 0;
        const getter = {} as Record<string, unknown>;
        Object.defineProperty(getter, 'n', { enumerable: true, get: () => (reads++ === 0 ? 1 : { $exists: true }) });
        assert.deepEqual((await col.find(getter as Filter)).items.map((d) => d.id), ['a', 'k']);
        assert.equal(reads, 1);
        // Lists its keys as "n" the first time, and a key that would end a SQL literal every time after.
        const proxy = (): Filter => {
          let listed = 0;
          return new Proxy({ n: 1 } as Record<string, unknown>, {
            ownKeys: () => (listed++ === 0 ? ['n'] : [hostileKey]),
            getOwnPropertyDescriptor: () => ({ enumerable: true, configurable: true, value: 1 }),
            get: () => 1,
          }) as Filter;
        };
        assert.deepEqual((await col.find(proxy())).items.map((d) => d.id), ['a', 'k']);
        assert.equal(await col.count(proxy()), 2);
        // A key with a backslash and a quote never reaches a query: it is refused before.
        await rejectsWith(col.find({ [hostileKey]: 1 }), 'INVALID_ARGUMENT');
        await rejectsWith(col.find({}, { sort: { [hostileKey]: 1 } }), 'INVALID_ARGUMENT');
        let fieldReads = 0;
        const fields = new Proxy(['n'], { get: (target, key, receiver) => (key === '0' && fieldReads++ > 0 ? hostileKey : Reflect.get(target, key, receiver)) });
        const indexed = await store.collection('dataset', { indexes: [{ fields, name: 'by_n' }] });
        assert.deepEqual((await indexed.indexes()).find((i) => i.name === 'by_n')?.fields, ['n']);
      }));
    });

    describe('sort and pagination', () => {
      for (const { sort, expected } of SORT_CASES) {
        it(`sorts by ${JSON.stringify(sort)} in the documented cross-type order`, run(async (store) => {
          const col = await loadDataset(store);
          assert.deepEqual((await col.find({}, { sort })).items.map((d) => d.id), expected);
        }));
      }

      it('pages of every size concatenate to the full order, with no next after the last page', run(async (store) => {
        const col = await loadDataset(store);
        for (const { sort, expected } of SORT_CASES) {
          for (const limit of [1, 3, 5, 12]) {
            assert.deepEqual(await findAll(col, {}, sort, limit), expected, `sort ${JSON.stringify(sort)} limit ${limit}`);
          }
        }
        const exact = await col.find({}, { limit: 12 });
        assert.equal(exact.next, undefined);
      }), 60_000);

      it('a sort given as [path, direction] pairs keeps an integer-like key where it is written', run(async (store) => {
        const col = await store.collection('pairs');
        await col.insert({ z: 1, '0': 2 }, { id: 'p' });
        await col.insert({ z: 2, '0': 1 }, { id: 'q' });
        await col.insert({ z: 1, '0': 1 }, { id: 'r' });
        // As an object, "0" comes first whatever the order it was written in.
        assert.deepEqual((await col.find({}, { sort: { z: 1, '0': 1 } })).items.map((d) => d.id), ['r', 'q', 'p']);
        assert.deepEqual((await col.find({}, { sort: [['z', 1], ['0', 1]] })).items.map((d) => d.id), ['r', 'p', 'q']);
        assert.deepEqual((await col.find({}, { sort: [['z', -1], ['0', -1]] })).items.map((d) => d.id), ['q', 'p', 'r']);
        assert.deepEqual((await col.find({}, { sort: [] })).items.map((d) => d.id), ['p', 'q', 'r']);
        const first = await col.find({}, { sort: [['z', 1], ['0', 1]], limit: 1 });
        const rest = await col.find({}, { sort: [['z', 1], ['0', 1]], limit: 5, after: first.next });
        assert.deepEqual(rest.items.map((d) => d.id), ['p', 'q']);
        await rejectsWith(col.find({}, { sort: [['0', 1], ['z', 1]], after: first.next }), 'INVALID_ARGUMENT');
      }));

      it('pages follow a filter', run(async (store) => {
        const col = await loadDataset(store);
        assert.deepEqual(await findAll(col, { n: { $gte: 0 } }, { n: -1 }, 2), ['h', 'f', 'c', 'b', 'a', 'k', 'l', 'g']);
      }));

      for (const direction of [1, -1] as const) {
        it(`documents inserted or changed between pages cause no skip or repeat (direction ${direction})`, run(async (store) => {
          const col = await store.collection('paged');
          const original: string[] = [];
          for (let i = 0; i < 30; i++) {
            const id = `o${String(i).padStart(2, '0')}`;
            await col.insert({ rank: i * 10, kind: i % 3 === 0 ? 'x' : 'y' }, { id });
            original.push(id);
          }
          const sort: Sort = { kind: direction, rank: direction };
          const seen: string[] = [];
          let after: string | undefined;
          let round = 0;
          do {
            const page = await col.find({}, { sort, limit: 4, after });
            seen.push(...page.items.map((d) => d.id));
            after = page.next;
            round++;
            // Between pages: new documents on both sides of the cursor, and a document that moves.
            await col.insert({ rank: round * 10 + 5, kind: 'x' }, { id: `n${round}x` });
            await col.insert({ rank: round * 10 + 5, kind: 'y' }, { id: `n${round}y` });
            await col.insert({ rank: -round, kind: 'x' }, { id: `m${round}` });
          } while (after !== undefined);
          const originalsSeen = seen.filter((id) => id.startsWith('o'));
          assert.equal(new Set(seen).size, seen.length, `a document was repeated: ${seen.join()}`);
          const expectedOrder = [...original].sort((p, q) => {
            const [rp, rq] = [Number(p.slice(1)), Number(q.slice(1))];
            const [kp, kq] = [rp % 3 === 0 ? 0 : 1, rq % 3 === 0 ? 0 : 1];
            return (kp - kq || rp - rq) * direction;
          });
          assert.deepEqual(originalsSeen, expectedOrder);
        }), 60_000);
      }

      it('paging a mixed-type multi-key sort while documents of every type are inserted skips and repeats nothing', run(async (store) => {
        for (const [i, { sort, expected }] of SORT_CASES.filter((c) => Object.keys(c.sort).length > 0).entries()) {
          // A collection per sort: the documents one sort's pages insert would otherwise pile up in front of
          // the next sort's cursor, and its paging would grow with every case before it.
          const col = await loadDataset(store, `paged${i}`);
          const seen: string[] = [];
          let after: string | undefined;
          let round = 0;
          do {
            const page = await col.find({}, { sort, limit: 2, after });
            seen.push(...page.items.map((d) => d.id));
            after = page.next;
            const values = [null, -5, 0.25, 'apple', '', '\u{1F600}', true, false, [1], { k: 1 }];
            const v = values[round % values.length] ?? null;
            await col.insert({ n: v, s: v, b: v, m: v, o: { k: v } }, { id: `z-${JSON.stringify(sort)}-${round++}` });
          } while (after !== undefined);
          assert.equal(new Set(seen).size, seen.length, `sort ${JSON.stringify(sort)} repeated a document: ${seen.join()}`);
          assert.deepEqual(seen.filter((id) => id.length === 1), expected, `sort ${JSON.stringify(sort)}`);
        }
      }), 60_000);

      it('a cursor from another sort or filter is INVALID_ARGUMENT, and so is a made-up one', run(async (store) => {
        const col = await loadDataset(store);
        const page = await col.find({}, { sort: { n: 1 }, limit: 2 });
        assert.ok(page.next);
        await rejectsWith(col.find({}, { sort: { n: -1 }, limit: 2, after: page.next }), 'INVALID_ARGUMENT');
        await rejectsWith(col.find({}, { sort: { s: 1 }, limit: 2, after: page.next }), 'INVALID_ARGUMENT');
        await rejectsWith(col.find({ n: 1 }, { sort: { n: 1 }, limit: 2, after: page.next }), 'INVALID_ARGUMENT');
        await rejectsWith(col.find({}, { sort: { n: 1 }, after: 'not a cursor!' }), 'INVALID_ARGUMENT');
        await rejectsWith(col.find({}, { sort: { n: 1 }, after: 'eyJhIjoxfQ' }), 'INVALID_ARGUMENT');
      }));

      it('bad sort and limit options are INVALID_ARGUMENT', run(async (store) => {
        const col = await loadDataset(store);
        for (const sort of [{ n: 2 }, { n: 0 }, { n: 'asc' }, { '': 1 }, { $n: 1 }, { '-1': 1 }, ['n'], [['n']], [['n', 2]], [[1, 1]], [['n', 1], ['n', -1]], 'n']) {
          await rejectsWith(col.find({}, { sort: sort as unknown as Sort }), 'INVALID_ARGUMENT');
        }
        for (const limit of [0, -1, 1.5, 10_001]) await rejectsWith(col.find({}, { limit }), 'INVALID_ARGUMENT');
      }));
    });

    describe('indexes', () => {
      it('indexes() lists the declared indexes', run(async (store) => {
        const col = await store.collection('users', { indexes: [{ fields: ['email'], unique: true, name: 'by_email' }, { fields: ['team', 'age'] }] });
        const list = await col.indexes();
        const byEmail = list.find((i) => i.name === 'by_email');
        assert.deepEqual(byEmail, { name: 'by_email', fields: ['email'], unique: true });
        assert.ok(list.some((i) => i.fields.join() === 'team,age' && i.unique === false), JSON.stringify(list));
      }));

      it('a unique index violation is CONFLICT and changes nothing', run(async (store) => {
        const col = await store.collection('users', { indexes: [{ fields: ['email'], unique: true }] });
        await col.insert({ email: 'a@x', n: 1 }, { id: 'u1' });
        await col.insert({ email: 'b@x', n: 2 }, { id: 'u2' });
        await rejectsWith(col.insert({ email: 'a@x' }, { id: 'u3' }), 'CONFLICT');
        await rejectsWith(col.put('u2', { email: 'a@x', n: 3 }), 'CONFLICT');
        await rejectsWith(col.patch('u2', { email: 'a@x' }), 'CONFLICT');
        await rejectsWith(col.put('u4', { email: 'b@x' }), 'CONFLICT');
        assert.equal(await col.get('u3'), undefined);
        assert.equal(await col.get('u4'), undefined);
        assert.deepEqual(await col.get('u2'), { id: 'u2', version: 1, data: { email: 'b@x', n: 2 } });
        assert.equal(await col.count(), 2);
      }));

      it('a unique index ignores documents missing the field or holding null, and compares types strictly', run(async (store) => {
        const col = await store.collection('users', { indexes: [{ fields: ['email'], unique: true }] });
        await col.insert({ other: 1 });
        await col.insert({ other: 2 });
        await col.insert({ email: null });
        await col.insert({ email: null });
        await col.insert({ email: 1 });
        await col.insert({ email: '1' });
        await col.insert({ email: true });
        assert.equal(await col.count(), 7);
        await rejectsWith(col.insert({ email: 1 }), 'CONFLICT');
      }));

      it('a compound unique index constrains the combination', run(async (store) => {
        const col = await store.collection('users', { indexes: [{ fields: ['team', 'login'], unique: true }] });
        await col.insert({ team: 'a', login: 'x' });
        await col.insert({ team: 'b', login: 'x' });
        await col.insert({ team: 'a', login: 'y' });
        await rejectsWith(col.insert({ team: 'a', login: 'x' }), 'CONFLICT');
        assert.equal(await col.count(), 3);
      }));

      it('re-saving a document with its own unique value is fine', run(async (store) => {
        const col = await store.collection('users', { indexes: [{ fields: ['email'], unique: true }] });
        await col.put('u1', { email: 'a@x', n: 1 });
        assert.equal((await col.put('u1', { email: 'a@x', n: 2 })).version, 2);
        assert.equal((await col.patch('u1', { n: 3 })).version, 3);
      }));

      it('an index declared later is added to the existing collection', run(async (store) => {
        const first = await store.collection('users');
        await first.insert({ email: 'a@x' }, { id: 'u1' });
        await first.insert({ email: 'b@x' }, { id: 'u2' });
        const second = await store.collection('users', { indexes: [{ fields: ['email'], unique: true, name: 'by_email' }] });
        assert.ok((await second.indexes()).some((i) => i.name === 'by_email' && i.unique));
        const err = await rejectsWith(second.insert({ email: 'a@x' }), 'CONFLICT');
        assert.deepEqual(err.details, { index: 'by_email' });
        assert.equal(await second.count(), 2);
        const third = await store.collection('users', { indexes: [{ fields: ['email'], unique: true, name: 'by_email' }] });
        assert.equal((await third.indexes()).filter((i) => i.name === 'by_email').length, 1);
      }));

      it('an index declared again with another definition is CONFLICT naming it', run(async (store) => {
        await store.collection('users', { indexes: [{ fields: ['email'], unique: true, name: 'by_email' }] });
        const err = await rejectsWith(store.collection('users', { indexes: [{ fields: ['email', 'team'], unique: true, name: 'by_email' }] }), 'CONFLICT');
        assert.deepEqual(err.details, { index: 'by_email' });
      }));

      it('a unique index over data that breaks it is CONFLICT and is not created', run(async (store) => {
        const col = await store.collection('users');
        await col.insert({ email: 'a@x' });
        await col.insert({ email: 'a@x' });
        const err = await rejectsWith(store.collection('users', { indexes: [{ fields: ['email'], unique: true, name: 'by_email' }] }), 'CONFLICT');
        assert.deepEqual(err.details, { index: 'by_email' });
        assert.ok(!(await col.indexes()).some((i) => i.name === 'by_email'));
        await col.insert({ email: 'a@x' });
        assert.equal(await col.count({ email: 'a@x' }), 3);
      }));

      it('bad index specs are INVALID_ARGUMENT', run(async (store) => {
        for (const indexes of [[{ fields: [] }], [{ fields: ['$a'] }], [{ fields: ['a'], name: 'bad-name' }], [{ fields: ['a'], unique: 'yes' }], [{ fields: ['_id'] }], [{ fields: ['a', 'a'] }], [{ fields: ['-a'] }]]) {
          await rejectsWith(store.collection('users', { indexes: indexes as never }), 'INVALID_ARGUMENT');
        }
      }));
    });

    describe('names', () => {
      it('collection names that differ only by case are ALREADY_EXISTS and never share documents', run(async (store) => {
        const tenant = await store.collection('tenantA');
        await tenant.insert({ secret: 'a' }, { id: 'd1' });
        await rejectsWith(store.collection('TENANTA'), 'ALREADY_EXISTS');
        await rejectsWith(store.collection('tenanta'), 'ALREADY_EXISTS');
        assert.deepEqual(await store.collections(), ['tenantA']);
        const again = await store.collection('tenantA');
        assert.deepEqual((await again.get('d1'))?.data, { secret: 'a' });
      }));

      it('index names that differ only by case are refused, declared together or one after the other', run(async (store) => {
        await rejectsWith(store.collection('users', { indexes: [{ fields: ['a'], name: 'k' }, { fields: ['b'], name: 'K' }] }), 'INVALID_ARGUMENT');
        const col = await store.collection('users', { indexes: [{ fields: ['email'], unique: true, name: 'k' }] });
        await rejectsWith(store.collection('users', { indexes: [{ fields: ['team'], name: 'K' }] }), 'ALREADY_EXISTS');
        assert.deepEqual(await col.indexes(), [{ name: 'k', fields: ['email'], unique: true }]);
        await col.insert({ email: 'a@x' });
        await rejectsWith(col.insert({ email: 'a@x' }), 'CONFLICT');
      }));

      it('an index of one collection never replaces or hides another collection\'s (users/x__email beside users__x/email)', run(async (store) => {
        const victim = await store.collection('users__x', { indexes: [{ fields: ['email'], unique: true, name: 'email' }] });
        const users = await store.collection('users', { indexes: [{ fields: ['email'], unique: true, name: 'x__email' }] });
        for (const [col, label] of [[victim, 'users__x'], [users, 'users']] as const) {
          await col.insert({ email: 'a@x' });
          await rejectsWith(col.insert({ email: 'a@x' }), 'CONFLICT');
          assert.equal(await col.count(), 1, label);
        }
        // Opening both again (where layouts are brought up to date) leaves both unique indexes in force.
        await store.collection('users', { indexes: [{ fields: ['email'], unique: true, name: 'x__email' }] });
        const reopened = await store.collection('users__x', { indexes: [{ fields: ['email'], unique: true, name: 'email' }] });
        await rejectsWith(reopened.insert({ email: 'a@x' }), 'CONFLICT');
        assert.equal(await reopened.count(), 1);
      }));
    });

    describe('migrations', () => {
      const counting = (calls: number[], version: number): Migration => ({
        version,
        up: async (col) => {
          calls.push(version);
          for (const doc of (await col.find({}, { limit: 10_000 })).items) await col.patch(doc.id, { [`v${version}`]: true });
        },
      });

      it('run once per version, in order, across opens', run(async (store) => {
        const seed = await store.collection('items');
        await seed.insert({ a: 1 }, { id: 'i1' });
        const calls: number[] = [];
        await store.collection('items', { migrations: [counting(calls, 2), counting(calls, 1)] });
        await store.collection('items', { migrations: [counting(calls, 1), counting(calls, 2)] });
        assert.deepEqual(calls, [1, 2]);
        await store.collection('items', { migrations: [counting(calls, 1), counting(calls, 2), counting(calls, 3)] });
        assert.deepEqual(calls, [1, 2, 3]);
        assert.deepEqual((await seed.get('i1'))?.data, { a: 1, v1: true, v2: true, v3: true });
      }));

      it('concurrent opens run each migration once', run(async (store) => {
        const calls: number[] = [];
        await Promise.all([1, 2, 3].map(() => store.collection('items', { migrations: [counting(calls, 1), counting(calls, 2)] })));
        assert.deepEqual(calls, [1, 2]);
      }));

      it('a failed migration is reported, not recorded, and runs again on the next open', run(async (store) => {
        const calls: number[] = [];
        const failing: Migration = { version: 2, up: async () => { calls.push(-2); throw new Error('boom'); } };
        const err = await rejectsWith(store.collection('items', { migrations: [counting(calls, 1), failing] }), 'INTERNAL');
        assert.match(err.message, /migration 2/);
        await store.collection('items', { migrations: [counting(calls, 1), counting(calls, 2)] });
        assert.deepEqual(calls, [1, -2, 2]);
      }));

      it('migrations of one collection do not count for another', run(async (store) => {
        const calls: number[] = [];
        await store.collection('one', { migrations: [counting(calls, 1)] });
        await store.collection('two', { migrations: [counting(calls, 1)] });
        assert.deepEqual(calls, [1, 1]);
      }));
    });

    describe('bad input changes nothing', () => {
      it('bad collection names are INVALID_ARGUMENT', run(async (store) => {
        for (const bad of ['', '..', '1abc', '_a', 'a-b', 'a.b', 'a/b', 'a b', 'a\u0000', 'x'.repeat(65), 'é']) {
          await rejectsWith(store.collection(bad), 'INVALID_ARGUMENT');
        }
        assert.ok(await store.collection('a'.repeat(64)));
      }));

      it('bad ids are INVALID_ARGUMENT', run(async (store) => {
        const col = await store.collection('things');
        for (const id of ['', 'a\u0000b', 'x'.repeat(256), 'é'.repeat(128), '\ud800']) {
          await rejectsWith(col.insert({ a: 1 }, { id }), 'INVALID_ARGUMENT');
          await rejectsWith(col.put(id, { a: 1 }), 'INVALID_ARGUMENT');
          await rejectsWith(col.get(id), 'INVALID_ARGUMENT');
          await rejectsWith(col.delete(id), 'INVALID_ARGUMENT');
        }
        assert.equal(await col.count(), 0);
        assert.ok(await col.insert({ a: 1 }, { id: 'x'.repeat(255) }));
      }));

      it('data that a filter could not address, or that is not a JSON object, is INVALID_ARGUMENT', run(async (store) => {
        const col = await store.collection('things');
        await col.put('keep', { a: 1 });
        const bad: unknown[] = [
          { $set: 1 },
          { 'a.b': 1 },
          { 'a\u0000': 1 },
          { nested: { $x: 1 } },
          { list: [{ 'k.k': 1 }] },
          { '-1': true },
          { nested: [{ '-k': 1 }] },
          { _id: 'x' },
          { a: undefined },
          { a: Number.NaN },
          { a: new Date(0) },
          { a: () => 1 },
          [1, 2],
          null,
          'text',
          new Map(),
        ];
        for (const data of bad) {
          await rejectsWith(col.insert(data as JsonObject), 'INVALID_ARGUMENT');
          await rejectsWith(col.put('keep', data as JsonObject), 'INVALID_ARGUMENT');
          await rejectsWith(col.insertMany([{ ok: 1 }, data as JsonObject]), 'INVALID_ARGUMENT');
        }
        for (const changes of [{ $set: { a: 2 } }, { 'a.b': 1 }, { _id: 'y' }, { '-a': 1 }, [1]]) {
          await rejectsWith(col.patch('keep', changes as unknown as JsonObject), 'INVALID_ARGUMENT');
        }
        assert.deepEqual(await snapshot(col), [{ id: 'keep', version: 1, data: { a: 1 } }]);
      }));

      it('a document over maxDocumentBytes is RESOURCE_EXHAUSTED, also when a patch makes it so', run(async (store) => {
        const col = await store.collection('things');
        await col.put('keep', { a: 1 });
        const big = { blob: 'x'.repeat(store.maxDocumentBytes) };
        await rejectsWith(col.insert(big), 'RESOURCE_EXHAUSTED');
        await rejectsWith(col.put('keep', big), 'RESOURCE_EXHAUSTED');
        await rejectsWith(col.patch('keep', big), 'RESOURCE_EXHAUSTED');
        await rejectsWith(col.insertMany([{ ok: 1 }, big]), 'RESOURCE_EXHAUSTED');
        assert.deepEqual(await snapshot(col), [{ id: 'keep', version: 1, data: { a: 1 } }]);
      }));

      it('bad ifVersion is INVALID_ARGUMENT', run(async (store) => {
        const col = await store.collection('things');
        await col.put('keep', { a: 1 });
        for (const ifVersion of [-1, 1.5, Number.NaN]) {
          await rejectsWith(col.put('keep', { a: 2 }, { ifVersion }), 'INVALID_ARGUMENT');
          await rejectsWith(col.delete('keep', { ifVersion }), 'INVALID_ARGUMENT');
        }
        assert.deepEqual(await col.get('keep'), { id: 'keep', version: 1, data: { a: 1 } });
      }));
    });

    describe('lifecycle', () => {
      it('calls after close() are CLOSED, and close() is idempotent', async () => {
        const store = await factory();
        const col = await store.collection('things');
        await col.put('a', { a: 1 });
        await store.close();
        assert.equal(store.closed, true);
        await rejectsWith(store.collection('things'), 'CLOSED');
        await rejectsWith(store.collections(), 'CLOSED');
        await rejectsWith(col.get('a'), 'CLOSED');
        await rejectsWith(col.put('a', { a: 2 }), 'CLOSED');
        await rejectsWith(col.find(), 'CLOSED');
        await store.close();
      });

      it('an already-aborted signal is CANCELLED and changes nothing', run(async (store) => {
        const col = await store.collection('things');
        const signal = AbortSignal.abort();
        await rejectsWith(store.collection('other', { signal }), 'CANCELLED');
        await rejectsWith(col.insert({ a: 1 }, { id: 'x', signal }), 'CANCELLED');
        await rejectsWith(col.put('x', { a: 1 }, { signal }), 'CANCELLED');
        await rejectsWith(col.find({}, { signal }), 'CANCELLED');
        assert.equal(await col.get('x'), undefined);
      }));
    });

    describe('capabilities', () => {
      it('insertMany is all-or-nothing when `transactions` is declared', run(async (store) => {
        const col = await store.collection('users', { indexes: [{ fields: ['email'], unique: true }] });
        await col.insert({ email: 'taken' });
        if (store.capabilities.has('transactions')) {
          await rejectsWith(col.insertMany([{ email: 'new1' }, { email: 'taken' }, { email: 'new2' }]), 'CONFLICT');
          await rejectsWith(col.insertMany([{ email: 'dup' }, { email: 'dup' }]), 'CONFLICT');
          assert.equal(await col.count(), 1);
        } else {
          // Without the capability a partial insert is allowed, but the violation must still be reported.
          await rejectsWith(col.insertMany([{ email: 'new1' }, { email: 'taken' }]), 'CONFLICT');
          assert.equal(await col.count({ email: 'taken' }), 1);
        }
      }));

      it('declares only known capabilities', run(async (store) => {
        for (const c of store.capabilities) assert.ok(['transactions'].includes(c), `unknown capability ${c}`);
      }));
    });
  });
}
