/**
 * The documents filter language and sort order as MongoDB queries.
 *
 * MongoDB's own query semantics differ from the reference in corners: `null` through an array's elements,
 * an integer segment also read as a key, comparisons inside nested arrays, and sorting (BSON order, arrays by
 * their smallest element). So the exact condition is an aggregation expression (`$expr`) that walks paths
 * as the reference does (`reachedExpression`, `missingExpression`), and a native condition that may only
 * match *more* documents is added in front, so that indexes can still narrow the scan. Sort keys are
 * computed the reference's way too (`sortKeyExpression`: ranks, and arrays' smallest or largest element).
 *
 * Stored documents are `{ _id: id, v: version, d: data }`.
 *
 * @module
 */
import type { Document } from 'mongodb';
import type { JsonPrimitive } from '../../ports/common.js';
import type { DriverFind, Filter } from '../../ports/documents.js';
import { fieldConditions, ID_PATH, INDEX_SEGMENT } from '../../driver/index.js';
import { typeRank } from '../../driver/index.js';

const NUMBER_TYPES = ['double', 'int', 'long', 'decimal'];
const lit = (value: unknown): Document => ({ $literal: value });

const TYPE = { $type: '$$v' };
const AS_ARRAY = { $cond: [{ $isArray: '$$v' }, '$$v', []] };

/** `[x]`, or `[]` when `x` is missing. */
function present(x: unknown): Document {
  return { $let: { vars: { x }, in: { $cond: [{ $eq: [{ $type: '$$x' }, 'missing'] }, [], ['$$x']] } } };
}

const get = (segment: string, input: unknown): Document => ({ $getField: { field: lit(segment), input } });

/**
 * The values a dotted path reaches from `root` (an object), as an array: the reference's walk (an integer
 * segment indexes an array; any other key goes through its object elements; scalars end the walk).
 */
export function reachedExpression(path: string, root = '$d'): unknown {
  let list: unknown = present(get(path.split('.')[0] ?? '', root));
  for (const segment of path.split('.').slice(1)) {
    const index = INDEX_SEGMENT.test(segment) ? Number(segment) : undefined;
    const inArray =
      index !== undefined
        ? { $cond: [{ $lt: [index, { $size: '$$this' }] }, [{ $arrayElemAt: ['$$this', index] }], []] }
        : {
            $map: {
              input: { $filter: { input: '$$this', as: 'e', cond: { $and: [{ $eq: [{ $type: '$$e' }, 'object'] }, { $ne: [{ $type: get(segment, '$$e') }, 'missing'] }] } } },
              as: 'e',
              in: get(segment, '$$e'),
            },
          };
    const step = {
      $switch: {
        branches: [
          { case: { $eq: [{ $type: '$$this' }, 'object'] }, then: present(get(segment, '$$this')) },
          { case: { $isArray: '$$this' }, then: inArray },
        ],
        default: [],
      },
    };
    list = { $reduce: { input: list, initialValue: [], in: { $concatArrays: ['$$value', step] } } };
  }
  return list;
}

/**
 * Whether the path from `root` ends on nothing before going through an array's elements (where `null`
 * matches): the one walk the types decide, carried as `[value]`, `'M'` (missing) or `'E'` (went through
 * an array's elements).
 */
export function missingExpression(path: string, root = '$d'): Document {
  const wrap = (x: unknown): Document => ({ $let: { vars: { x }, in: { $cond: [{ $eq: [{ $type: '$$x' }, 'missing'] }, 'M', ['$$x']] } } });
  let state: unknown = wrap(get(path.split('.')[0] ?? '', root));
  for (const segment of path.split('.').slice(1)) {
    const index = INDEX_SEGMENT.test(segment) ? Number(segment) : undefined;
    const inArray = index !== undefined ? { $cond: [{ $lt: [index, { $size: '$$w' }] }, [{ $arrayElemAt: ['$$w', index] }], 'M'] } : 'E';
    state = {
      $let: {
        vars: { s: state },
        in: {
          $cond: [
            { $isArray: '$$s' },
            {
              $let: {
                vars: { w: { $arrayElemAt: ['$$s', 0] } },
                in: { $switch: { branches: [{ case: { $eq: [{ $type: '$$w' }, 'object'] }, then: wrap(get(segment, '$$w')) }, { case: { $isArray: '$$w' }, then: inArray }], default: 'M' } },
              },
            },
            '$$s',
          ],
        },
      },
    };
  }
  return { $eq: [state, 'M'] };
}

