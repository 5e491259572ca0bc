/**
 * `stowage config get|put|rm|ls|watch`.
 *
 * @module
 */
import type { ConfigEvent } from '../../ports/config.js';
import { StowageError } from '../../ports/errors.js';
import { renderTable } from '../output.js';
import { cell, int, parseJson, readInput, UsageError, type Command } from '../context.js';

/** The config commands. */
export const configCommands: readonly Command[] = [
  {
    path: ['config', 'get'],
    summary: 'print the JSON value of a key',
    usage: '<key>',
    args: [1, 1],
    examples: ['stowage config get service/settings', 'stowage config get service/settings --json   # with revision'],
    async run(ctx) {
      await using s = await ctx.open(['config']);
      const key = ctx.args[0] ?? '';
      const entry = await s.config.get(key);
      if (!entry) {
        if (ctx.json) ctx.emit({ key, found: false });
        else ctx.err(`stowage: no config key "${key}"\n`);
        return 1;
      }
      if (ctx.json) ctx.emit({ found: true, ...entry });
      else ctx.out(`${JSON.stringify(entry.value, null, 2)}\n`);
      return 0;
    },
  },
  {
    path: ['config', 'put'],
    summary: 'write a JSON value (argument, --file, or stdin)',
    usage: '<key> [json|-]',
    args: [1, 2],
    description: 'The value is JSON; with --string the text is stored as a JSON string. --if-revision makes the write a compare-and-set (0 = only if absent).',
    options: { file: { type: 'string' }, string: { type: 'boolean' }, 'if-revision': { type: 'string' } },
    examples: [
      `stowage config put service/settings '{"concurrency":8,"lookupTtlMs":60000,"greeting":"Hello"}'`,
      'stowage config put app/motd --string "back at 5"',
      'stowage config put app/flags --file flags.json --if-revision 12',
    ],
    async run(ctx) {
      const key = ctx.args[0] ?? '';
      const text = (await readInput(ctx, ctx.args[1])).toString('utf8');
      const value = ctx.values.string === true ? text : parseJson(text, 'the value');
      await using s = await ctx.open(['config']);
      const { revision } = await s.config.put(key, value, { ifRevision: int(ctx.values, 'if-revision') });
      if (ctx.json) ctx.emit({ key, revision });
      else ctx.out(`${ctx.palette.green('stored')} ${key} at revision ${revision}\n`);
      return 0;
    },
  },
  {
    path: ['config', 'rm'],
    summary: 'delete a key',
    usage: '<key>',
    args: [1, 1],
    options: { 'if-revision': { type: 'string' } },
    examples: ['stowage config rm app/motd', 'stowage config rm app/motd --if-revision 14'],
    async run(ctx) {
      const key = ctx.args[0] ?? '';
      await using s = await ctx.open(['config']);
      const { deleted, revision } = await s.config.delete(key, { ifRevision: int(ctx.values, 'if-revision') });
      if (ctx.json) ctx.emit({ key, deleted, revision });
      else ctx.out(deleted ? `${ctx.palette.green('deleted')} ${key} at revision ${revision}\n` : `${key} did not exist\n`);
      return deleted ? 0 : 1;
    },
  },
  {
    path: ['config', 'ls'],
    summary: 'list keys under a prefix',
    usage: '[prefix]',
    args: [0, 1],
    options: { limit: { type: 'string' } },
    examples: ['stowage config ls', 'stowage config ls service/ --json'],
    async run(ctx) {
      await using s = await ctx.open(['config']);
      const snapshot = await s.config.list(ctx.args[0] ?? '', { limit: int(ctx.values, 'limit', { min: 1 }) });
      if (ctx.json) ctx.emit(snapshot);
      else {
        ctx.out(renderTable(['key', 'revision', 'value'], snapshot.entries.map((e) => [e.key, String(e.revision), cell(e.value)]), ctx.palette));
        ctx.out(ctx.palette.dim(`${snapshot.entries.length} keys, store revision ${snapshot.revision}\n`));
      }
      return 0;
    },
  },
  {
    path: ['config', 'watch'],
    summary: 'print changes under a prefix as they happen (Ctrl-C stops)',
    usage: '[prefix]',
    args: [0, 1],
    options: { 'after-revision': { type: 'string' }, 'from-revision': { type: 'string' }, count: { type: 'string' } },
    description:
      'Prints one line per change (a JSON line with --json). --after-revision N first replays the history strictly after ' +
      'revision N (0: all the store keeps; N itself is not shown); --count stops after that many changes. ' +
      '--from-revision is the deprecated former name of --after-revision (same meaning).',
    examples: ['stowage config watch service/', 'stowage config watch service/ --after-revision 0 --count 10 --json'],
    async run(ctx) {
      await using s = await ctx.open(['config']);
      const count = int(ctx.values, 'count', { min: 1 });
      let seen = 0;
      if (!ctx.json) ctx.err(ctx.errPalette.dim(`watching "${ctx.args[0] ?? ''}" (Ctrl-C stops)\n`));
      const prefix = ctx.args[0] ?? '';
      const print = (ev: ConfigEvent, { snapshot = false } = {}): boolean => {
        if (ctx.json) ctx.emit(snapshot ? { ...ev, snapshot } : ev);
        else if (ev.type === 'put') ctx.out(`${ev.revision} ${ctx.palette.green(snapshot ? 'state' : 'put')}    ${ev.key} = ${cell(ev.value, 200)}\n`);
        else ctx.out(`${ev.revision} ${ctx.palette.red('delete')} ${ev.key} (${ev.reason})\n`);
        return count !== undefined && ++seen >= count;
      };
      const after = int(ctx.values, 'after-revision');
      const oldName = int(ctx.values, 'from-revision');
      if (after !== undefined && oldName !== undefined) throw new UsageError('give --after-revision only (--from-revision is its deprecated former name)');
      if (oldName !== undefined) ctx.err(ctx.errPalette.yellow('--from-revision is deprecated: it is --after-revision (changes strictly after that revision)\n'));
      let from = after ?? oldName;
      for (;;) {
        try {
          for await (const ev of s.config.watch(prefix, { afterRevision: from, signal: ctx.signal })) {
            if (print(ev)) return 0;
          }
          return 0;
        } catch (err) {
          if (!StowageError.is(err, 'COMPACTED')) throw err;
          // The history asked for is gone (a file backend keeps it only in the process that wrote it):
          // print the current state instead, then follow changes from there.
          const snapshot = await s.config.list(prefix);
          ctx.err(ctx.errPalette.yellow(`history before revision ${snapshot.revision} is gone; showing the current state, then changes\n`));
          for (const e of snapshot.entries) {
            if (print({ type: 'put', key: e.key, value: e.value, revision: e.revision, createRevision: e.createRevision }, { snapshot: true })) return 0;
          }
          from = snapshot.revision;
        }
      }
      return 0;
    },
  },
];
