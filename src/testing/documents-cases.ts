/**
 * The documents filter table: a fixed dataset and filters with their expected results written out by hand
 * (never computed by an evaluator), so that every adapter — and the reference evaluator itself — is checked
 * against the documented semantics. SQL and MongoDB adapters reuse it in their own unit tests.
 *
 * @module
 */
import type { JsonObject } from '../ports/common.js';
import type { Filter, Sort } from '../ports/documents.js';

/** `U+FFFD`: a BMP character above the surrogate range (sorts after astral characters by UTF-16 unit). */
const BMP_HIGH = '\uFFFD';
/** `U+1F600`: an astral character (a surrogate pair in UTF-16). */
const ASTRAL = '\u{1F600}';

/**
 * The dataset: ids `a`…`l`. It mixes missing fields and nulls, arrays (with nulls, booleans, nested arrays),
 * nested objects, an object where a path expects a scalar and an array where it expects an object, numbers
 * beside numeric strings, booleans beside `1`, and strings whose code-point order differs from their UTF-16
 * order.
 */
export const FILTER_DATASET: Readonly<Record<string, JsonObject>> = Object.freeze({
  a: { n: 1, s: 'apple', b: true, tags: ['x', 'y'], o: { k: 1, deep: { z: 'a' } }, m: 1 },
  b: { n: 2, s: 'banana', b: false, tags: ['y'], o: { k: 2 }, m: '1' },
  c: { n: 3.5, s: 'cherry', tags: [], o: { k: null }, m: true },
  d: { n: -1, s: 'Apple', b: null, tags: ['x', 1, null], m: null },
  e: { n: null, s: '', tags: 'x', o: 'flat', m: [1, '1'] },
  f: { n: 10, s: ASTRAL, m: { a: 1 } },
  g: { n: 0, s: BMP_HIGH },
  h: { n: 1000, s: '\u00e9', b: 1 },
  i: {},
  j: { n: '5', s: 5, b: 'true', tags: [['x']], o: { k: '1' } },
  k: { n: 1, s: 'apple pie', tags: ['z'], o: { deep: { z: 'b' } } },
  l: { n: 0.5, s: 'b', tags: [true, false], b: true, o: [{ k: 1 }] },
});

/** One filter and the ids it must return, sorted. */
export interface FilterCase {
  /** What the case checks. */
  readonly name: string;
  /** The filter. */
  readonly filter: Filter;
  /** The matching ids of {@link FILTER_DATASET}, in id order. */
  readonly expected: readonly string[];
}

const ALL = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l'] as const;