/** `$$v` itself or, unless `whole`, one of its elements (`$$e`) satisfies `test`. */
function valueOrElement(whole: boolean, test: (input: string) => Document): Document {
  if (whole) return test('$$v');
  return { $or: [{ $and: [{ $not: [{ $isArray: '$$v' }] }, test('$$v')] }, { $anyElementTrue: [{ $map: { input: AS_ARRAY, as: 'e', in: test('$$e') } }] }] };
}

/** Whether `$$v` (or, unless `whole`, one of its elements) equals `value`. */
function eq(value: JsonPrimitive, whole: boolean): Document {
  // Aggregation `$eq` never converts types (1 ≠ '1' ≠ true); membership is spelt out one level deep,
  // exactly as the reference.
  return valueOrElement(whole, (input) => (value === null ? { $eq: [{ $type: input }, 'null'] } : { $and: [{ $not: [{ $isArray: input }] }, { $eq: [input, lit(value)] }] }));
}

const RANGE: Readonly<Record<string, string>> = { $gt: '$gt', $gte: '$gte', $lt: '$lt', $lte: '$lte' };

/** A condition on one reached value `$$v` (compared `whole` under `$elemMatch`). */
function condition(op: string, operand: unknown, whole: boolean): Document {
  switch (op) {
    case '$eq':
      return eq(operand as JsonPrimitive, whole);
    case '$in':
      return { $or: (operand as JsonPrimitive[]).map((x) => eq(x, whole)) };
    case '$size':
      return { $and: [{ $isArray: '$$v' }, { $eq: [{ $size: AS_ARRAY }, lit(operand)] }] };
    case '$type': {
      const names = (operand as string[]).flatMap((n) => (n === 'number' ? NUMBER_TYPES : [n]));
      return whole ? { $in: [TYPE, names] } : { $or: [{ $in: [TYPE, names] }, { $anyElementTrue: [{ $map: { input: AS_ARRAY, as: 'e', in: { $in: [{ $type: '$$e' }, names] } } }] }] };
    }
    case '$regex':
      // The validated pattern is an anchored literal prefix: the same on the server as in the reference.
      return valueOrElement(whole, (input) => ({ $and: [{ $eq: [{ $type: input }, 'string'] }, { $regexMatch: { input, regex: lit(operand) } }] }));
    case '$mod': {
      const [divisor, remainder] = operand as [number, number];
      return valueOrElement(whole, (input) => ({ $and: [{ $in: [{ $type: input }, NUMBER_TYPES] }, { $eq: [{ $mod: [{ $trunc: [input] }, divisor] }, remainder] }] }));
    }
    case '$elemMatch':
      return { $and: [{ $isArray: '$$v' }, { $anyElementTrue: [{ $map: { input: AS_ARRAY, as: 'm', in: elementMatches(operand as Document) } }] }] };
    default: {
      const guard = (input: string): Document => (typeof operand === 'number' ? { $in: [{ $type: input }, NUMBER_TYPES] } : { $eq: [{ $type: input }, 'string'] });
      return valueOrElement(whole, (input) => ({ $and: [guard(input), { [RANGE[op] ?? '$eq']: [input, lit(operand)] }] }));
    }
  }
}

/** An `$elemMatch` operand on the element `$$m`: operators on it compared whole, or a filter on an object. */
function elementMatches(operand: Document): Document {
  const keys = Object.keys(operand);
  if (keys.every((k) => k.startsWith('$') && k !== '$and' && k !== '$or')) {
    return { $let: { vars: { v: '$$m' }, in: { $and: fieldConditions(operand).map(([op, x]) => fieldCondition(op, x, { reached: ['$$v'], missing: lit(false), whole: true })) } } };
  }
  return { $and: [{ $eq: [{ $type: '$$m' }, 'object'] }, filterExpression(operand as Filter, '$$m')] };
}

