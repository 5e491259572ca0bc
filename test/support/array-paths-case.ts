/**
 * The case both SQL documents suites run against the record of array paths: one connection queries paths that
 * held no array, another then writes arrays at them through every kind of write, and the first connection's
 * next queries must see them.
 */
import type { JsonObject } from '../../src/ports/common.js';
import type { Collection, Filter } from '../../src/ports/documents.js';

/** The queries, each over a path that holds no array in {@link ARRAY_CASE_SEED}. */
export const ARRAY_CASE_QUERIES: readonly Filter[] = [{ n: 7 }, { 'o.k': 7 }, { 'list.v.w': 7 }, { n: { $ne: 7 } }, { 'o.k': { $nin: [7] } }, { n: { $gt: 48 } }];

/** 50 documents with no array at `n` or `o.k`, and none inside `list`'s objects. */
export const ARRAY_CASE_SEED = Array.from({ length: 50 }, (_, i) => ({ n: i, o: { k: i }, list: [{ v: { w: i } }] }));

/** What each query counts on the seed alone, and after {@link writeArraysAtNewPaths}. */
export const ARRAY_CASE_COUNTS = { before: [1, 1, 1, 49, 49, 1], after: [2, 2, 2, 50, 50, 3] } as const;

/**
 * Puts arrays at the queried paths through each kind of write: insert, replace, create by put, and a merge
 * patch that puts an array inside an array of objects.
 */
export async function writeArraysAtNewPaths(col: Collection): Promise<void> {
  await col.insert({ n: [7, 100] }, { id: 'new' });
  const [three, four] = (await col.find({ n: { $in: [3, 4] } })).items;
  if (three === undefined || four === undefined) throw new Error('the seed lacks n: 3 or n: 4');
  await col.put(three.id, { n: 3, o: { k: [7] } });
  await col.put('up', { n: [49.5] });
  await col.patch(four.id, { list: [{ v: [{ w: 7 }] }] });
}

/** Documents of the upgrade case: arrays at `n` and, nested, inside `o`'s objects. */
export const UPGRADE_CASE_DOCS: readonly JsonObject[] = [{ n: 1, o: { k: 2 } }, { n: [5], o: [{ k: [[6]] }] }, { s: 'a [ b' }];

/**
 * Queries of the upgrade case, and what each counts on {@link UPGRADE_CASE_DOCS}: each needs the array arm at a
 * path that a collection whose record was lost (as a version before the record left it) must get back from its
 * documents.
 */
export const UPGRADE_CASE: readonly { readonly filter: Filter; readonly count: number }[] = [
  { filter: { n: 5 }, count: 1 },
  { filter: { 'o.k': 6 }, count: 0 },
  { filter: { 'o.k': { $size: 1 } }, count: 1 },
  { filter: { 'o.k': { $ne: 2 } }, count: 2 },
];
