import { describe, expect, it } from 'vitest';
import { arrayPathKey, newArrayPaths } from '../../src/adapters/sql/array-paths.js';

describe('the record of array paths (sqlite and mysql documents)', () => {
  it('finds every key path holding an array, array positions left out, through arrays of objects and arrays in arrays', () => {
    const doc = { a: [{ b: [1] }, [{ c: [2] }], 3], o: { p: { q: [] }, r: 1 }, s: 'x [ y', 'x y': [0] };
    const paths = newArrayPaths(doc, new Set()).map((key) => JSON.parse(key) as string[]);
    expect(paths.sort()).toEqual([['a'], ['a', 'b'], ['a', 'c'], ['x y'], ['o', 'p', 'q']].sort());
  });

  it('leaves out the paths already recorded, and finds none in a document without arrays', () => {
    const known = new Set([arrayPathKey(['a']), arrayPathKey(['a', 'b'])]);
    expect(newArrayPaths({ a: [{ b: [1], c: [2] }] }, known)).toEqual([arrayPathKey(['a', 'c'])]);
    expect(newArrayPaths({ a: { b: { c: 1 } }, d: null }, new Set())).toEqual([]);
  });
});