interface Reach {
  readonly reached: unknown;
  readonly missing: unknown;
  readonly whole: boolean;
}

/** One operator on what a path reaches: positive ones hold for a reached value; negations negate. */
function fieldCondition(op: string, operand: unknown, reach: Reach): Document {
  const any = (test: Document): Document => ({ $anyElementTrue: [{ $map: { input: reach.reached, as: 'v', in: test } }] });
  switch (op) {
    case '$ne':
      return { $not: [fieldCondition('$eq', operand, reach)] };
    case '$nin':
      return { $not: [fieldCondition('$in', operand, reach)] };
    case '$not':
      return { $not: [{ $and: fieldConditions(operand).map(([o, x]) => fieldCondition(o, x, reach)) }] };
    case '$exists':
      return operand === true ? { $gt: [{ $size: reach.reached }, 0] } : { $eq: [{ $size: reach.reached }, 0] };
    case '$all':
      // An empty aggregation `$and` is true; `$all: []` matches nothing.
      return (operand as JsonPrimitive[]).length === 0 ? { $and: [lit(false)] } : { $and: (operand as JsonPrimitive[]).map((x) => fieldCondition('$eq', x, reach)) };
    case '$eq':
    case '$in': {
      const values = op === '$eq' ? [operand as JsonPrimitive] : (operand as JsonPrimitive[]);
      const found = any(condition('$in', values, reach.whole));
      return values.includes(null) ? { $or: [reach.missing, found] } : found;
    }
    default:
      return any(condition(op, operand, reach.whole));
  }
}

/** The exact condition of a validated filter on the object at `root`, as an aggregation expression. */
export function filterExpression(filter: Filter, root = '$d'): Document {
  const parts: Document[] = [];
  for (const [key, value] of Object.entries(filter)) {
    if (key === '$and') parts.push({ $and: (value as Filter[]).map((f) => filterExpression(f, root)) });
    else if (key === '$or') parts.push({ $or: (value as Filter[]).map((f) => filterExpression(f, root)) });
    else {
      const reach: Reach =
        key === ID_PATH && root === '$d'
          ? { reached: ['$_id'], missing: lit(false), whole: true }
          : { reached: reachedExpression(key, root), missing: missingExpression(key, root), whole: false };
      parts.push({ $and: fieldConditions(value).map(([op, operand]) => fieldCondition(op, operand, reach)) });
    }
  }
  return { $and: parts };
}

/**
 * A native condition implied by the filter (it matches every document the filter matches, maybe more),
 * from top-level equalities, non-null `$in`, ranges and `$exists: true`, so that indexes can be used.
 */
export function nativePrefilter(filter: Filter): Document {
  const out: Document[] = [];
  for (const [key, value] of Object.entries(filter)) {
    if (key === '$and' || key === '$or') continue;
    const field = key === ID_PATH ? '_id' : `d.${key}`;
    for (const [op, operand] of fieldConditions(value)) {
      // MongoDB's own matching of these reaches every value the reference does (and maybe more).
      if (op === '$eq' && operand !== null) out.push({ [field]: { $eq: operand } });
      else if (op === '$in' && !(operand as unknown[]).includes(null)) out.push({ [field]: { $in: operand } });
      else if (RANGE[op] !== undefined) out.push({ [field]: { [op]: operand } });
      else if (op === '$exists' && operand === true && field !== '_id') out.push({ [field]: { $exists: true } });
    }
  }
  return out.length === 0 ? {} : { $and: out };
}

/** The full `$match` query of a filter. */
export function matchQuery(filter: Filter): Document {
  const native = nativePrefilter(filter);
  const exact = { $expr: filterExpression(filter) };
  return Object.keys(native).length === 0 ? exact : { $and: [native, exact] };
}

