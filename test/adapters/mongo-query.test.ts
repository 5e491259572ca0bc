import { Aggregator, Query } from 'mingo';
import { describe, expect, it } from 'vitest';
import { matchQuery, sortStages } from '../../src/adapters/mongo/mongo-query.js';
import { validateFilter } from '../../src/core/documents/filter.js';
import { sortValues, validateSort, type SortKeys } from '../../src/core/documents/sort.js';
import type { JsonObject } from '../../src/ports/common.js';
import { FILTER_CASES, FILTER_DATASET, SORT_CASES } from '../../src/testing/documents-cases.js';

// mingo compares strings by UTF-16 unit, the MongoDB server (and Stowage) by code point: these two cases of
// the table differ only there.
const MINGO_STRING_ORDER = new Set(['astral character is above U+FFFD', 'U+FFFD is below an astral character']);

describe('mongodb:// filter translation (evaluated offline by mingo)', () => {
  it('the $match of every case of the filter table selects exactly the expected documents', () => {
    // The adapter stores { _id, v, d: data }; the translation reads `$d` and `$_id`.
    const docs = Object.entries(FILTER_DATASET).map(([id, data]) => ({ _id: id, d: data }));
    const failures: string[] = [];
    for (const c of FILTER_CASES) {
      if (MINGO_STRING_ORDER.has(c.name)) continue;
      // The adapter is given the validated copy (validateFilter normalises, e.g. `$type` to a list).
      const query = new Query(matchQuery(validateFilter(c.filter)) as Record<string, unknown>);
      const got = docs.filter((d) => query.test(d)).map((d) => d._id);
      if (got.join() !== c.expected.join()) failures.push(`${c.name}: [${got.join()}], expected [${c.expected.join()}]`);
    }
    expect(failures).toEqual([]);
    expect(FILTER_CASES.filter((c) => MINGO_STRING_ORDER.has(c.name))).toHaveLength(MINGO_STRING_ORDER.size);
  });
});

describe('mongodb:// sort translation (evaluated offline by mingo)', () => {
  const docs = Object.entries(FILTER_DATASET).map(([id, data]) => ({ _id: id, d: data }));
  const run = (sort: SortKeys, after?: { values: unknown[]; id: string }): string[] =>
    (new Aggregator([...sortStages({ sort, after })]).run(structuredClone(docs)) as { _id: string }[]).map((d) => d._id);

  // mingo orders strings by UTF-16 unit, MongoDB by code point: the sorts on `s` differ only there.
  const cases = SORT_CASES.filter((c) => !Object.keys(c.sort).includes('s'));

  it('orders every sort of the table as the reference does (BSON ranks, arrays by their smallest or largest element)', () => {
    expect(cases.length).toBeGreaterThan(5);
    for (const c of cases) expect(run(validateSort(c.sort)), JSON.stringify(c.sort)).toEqual(c.expected);
  });

  it('continues strictly after a keyset position', () => {
    for (const c of cases) {
      const sort = validateSort(c.sort);
      const paged: string[] = [];
      while (paged.length < c.expected.length) {
        const last = paged.at(-1);
        const after = last === undefined ? undefined : { values: sortValues(sort, last, FILTER_DATASET[last] as JsonObject), id: last };
        paged.push(...run(sort, after).slice(0, 3));
      }
      expect(paged, JSON.stringify(c.sort)).toEqual(c.expected);
    }
  });
});
