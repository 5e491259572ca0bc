/**
 * `stowage docs get|put|find|count|indexes`.
 *
 * @module
 */
import type { JsonObject } from '../../ports/common.js';
import type { Collection, Filter, Sort } from '../../ports/documents.js';
import { StowageError } from '../../ports/errors.js';
import type { Stowage } from '../../core/stowage.js';
import { UsageError, cell, int, parseJson, readInput, str, type Command } from '../context.js';
import { renderTable } from '../output.js';

/** Opens an existing collection (reads must not create one by mistyping its name). */
async function existing(s: Stowage, name: string): Promise<Collection> {
  const names = await s.documents.collections();
  if (!names.includes(name)) {
    throw new StowageError('NOT_FOUND', `no collection "${name}" (collections: ${names.length > 0 ? names.join(', ') : 'none'})`);
  }
  return s.documents.collection(name);
}

function objectArg(text: string | undefined, what: string): JsonObject | undefined {
  if (text === undefined) return undefined;
  const value = parseJson(text, what);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError(`${what} must be a JSON object`);
  return value;
}

/** `--sort '{"n":-1}'` or `--sort n:-1,customer:1`. */
function sortArg(text: string | undefined): Sort | undefined {
  if (text === undefined) return undefined;
  if (text.trim().startsWith('{')) return objectArg(text, '--sort') as Sort;
  const sort: Record<string, 1 | -1> = {};
  for (const part of text.split(',')) {
    const [path = '', dir = '1'] = part.split(':');
    if (dir !== '1' && dir !== '-1') throw new UsageError(`--sort direction must be 1 or -1, got "${dir}" in "${part}"`);
    sort[path.trim()] = dir === '1' ? 1 : -1;
  }
  return sort;
}

/** The documents commands. */
export const docsCommands: readonly Command[] = [
  {
    path: ['docs', 'get'],
    summary: 'print a document',
    usage: '<collection> <id>',
    args: [2, 2],
    examples: ['stowage docs get results run-1-job-00042', 'stowage docs get results run-1-job-00042 --json'],
    async run(ctx) {
      await using s = await ctx.open(['documents']);
      const doc = await (await existing(s, ctx.args[0] ?? '')).get(ctx.args[1] ?? '');
      if (!doc) {
        if (ctx.json) ctx.emit({ id: ctx.args[1], found: false });
        else ctx.err(`stowage: no document "${ctx.args[1]}" in ${ctx.args[0]}\n`);
        return 1;
      }
      if (ctx.json) ctx.emit({ found: true, ...doc });
      else ctx.out(`${ctx.palette.dim(`${doc.id} version ${doc.version}`)}\n${JSON.stringify(doc.data, null, 2)}\n`);
      return 0;
    },
  },
  {
    path: ['docs', 'put'],
    summary: 'replace or create a document (JSON object: argument, --file, or stdin)',
    usage: '<collection> <id> [json|-]',
    args: [2, 3],
    options: { file: { type: 'string' }, 'if-version': { type: 'string' } },
    examples: [`stowage docs put customers acme '{"name":"Acme","tier":"gold"}'`, 'stowage docs put customers acme --file acme.json --if-version 3'],
    async run(ctx) {
      const data = objectArg((await readInput(ctx, ctx.args[2])).toString('utf8'), 'the document');
      await using s = await ctx.open(['documents']);
      const collection = await s.documents.collection(ctx.args[0] ?? '');
      const doc = await collection.put(ctx.args[1] ?? '', data ?? {}, { ifVersion: int(ctx.values, 'if-version') });
      if (ctx.json) ctx.emit({ id: doc.id, version: doc.version });
      else ctx.out(`${ctx.palette.green('stored')} ${doc.id} version ${doc.version}\n`);
      return 0;
    },
  },
  {
    path: ['docs', 'find'],
    summary: 'find documents with a filter, sort and limit (one page; --after for the next)',
    usage: '<collection> [filter-json]',
    args: [1, 2],
    options: { sort: { type: 'string' }, limit: { type: 'string' }, after: { type: 'string' } },
    description: 'The filter is the MongoDB-style subset: equality, $ne $gt $gte $lt $lte $in $nin $exists $and $or, dotted paths.',
    examples: [
      `stowage docs find results '{"tier":"gold","n":{"$gte":100}}' --sort n:-1 --limit 5`,
      `stowage docs find results '{"batch":"run-1"}' --json --limit 1000`,
    ],
    async run(ctx) {
      await using s = await ctx.open(['documents']);
      const page = await (await existing(s, ctx.args[0] ?? '')).find(objectArg(ctx.args[1], 'the filter') as Filter | undefined, {
        sort: sortArg(str(ctx.values, 'sort')),
        limit: int(ctx.values, 'limit', { min: 1 }),
        after: str(ctx.values, 'after'),
      });
      if (ctx.json) ctx.emit(page);
      else {
        ctx.out(renderTable(['id', 'version', 'data'], page.items.map((d) => [d.id, String(d.version), cell(d.data, 90)]), ctx.palette));
        ctx.out(ctx.palette.dim(`${page.items.length} documents${page.next ? `; next page: --after ${page.next}` : ''}\n`));
      }
      return 0;
    },
  },
  {
    path: ['docs', 'count'],
    summary: 'count documents matching a filter',
    usage: '<collection> [filter-json]',
    args: [1, 2],
    examples: ['stowage docs count results', `stowage docs count results '{"tier":"gold"}'`],
    async run(ctx) {
      await using s = await ctx.open(['documents']);
      const count = await (await existing(s, ctx.args[0] ?? '')).count(objectArg(ctx.args[1], 'the filter') as Filter | undefined);
      if (ctx.json) ctx.emit({ count });
      else ctx.out(`${count}\n`);
      return 0;
    },
  },
  {
    path: ['docs', 'indexes'],
    summary: 'list the indexes of a collection (or of every collection)',
    usage: '[collection]',
    args: [0, 1],
    examples: ['stowage docs indexes', 'stowage docs indexes results --json'],
    async run(ctx) {
      await using s = await ctx.open(['documents']);
      const names = ctx.args[0] !== undefined ? [ctx.args[0]] : await s.documents.collections();
      const rows: { collection: string; name?: string; fields: readonly string[]; unique?: boolean }[] = [];
      for (const name of names) {
        for (const index of await (await existing(s, name)).indexes()) rows.push({ collection: name, ...index });
      }
      if (ctx.json) ctx.emit(rows);
      else ctx.out(renderTable(['collection', 'index', 'fields', 'unique'], rows.map((r) => [r.collection, r.name ?? '', r.fields.join(', '), r.unique ? 'yes' : 'no']), ctx.palette));
      return 0;
    },
  },
];