/** The sort rank (`typeRank`) of a reached value or array element `input`; `arrayRank` for an array. */
function rankExpression(input: unknown, arrayRank: number): Document {
  const type = { $type: input };
  return {
    $switch: {
      branches: [
        { case: { $eq: [type, 'null'] }, then: 1 },
        { case: { $in: [type, NUMBER_TYPES] }, then: 2 },
        { case: { $eq: [type, 'string'] }, then: 3 },
        { case: { $eq: [type, 'object'] }, then: 4 },
        { case: { $eq: [type, 'array'] }, then: arrayRank },
        { case: { $eq: [type, 'bool'] }, then: 6 },
      ],
      default: 1,
    },
  };
}

/** `{ r, v }`: the rank and the comparable value (null for ranks compared by rank alone) of `input`. */
function keyOf(input: unknown, arrayRank: number): Document {
  return { r: rankExpression(input, arrayRank), v: { $cond: [{ $in: [{ $type: input }, [...NUMBER_TYPES, 'string', 'bool']] }, input, null] } };
}

/**
 * The sort key of a path as `{ r, v }`, as the reference's `sortKey`: the smallest (ascending) or largest
 * (descending) of the values the path reaches and the elements of the arrays among them; an empty array is
 * rank 0; nothing reached is null (rank 1).
 */
export function sortKeyExpression(path: string, direction: 1 | -1): Document {
  const candidates = {
    $reduce: {
      input: reachedExpression(path),
      initialValue: [],
      in: {
        $concatArrays: [
          '$$value',
          {
            $cond: [
              { $isArray: '$$this' },
              { $cond: [{ $eq: [{ $size: '$$this' }, 0] }, [{ r: 0, v: null }], { $map: { input: '$$this', as: 'e', in: keyOf('$$e', 5) } }] },
              [keyOf('$$this', 5)],
            ],
          },
        ],
      },
    },
  };
  const better = direction === 1 ? '$lt' : '$gt';
  const wins = {
    $or: [
      { $eq: ['$$value', null] },
      { [better]: ['$$this.r', '$$value.r'] },
      { $and: [{ $eq: ['$$this.r', '$$value.r'] }, { [better]: ['$$this.v', '$$value.v'] }] },
    ],
  };
  const best = { $reduce: { input: candidates, initialValue: null, in: { $cond: [wins, '$$this', '$$value'] } } };
  return { $ifNull: [best, { r: 1, v: null }] };
}

/**
 * The aggregation stages that order by `sort` (documented cross-type order, id ascending last) and keep
 * only documents strictly after the keyset position.
 */
export function sortStages(query: Pick<DriverFind, 'sort' | 'after'>): Document[] {
  const fields: Document = {};
  const order: Document = {};
  const columns: { name: string; desc: boolean; value: unknown }[] = [];
  query.sort.forEach(([path, direction], i) => {
    const after = query.after?.values[i];
    const rank = typeRank(after);
    fields[`_s${i}`] = path === ID_PATH ? { r: 1, v: '$_id' } : sortKeyExpression(path, direction);
    order[`_s${i}.r`] = direction;
    order[`_s${i}.v`] = direction;
    columns.push({ name: `$_s${i}.r`, desc: direction === -1, value: path === ID_PATH ? 1 : rank });
    columns.push({ name: `$_s${i}.v`, desc: direction === -1, value: path === ID_PATH ? after : [2, 3, 6].includes(rank) ? after : null });
  });
  order._id = 1;
  const stages: Document[] = [];
  if (columns.length > 0) stages.push({ $addFields: fields });
  if (query.after !== undefined) {
    const all = [...columns, { name: '$_id', desc: false, value: query.after.id }];
    const ors = all.map((c, i) => ({
      $and: [
        ...all.slice(0, i).map((p) => ({ $eq: [p.name, lit(p.value)] })),
        { [c.desc ? '$lt' : '$gt']: [c.name, lit(c.value)] },
      ],
    }));
    stages.push({ $match: { $expr: { $or: ors } } });
  }
  stages.push({ $sort: order });
  return stages;
}
