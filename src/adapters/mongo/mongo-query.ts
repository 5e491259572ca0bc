/**
 * The documents filter language and sort order as MongoDB queries.
 *
 * MongoDB's own query semantics differ from the reference: a path walks into arrays (`a.b` reaches
 * `a: [{ b: 1 }]`, `a.0` indexes), ranges compare across some types, and sorting orders arrays by their
 * smallest element and puts booleans after objects. So the exact condition is an aggregation expression
 * (`$expr`) built on `$type` guards and `$getField` — which walks objects only — and a native condition that
 * may only match *more* documents is added in front, so that indexes can still narrow the scan.
 *
 * Stored documents are `{ _id: id, v: version, d: data }`.
 *
 * @module
 */
import type { Document } from 'mongodb';
import type { JsonPrimitive } from '../../ports/common.js';
import type { DriverFind, Filter } from '../../ports/documents.js';
import { fieldConditions, ID_PATH } from '../../driver/index.js';
import { typeRank } from '../../driver/index.js';

const NUMBER_TYPES = ['double', 'int', 'long', 'decimal'];
const lit = (value: unknown): Document => ({ $literal: value });

/** The aggregation expression of the value at a dotted path of the data: missing unless every step is an object. */
export function valueExpression(path: string): unknown {
  if (path === ID_PATH) return '$_id';
  let expr: unknown = '$d';
  path.split('.').forEach((segment, i) => {
    const get = (input: unknown): Document => ({ $getField: { field: lit(segment), input } });
    expr =
      i === 0
        ? get(expr)
        : { $let: { vars: { p: expr }, in: { $cond: [{ $eq: [{ $type: '$$p' }, 'object'] }, get('$$p'), '$$REMOVE'] } } };
  });
  return expr;
}

const TYPE = { $type: '$$v' };
const AS_ARRAY = { $cond: [{ $isArray: '$$v' }, '$$v', []] };

/** Whether the array `$$v` (or nothing, if it is not an array) has an element equal to `value`. */
function hasElement(value: JsonPrimitive): Document {
  return { $gt: [{ $size: { $filter: { input: AS_ARRAY, as: 'e', cond: { $and: [{ $not: [{ $isArray: '$$e' }] }, { $eq: ['$$e', lit(value)] }] } } } }, 0] };
}

function eq(value: JsonPrimitive): Document {
  if (value === null) return { $or: [{ $in: [TYPE, ['missing', 'null']] }, hasElement(null)] };
  // Aggregation `$eq` never converts types (1 ≠ '1' ≠ true); the array guards keep any engine from
  // reading it as "contains", and membership is spelt out one level deep, exactly as the reference.
  return { $or: [{ $and: [{ $not: [{ $isArray: '$$v' }] }, { $eq: ['$$v', lit(value)] }] }, hasElement(value)] };
}

const RANGE: Readonly<Record<string, string>> = { $gt: '$gt', $gte: '$gte', $lt: '$lt', $lte: '$lte' };

function condition(op: string, operand: unknown): Document {
  switch (op) {
    case '$eq':
      return eq(operand as JsonPrimitive);
    case '$ne':
      return { $not: [eq(operand as JsonPrimitive)] };
    case '$in':
      return { $or: (operand as JsonPrimitive[]).map(eq) };
    case '$nin':
      return { $not: [{ $or: (operand as JsonPrimitive[]).map(eq) }] };
    case '$exists':
      return operand === true ? { $ne: [TYPE, 'missing'] } : { $eq: [TYPE, 'missing'] };
    case '$size':
      return { $and: [{ $isArray: '$$v' }, { $eq: [{ $size: AS_ARRAY }, lit(operand)] }] };
    case '$all':
      // An empty aggregation `$and` is true; `$all: []` matches nothing.
      return (operand as JsonPrimitive[]).length === 0 ? { $and: [lit(false)] } : { $and: (operand as JsonPrimitive[]).map(eq) };
    case '$not':
      return { $not: [{ $and: fieldConditions(operand).map(([o, x]) => condition(o, x)) }] };
    case '$type': {
      const names = (operand as string[]).flatMap((n) => (n === 'number' ? NUMBER_TYPES : [n]));
      return { $or: [{ $in: [TYPE, names] }, { $gt: [{ $size: { $filter: { input: AS_ARRAY, as: 'e', cond: { $in: [{ $type: '$$e' }, names] } } } }, 0] }] };
    }
    case '$regex': {
      // The validated pattern is an anchored literal prefix: the same on the server as in the reference.
      const matches = (input: string): Document => ({ $and: [{ $eq: [{ $type: input }, 'string'] }, { $regexMatch: { input, regex: lit(operand) } }] });
      return { $or: [matches('$$v'), { $gt: [{ $size: { $filter: { input: AS_ARRAY, as: 'e', cond: matches('$$e') } } }, 0] }] };
    }
    default: {
      const guard = typeof operand === 'number' ? { $in: [TYPE, NUMBER_TYPES] } : { $eq: [TYPE, 'string'] };
      return { $and: [guard, { [RANGE[op] ?? '$eq']: ['$$v', lit(operand)] }] };
    }
  }
}

/** The exact condition of a validated filter, as an aggregation expression. */
export function filterExpression(filter: Filter): Document {
  const parts: Document[] = [];
  for (const [key, value] of Object.entries(filter)) {
    if (key === '$and') parts.push({ $and: (value as Filter[]).map(filterExpression) });
    else if (key === '$or') parts.push({ $or: (value as Filter[]).map(filterExpression) });
    else {
      const conditions = fieldConditions(value).map(([op, operand]) => condition(op, operand));
      parts.push({ $let: { vars: { v: valueExpression(key) }, in: { $and: conditions } } });
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

function rankExpression(value: unknown): Document {
  const type = { $type: value };
  return {
    $switch: {
      branches: [
        { case: { $in: [type, NUMBER_TYPES] }, then: 1 },
        { case: { $eq: [type, 'string'] }, then: 2 },
        { case: { $eq: [type, 'bool'] }, then: 3 },
        { case: { $in: [type, ['object', 'array']] }, then: 4 },
      ],
      default: 0,
    },
  };
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
    const value = valueExpression(path);
    const after = query.after?.values[i];
    const rank = typeRank(after);
    fields[`_s${i}r`] = rankExpression(value);
    fields[`_s${i}v`] = { $cond: [{ $in: [{ $type: value }, [...NUMBER_TYPES, 'string', 'bool']] }, value, null] };
    order[`_s${i}r`] = direction;
    order[`_s${i}v`] = direction;
    columns.push({ name: `$_s${i}r`, desc: direction === -1, value: rank });
    columns.push({ name: `$_s${i}v`, desc: direction === -1, value: rank >= 1 && rank <= 3 ? after : null });
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
