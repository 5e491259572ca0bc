/**
 * `stowage cache get|set|rm|clear`. Useful against a shared cache (`redis://`, `tiered://`); against the
 * standalone `mem://` cache each command sees an empty cache of its own.
 *
 * @module
 */
import type { Cache } from '../../ports/cache.js';
import { UsageError, int, parseJson, readInput, str, type Command, type CommandContext } from '../context.js';

const namespaceOption = { namespace: { type: 'string' } } as const;

function scoped(cache: Cache, ctx: CommandContext): Cache {
  const ns = str(ctx.values, 'namespace');
  return ns === undefined ? cache : cache.withNamespace(ns);
}

/** The cache commands. */
export const cacheCommands: readonly Command[] = [
  {
    path: ['cache', 'get'],
    summary: 'print a cached JSON value',
    usage: '<key>',
    args: [1, 1],
    options: namespaceOption,
    examples: ['stowage cache get acme --namespace customers', 'stowage cache get feature-x --json'],
    async run(ctx) {
      await using s = await ctx.open(['cache']);
      const key = ctx.args[0] ?? '';
      const value = await scoped(s.cache, ctx).get(key);
      if (ctx.json) ctx.emit(value === undefined ? { key, found: false } : { key, found: true, value });
      else if (value === undefined) ctx.err(`stowage: no cached value for "${key}"\n`);
      else ctx.out(`${JSON.stringify(value, null, 2)}\n`);
      return value === undefined ? 1 : 0;
    },
  },
  {
    path: ['cache', 'set'],
    summary: 'cache a JSON value (argument, --file, or stdin)',
    usage: '<key> [json|-]',
    args: [1, 2],
    options: { ...namespaceOption, 'ttl-ms': { type: 'string' }, file: { type: 'string' } },
    examples: [`stowage cache set acme '{"name":"Acme","tier":"gold"}' --namespace customers --ttl-ms 60000`],
    async run(ctx) {
      const value = parseJson((await readInput(ctx, ctx.args[1])).toString('utf8'), 'the value');
      await using s = await ctx.open(['cache']);
      await scoped(s.cache, ctx).set(ctx.args[0] ?? '', value, { ttlMs: int(ctx.values, 'ttl-ms', { min: 1 }) });
      if (ctx.json) ctx.emit({ key: ctx.args[0], stored: true });
      else ctx.out(`${ctx.palette.green('cached')} ${ctx.args[0]}\n`);
      return 0;
    },
  },
  {
    path: ['cache', 'rm'],
    summary: 'remove a cached value',
    usage: '<key>',
    args: [1, 1],
    options: namespaceOption,
    examples: ['stowage cache rm acme --namespace customers'],
    async run(ctx) {
      await using s = await ctx.open(['cache']);
      const removed = await scoped(s.cache, ctx).delete(ctx.args[0] ?? '');
      if (ctx.json) ctx.emit({ key: ctx.args[0], removed });
      else ctx.out(removed ? `${ctx.palette.green('removed')} ${ctx.args[0]}\n` : `${ctx.args[0]} was not cached\n`);
      return 0;
    },
  },
  {
    path: ['cache', 'clear'],
    summary: 'remove every entry of a namespace (or of the root); needs --yes',
    usage: '',
    args: [0, 0],
    options: { ...namespaceOption, yes: { type: 'boolean' } },
    examples: ['stowage cache clear --namespace customers --yes'],
    async run(ctx) {
      if (ctx.values.yes !== true) throw new UsageError('clear removes every entry of the namespace: add --yes');
      await using s = await ctx.open(['cache']);
      await scoped(s.cache, ctx).clear();
      if (ctx.json) ctx.emit({ cleared: str(ctx.values, 'namespace') ?? '' });
      else ctx.out(`${ctx.palette.green('cleared')} ${str(ctx.values, 'namespace') ?? 'the root namespace'}\n`);
      return 0;
    },
  },
];
