import { describe, expect, it } from 'vitest';
import { StowageError } from '../../src/ports/errors.js';
import type { DocumentRecord } from '../../src/ports/documents.js';
import { compareCodePoints, matchesFilter, validateFilter } from '../../src/core/documents/filter.js';
import { decodeCursor, documentComparator, encodeCursor, queryFingerprint, validateSort } from '../../src/core/documents/sort.js';
import { uuidv7 } from '../../src/core/documents/uuidv7.js';
import { mergePatch } from '../../src/core/documents/document-store.js';
import { FILTER_CASES, FILTER_DATASET, SORT_CASES } from '../../src/testing/documents-cases.js';
import { filterToSql } from '../../src/adapters/sql/filter-sql.js';
import { mysqlPath } from '../../src/adapters/mysql/mysql-dialect.js';
import { sqlitePath, sqliteDialect } from '../../src/adapters/sqlite/sqlite-dialect.js';

const records: DocumentRecord[] = Object.entries(FILTER_DATASET).map(([id, data]) => ({ id, version: 1, data }));

describe('reference filter evaluator', () => {
  for (const c of FILTER_CASES) {
    it(`${c.name}: ${JSON.stringify(c.filter)}`, () => {
      const filter = validateFilter(c.filter);
      expect(records.filter((r) => matchesFilter(filter, r.id, r.data)).map((r) => r.id)).toEqual(c.expected);
    });
  }

  it('compares strings by code point, not by UTF-16 unit', () => {
    expect('\u{1F600}' < '\uFFFD').toBe(true);
    expect(compareCodePoints('\u{1F600}', '\uFFFD')).toBeGreaterThan(0);
    expect(compareCodePoints('a\u{10000}', 'a\u{10001}')).toBeLessThan(0);
    expect(compareCodePoints('ab', 'abc')).toBeLessThan(0);
    expect(compareCodePoints('é', 'é')).toBe(0);
  });

  it('rejects filters outside the language with INVALID_ARGUMENT', () => {
    for (const bad of [{ a: { $regex: 'x' } }, { a: { $in: 'x' } }, { $or: {} }, { a: [1] }, { a: { b: 1 } }, { $not: {} }]) {
      expect(() => validateFilter(bad)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }) as unknown as Error);
    }
  });
});

describe('reference sort order and cursors', () => {
  for (const { sort, expected } of SORT_CASES) {
    it(`orders the dataset by ${JSON.stringify(sort)}`, () => {
      expect([...records].sort(documentComparator(validateSort(sort))).map((r) => r.id)).toEqual(expected);
    });
  }

  it('a cursor round-trips its position and refuses another query', () => {
    const sort = validateSort({ n: 1, o: -1 });
    const fp = queryFingerprint({}, sort);
    const cursor = encodeCursor(fp, sort, 'x', { n: 2, o: { deep: 1 } });
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor, fp, sort)).toEqual({ values: [2, {}], id: 'x' });
    expect(decodeCursor(encodeCursor(fp, sort, 'y', {}), fp, sort)).toEqual({ values: [undefined, undefined], id: 'y' });
    expect(() => decodeCursor(cursor, queryFingerprint({ a: 1 }, sort), sort)).toThrow(StowageError);
  });
});

describe('uuidv7 and merge patch', () => {
  it('makes strictly increasing version-7 ids', () => {
    const ids = Array.from({ length: 5000 }, () => uuidv7());
    expect(ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id))).toBe(true);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('follows RFC 7386', () => {
    expect(mergePatch({ a: 'b', c: { d: 'e', f: 'g' } }, { a: 'z', c: { f: null } })).toEqual({ a: 'z', c: { d: 'e' } });
    expect(mergePatch({ a: [1, 2] }, { a: [3] })).toEqual({ a: [3] });
    expect(mergePatch({ a: 1 }, { b: { c: null } })).toEqual({ a: 1, b: {} });
    expect(mergePatch('x', { a: 1 })).toEqual({ a: 1 });
  });
});

describe('SQL JSON path literals', () => {
  it('double a quote and refuse what could end the JSON quoting or the literal, whatever the SQL mode', () => {
    expect(mysqlPath(["it's", 'a b'])).toBe(`'$."it''s"."a b"'`);
    expect(sqlitePath(["it's"])).toBe(`'$."it''s"'`);
    for (const segment of ['a\\', "x\\'", 'a"b', 'a\u0000', 'a\nb']) {
      expect(() => mysqlPath([segment])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }) as unknown as Error);
      expect(() => sqlitePath([segment])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }) as unknown as Error);
    }
  });

  it('join a thousand branches as a balanced tree, not a chain SQLite would refuse', () => {
    const { sql } = filterToSql({ $or: Array.from({ length: 1024 }, (_, i) => ({ n: i })) }, sqliteDialect);
    let depth = 0;
    let deepest = 0;
    for (const ch of sql) {
      if (ch === '(') deepest = Math.max(deepest, ++depth);
      else if (ch === ')') depth--;
    }
    expect(deepest).toBeLessThan(40);
  });
});