/** The filter table: every case's expected ids were worked out by hand from the documented semantics. */
export const FILTER_CASES: readonly FilterCase[] = Object.freeze([
  { name: 'empty filter matches everything', filter: {}, expected: ALL },
  { name: 'bare number equality', filter: { n: 1 }, expected: ['a', 'k'] },
  { name: '$eq number', filter: { n: { $eq: 1 } }, expected: ['a', 'k'] },
  { name: 'number equality ignores strings and booleans, matches array elements', filter: { m: 1 }, expected: ['a', 'e'] },
  { name: 'string equality ignores numbers', filter: { m: '1' }, expected: ['b', 'e'] },
  { name: 'true does not equal 1', filter: { m: true }, expected: ['c'] },
  { name: 'boolean equality', filter: { b: true }, expected: ['a', 'l'] },
  { name: '1 does not equal true or "true"', filter: { b: 1 }, expected: ['h'] },
  { name: 'false equality', filter: { b: false }, expected: ['b'] },
  { name: 'zero equality', filter: { n: 0 }, expected: ['g'] },
  { name: 'null matches null and missing', filter: { n: null }, expected: ['e', 'i'] },
  { name: 'null matches missing widely', filter: { b: null }, expected: ['c', 'd', 'e', 'f', 'g', 'i', 'k'] },
  { name: 'null matches an array holding null', filter: { tags: null }, expected: ['d', 'f', 'g', 'h', 'i'] },
  { name: 'array contains a string; nested arrays do not count', filter: { tags: 'x' }, expected: ['a', 'd', 'e'] },
  { name: 'array contains a number', filter: { tags: 1 }, expected: ['d'] },
  { name: 'array contains a boolean', filter: { tags: true }, expected: ['l'] },
  { name: 'two conditions', filter: { tags: 'y', n: 2 }, expected: ['b'] },
  { name: 'empty string', filter: { s: '' }, expected: ['e'] },
  { name: 'number where others have strings', filter: { s: 5 }, expected: ['j'] },
  { name: 'non-ASCII string', filter: { s: '\u00e9' }, expected: ['h'] },
  { name: '$ne is the negation of $eq (array contains)', filter: { tags: { $ne: 'x' } }, expected: ['b', 'c', 'f', 'g', 'h', 'i', 'j', 'k', 'l'] },
  { name: '$ne matches missing fields', filter: { n: { $ne: 1 } }, expected: ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'l'] },
  { name: '$ne true', filter: { b: { $ne: true } }, expected: ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k'] },
  { name: '$ne null matches present non-null values', filter: { m: { $ne: null } }, expected: ['a', 'b', 'c', 'e', 'f'] },
  { name: '$gt number skips numeric strings', filter: { n: { $gt: 1 } }, expected: ['b', 'c', 'f', 'h'] },
  { name: '$gte number', filter: { n: { $gte: 1 } }, expected: ['a', 'b', 'c', 'f', 'h', 'k'] },
  { name: '$lt number skips null', filter: { n: { $lt: 1 } }, expected: ['d', 'g', 'l'] },
  { name: '$lte 0', filter: { n: { $lte: 0 } }, expected: ['d', 'g'] },
  { name: '$gte 1000', filter: { n: { $gte: 1000 } }, expected: ['h'] },
  { name: 'open range', filter: { n: { $gt: 0, $lt: 5 } }, expected: ['a', 'b', 'c', 'k', 'l'] },
  { name: 'string range skips numbers', filter: { n: { $gt: '4' } }, expected: ['j'] },
  { name: 'string $gt by code point', filter: { s: { $gt: 'b' } }, expected: ['b', 'c', 'f', 'g', 'h'] },
  { name: 'upper case sorts before lower case', filter: { s: { $lt: 'B' } }, expected: ['d', 'e'] },
  { name: 'astral character is above U+FFFD', filter: { s: { $gt: BMP_HIGH } }, expected: ['f'] },
  { name: 'U+FFFD is below an astral character', filter: { s: { $lt: ASTRAL } }, expected: ['a', 'b', 'c', 'd', 'e', 'g', 'h', 'k', 'l'] },
  { name: 'prefix range', filter: { s: { $gte: 'apple', $lt: 'apple~' } }, expected: ['a', 'k'] },
  { name: 'number range skips booleans', filter: { b: { $gte: 0 } }, expected: ['h'] },
  { name: 'a range matches an array with an element of its type in range', filter: { tags: { $gt: 0 } }, expected: ['d'] },
  { name: 'a string range matches strings and elements, not nested arrays', filter: { tags: { $gte: 'x' } }, expected: ['a', 'b', 'd', 'e', 'k'] },
  { name: 'each bound of a range may hold for another element', filter: { tags: { $gt: 'x', $lt: 'y' } }, expected: ['a'] },
  { name: '$in mixes types strictly', filter: { n: { $in: [1, 2, '5'] } }, expected: ['a', 'b', 'j', 'k'] },
  { name: '$in [] matches nothing', filter: { n: { $in: [] } }, expected: [] },
  { name: '$nin [] matches everything', filter: { n: { $nin: [] } }, expected: ALL },
  { name: '$nin with null excludes missing', filter: { n: { $nin: [1, null] } }, expected: ['b', 'c', 'd', 'f', 'g', 'h', 'j', 'l'] },
  { name: '$in over array elements', filter: { tags: { $in: ['y', 1] } }, expected: ['a', 'b', 'd'] },
  { name: '$nin over array elements', filter: { tags: { $nin: ['x', 'y'] } }, expected: ['c', 'f', 'g', 'h', 'i', 'j', 'k', 'l'] },
  { name: '$in with null and true', filter: { m: { $in: [null, true] } }, expected: ['c', 'd', 'g', 'h', 'i', 'j', 'k', 'l'] },
  // Lists longer than a few values are compared as one set by the SQL adapters: the same rules must hold.
  { name: 'long $in mixes types strictly, null matches missing', filter: { n: { $in: [1, 2, '5', 7, 8, 9, 11, null, false] } }, expected: ['a', 'b', 'e', 'i', 'j', 'k'] },
  { name: 'long $in over array elements', filter: { tags: { $in: ['y', 1, 'q', 'r', 's', 't', false] } }, expected: ['a', 'b', 'd', 'l'] },
  { name: 'long $in of strings by code point', filter: { s: { $in: ['apple', 'b', '\u00e9', '', 'zz', 'Apple ', ASTRAL] } }, expected: ['a', 'e', 'f', 'h', 'l'] },
  { name: 'long $nin over array elements', filter: { tags: { $nin: ['x', 'y', 'q', 'r', 's', 't'] } }, expected: ['c', 'f', 'g', 'h', 'i', 'j', 'k', 'l'] },
  { name: 'long _id $in', filter: { _id: { $in: ['a', 'z', 'l', 'c', 'q', 'r', 1] } }, expected: ['a', 'c', 'l'] },
  { name: 'long _id $nin', filter: { _id: { $nin: ['a', 'z', 'l', 'c', 'q', 'r', 'b', 'd', 'e', 'f'] } }, expected: ['g', 'h', 'i', 'j', 'k'] },
  { name: '$in booleans and numbers', filter: { b: { $in: [true, 1] } }, expected: ['a', 'h', 'l'] },
  { name: '$size 0 matches only an empty array', filter: { tags: { $size: 0 } }, expected: ['c'] },
  { name: '$size 2 counts nulls and nested arrays as elements', filter: { tags: { $size: 2 } }, expected: ['a', 'l'] },
  { name: '$size never matches a scalar or a missing field', filter: { s: { $size: 1 } }, expected: [] },
  { name: '$size 1 counts a nested array as one element', filter: { tags: { $size: 1 } }, expected: ['b', 'j', 'k'] },
  { name: '$all needs every value among the elements', filter: { tags: { $all: ['x', 'y'] } }, expected: ['a'] },
  { name: '$all of one value is $eq, scalars included', filter: { tags: { $all: ['x'] } }, expected: ['a', 'd', 'e'] },
  { name: '$all [] matches nothing', filter: { tags: { $all: [] } }, expected: [] },
  { name: '$all mixes types strictly', filter: { m: { $all: [1, '1'] } }, expected: ['e'] },
  { name: '$not of a range matches missing, null and other types', filter: { n: { $not: { $gt: 1 } } }, expected: ['a', 'd', 'e', 'g', 'i', 'j', 'k', 'l'] },
  { name: '$not of $in is $nin', filter: { tags: { $not: { $in: ['x', 'y'] } } }, expected: ['c', 'f', 'g', 'h', 'i', 'j', 'k', 'l'] },
  { name: '$not of two conditions negates both together', filter: { n: { $not: { $gte: 1, $lt: 3 } } }, expected: ['c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'l'] },
  { name: '$not of $size', filter: { tags: { $not: { $size: 2 } }, s: { $lt: 'b' } }, expected: ['d', 'e', 'k'] },
  { name: '_id $all and $not', filter: { _id: { $all: ['c'], $not: { $in: ['a', 'b'] } } }, expected: ['c'] },
  { name: '$regex prefix is case-sensitive and matches array elements', filter: { s: { $regex: '^app' } }, expected: ['a', 'k'] },
  { name: '$regex prefix over array elements', filter: { tags: { $regex: '^x' } }, expected: ['a', 'd', 'e'] },
  { name: '$regex empty prefix matches every string', filter: { s: { $regex: '^' } }, expected: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'k', 'l'] },
  { name: '$regex prefix with a space', filter: { s: { $regex: '^apple p' } }, expected: ['k'] },
  { name: '$regex escaped metacharacter is literal', filter: { s: { $regex: '^apple\\.' } }, expected: [] },
  { name: '$regex non-ASCII prefix', filter: { s: { $regex: '^\u00e9' } }, expected: ['h'] },
  { name: '$regex on an astral character', filter: { s: { $regex: `^${ASTRAL}` } }, expected: ['f'] },
  { name: '$not $regex matches missing and non-strings', filter: { s: { $not: { $regex: '^a' } } }, expected: ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'l'] },
  { name: '_id $regex', filter: { _id: { $regex: '^c' } }, expected: ['c'] },
  { name: '$type string: a string or an array with a string element', filter: { tags: { $type: 'string' } }, expected: ['a', 'b', 'd', 'e', 'k'] },
  { name: '$type array', filter: { tags: { $type: 'array' } }, expected: ['a', 'b', 'c', 'd', 'j', 'k', 'l'] },
  { name: '$type null: an element counts, missing does not', filter: { tags: { $type: 'null' } }, expected: ['d'] },
  { name: '$type bool among elements', filter: { tags: { $type: 'bool' } }, expected: ['l'] },
  { name: '$type object, also as an element', filter: { o: { $type: 'object' } }, expected: ['a', 'b', 'c', 'j', 'k', 'l'] },
  { name: '$type with several names', filter: { m: { $type: ['number', 'bool'] } }, expected: ['a', 'c', 'e'] },
  { name: '$type null is not missing', filter: { n: { $type: 'null' } }, expected: ['e'] },
  { name: '$not $type matches missing', filter: { s: { $not: { $type: 'string' } } }, expected: ['i', 'j'] },
  { name: '_id $type', filter: { _id: { $type: 'string' }, n: { $type: 'number' } }, expected: ['a', 'b', 'c', 'd', 'f', 'g', 'h', 'k', 'l'] },
  { name: '$exists true includes null', filter: { b: { $exists: true } }, expected: ['a', 'b', 'd', 'h', 'j', 'l'] },
  { name: '$exists false', filter: { b: { $exists: false } }, expected: ['c', 'e', 'f', 'g', 'i', 'k'] },
  { name: 'dotted path walks into an array of objects', filter: { 'o.k': 1 }, expected: ['a', 'l'] },
  { name: 'dotted null: null, or missing outside an array', filter: { 'o.k': null }, expected: ['c', 'd', 'e', 'f', 'g', 'h', 'i', 'k'] },
  { name: 'dotted $exists walks into arrays', filter: { 'o.k': { $exists: true } }, expected: ['a', 'b', 'c', 'j', 'l'] },
  { name: 'an integer segment indexes an array (and an array found there is searched)', filter: { 'tags.0': 'x' }, expected: ['a', 'd', 'j'] },
  { name: 'an integer segment: $exists', filter: { 'tags.1': { $exists: true } }, expected: ['a', 'd', 'l'] },
  { name: 'an index past the end is missing', filter: { 'tags.5': null }, expected: ALL },
  { name: 'an index, then a key', filter: { 'o.0.k': 1 }, expected: ['l'] },
  { name: '$ne through an array: no element equal', filter: { 'o.k': { $ne: 1 } }, expected: ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k'] },
  { name: '$elemMatch of operators: one element satisfies all', filter: { tags: { $elemMatch: { $gte: 'y' } } }, expected: ['a', 'b', 'k'] },
  { name: '$elemMatch never matches a scalar', filter: { tags: { $elemMatch: { $eq: 'x' } } }, expected: ['a', 'd'] },
  { name: '$elemMatch of a filter on object elements', filter: { o: { $elemMatch: { k: 1 } } }, expected: ['l'] },
  { name: '$elemMatch: an element that is an array', filter: { tags: { $elemMatch: { $type: 'array' } } }, expected: ['j'] },
  { name: '$mod truncates toward zero', filter: { n: { $mod: [2, 0] } }, expected: ['b', 'f', 'g', 'h', 'l'] },
  { name: '$mod remainder has the sign of the value', filter: { n: { $mod: [2, -1] } }, expected: ['d'] },
  { name: 'three-step path', filter: { 'o.deep.z': 'b' }, expected: ['k'] },
  { name: 'three-step $exists', filter: { 'o.deep.z': { $exists: true } }, expected: ['a', 'k'] },
  { name: 'path through a scalar is missing', filter: { 'o.k.x': { $exists: false } }, expected: ALL },
  { name: 'present object without the sub-field', filter: { o: { $exists: true }, 'o.k': { $exists: false } }, expected: ['e', 'k'] },
  { name: 'object field exists', filter: { m: { $exists: true }, 'm.a': 1 }, expected: ['f'] },
  { name: '_id equality', filter: { _id: 'c' }, expected: ['c'] },
  { name: '_id $in', filter: { _id: { $in: ['a', 'z', 'l'] } }, expected: ['a', 'l'] },
  { name: '_id range', filter: { _id: { $gt: 'j' } }, expected: ['k', 'l'] },
  { name: '_id is never null', filter: { _id: null }, expected: [] },
  { name: '$or', filter: { $or: [{ n: 1 }, { s: 'b' }] }, expected: ['a', 'k', 'l'] },
  { name: '$or [] matches nothing', filter: { $or: [] }, expected: [] },
  { name: '$and [] matches everything', filter: { $and: [] }, expected: ALL },
  { name: '$and with a field', filter: { $and: [{ n: { $gte: 1 } }, { n: { $lt: 3 } }], b: true }, expected: ['a'] },
  { name: '$or of $exists and a value, with a field', filter: { $or: [{ b: { $exists: false } }, { b: false }], tags: { $exists: true } }, expected: ['b', 'c', 'e', 'k'] },
  { name: 'contradiction', filter: { 'o.deep': { $exists: true }, n: { $ne: 1 } }, expected: [] },
  { name: 'nested $or inside $and', filter: { $and: [{ $or: [{ tags: 'x' }, { tags: 'z' }] }, { $or: [{ n: { $lt: 0 } }, { n: 1 }] }] }, expected: ['a', 'd', 'k'] },
] satisfies FilterCase[]);

/** One sort and the full dataset order it must give. */
export interface SortCase {
  /** The sort. */
  readonly sort: Sort;
  /** All ids of {@link FILTER_DATASET} in that order. */
  readonly expected: readonly string[];
}

/** Sort orders over {@link FILTER_DATASET}, worked out by hand from the documented cross-type order (MongoDB's). */
export const SORT_CASES: readonly SortCase[] = Object.freeze<SortCase[]>([
  { sort: {}, expected: ALL },
  { sort: { s: 1 }, expected: ['i', 'j', 'e', 'd', 'a', 'k', 'l', 'b', 'c', 'h', 'g', 'f'] },
  { sort: { s: -1 }, expected: ['f', 'g', 'h', 'c', 'b', 'l', 'k', 'a', 'd', 'e', 'j', 'i'] },
  { sort: { n: 1 }, expected: ['e', 'i', 'd', 'g', 'l', 'a', 'k', 'b', 'c', 'f', 'h', 'j'] },
  { sort: { n: -1 }, expected: ['j', 'h', 'f', 'c', 'b', 'a', 'k', 'l', 'g', 'd', 'e', 'i'] },
  { sort: { b: 1 }, expected: ['c', 'd', 'e', 'f', 'g', 'i', 'k', 'h', 'j', 'b', 'a', 'l'] },
  { sort: { b: -1, n: 1 }, expected: ['l', 'a', 'b', 'j', 'h', 'e', 'i', 'd', 'g', 'k', 'c', 'f'] },
  // BSON order: missing and null, numbers, strings, objects, arrays, booleans; an array by its smallest element.
  { sort: { m: 1 }, expected: ['d', 'g', 'h', 'i', 'j', 'k', 'l', 'a', 'e', 'b', 'f', 'c'] },
  // A path through an array of objects sorts by what it reaches there.
  { sort: { 'o.k': -1 }, expected: ['j', 'b', 'a', 'l', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'k'] },
  // Ascending by the smallest element (an empty array first of all, null below strings), descending by the largest.
  { sort: { tags: 1 }, expected: ['c', 'd', 'f', 'g', 'h', 'i', 'a', 'e', 'b', 'k', 'j', 'l'] },
  { sort: { tags: -1 }, expected: ['l', 'j', 'k', 'a', 'b', 'd', 'e', 'f', 'g', 'h', 'i', 'c'] },
  // Objects rank equal to each other (then by id), an array of one object as an object.
  { sort: { o: 1 }, expected: ['d', 'f', 'g', 'h', 'i', 'e', 'a', 'b', 'c', 'j', 'k', 'l'] },
  { sort: { _id: -1 }, expected: [...ALL].reverse() },
]);
