import { Query } from 'mingo';
import { describe, expect, it } from 'vitest';
import { matchQuery } from '../../src/adapters/mongo/mongo-query.js';
import { validateFilter } from '../../src/core/documents/filter.js';
import { FILTER_CASES, FILTER_DATASET } from '../../src/testing/documents-cases.js';

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
