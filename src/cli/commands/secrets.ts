/**
 * `stowage secrets get|put|ls|versions|rm|destroy`. Values are read from stdin or `--file` only (a value on
 * the command line would land in shell history and `ps`), and printed only with `--reveal`.
 *
 * @module
 */
import { UsageError, int, intList, readInput, type Command } from '../context.js';
import { renderTable } from '../output.js';

/** The secrets commands. */
export const secretsCommands: readonly Command[] = [
  {
    path: ['secrets', 'get'],
    summary: 'show a secret version (value hidden unless --reveal)',
    usage: '<name>',
    args: [1, 1],
    options: { version: { type: 'string' }, reveal: { type: 'boolean' } },
    examples: ['stowage secrets get db/password', 'stowage secrets get db/password --version 2 --reveal'],
    async run(ctx) {
      await using s = await ctx.open(['secrets']);
      const secret = await s.secrets.get(ctx.args[0] ?? '', { version: int(ctx.values, 'version', { min: 1 }) });
      const reveal = ctx.values.reveal === true;
      const info = { name: secret.name, version: secret.version, createdAt: secret.createdAt.toISOString(), bytes: secret.value.byteLength };
      if (ctx.json) ctx.emit({ ...info, value: reveal ? secret.value.reveal() : '[redacted]' });
      else if (reveal) ctx.out(secret.value.reveal());
      else ctx.out(`${info.name} version ${info.version}, ${info.bytes} bytes, written ${info.createdAt}: [redacted] (--reveal prints it)\n`);
      return 0;
    },
  },
  {
    path: ['secrets', 'put'],
    summary: 'write a new version, the value read from stdin or --file',
    usage: '<name>',
    args: [1, 1],
    description: 'Never takes the value as an argument. A single trailing newline from stdin is dropped (so `echo` works); use --file for exact bytes.',
    options: { file: { type: 'string' }, 'if-version': { type: 'string' } },
    examples: ['printf %s "$TOKEN" | stowage secrets put service/api-token', 'stowage secrets put tls/key --file key.pem --if-version 3'],
    async run(ctx) {
      let value = await readInput(ctx, undefined);
      if (ctx.values.file === undefined && value.at(-1) === 0x0a) value = value.subarray(0, value.at(-2) === 0x0d ? -2 : -1);
      if (value.byteLength === 0) throw new UsageError('the secret value is empty: pipe it on stdin or give --file');
      await using s = await ctx.open(['secrets']);
      const { version } = await s.secrets.put(ctx.args[0] ?? '', value, { ifVersion: int(ctx.values, 'if-version') });
      value.fill(0);
      if (ctx.json) ctx.emit({ name: ctx.args[0], version });
      else ctx.out(`${ctx.palette.green('stored')} ${ctx.args[0]} version ${version}\n`);
      return 0;
    },
  },
  {
    path: ['secrets', 'ls'],
    summary: 'list secret names under a prefix',
    usage: '[prefix]',
    args: [0, 1],
    examples: ['stowage secrets ls', 'stowage secrets ls service/ --json'],
    async run(ctx) {
      await using s = await ctx.open(['secrets']);
      const names = await s.secrets.list(ctx.args[0] ?? '');
      if (ctx.json) ctx.emit(names);
      else ctx.out(names.length > 0 ? `${names.join('\n')}\n` : ctx.palette.dim('no secrets\n'));
      return 0;
    },
  },
  {
    path: ['secrets', 'versions'],
    summary: 'list the versions of a secret (no values)',
    usage: '<name>',
    args: [1, 1],
    examples: ['stowage secrets versions db/password'],
    async run(ctx) {
      await using s = await ctx.open(['secrets']);
      const versions = await s.secrets.versions(ctx.args[0] ?? '');
      if (ctx.json) ctx.emit(versions.map((v) => ({ ...v, createdAt: v.createdAt.toISOString() })));
      else {
        const state = (v: (typeof versions)[number]): string => (v.destroyed ? ctx.palette.red('destroyed') : v.deleted ? ctx.palette.yellow('deleted') : ctx.palette.green('live'));
        ctx.out(renderTable(['version', 'state', 'written'], versions.map((v) => [String(v.version), state(v), v.createdAt.toISOString()]), ctx.palette));
      }
      return 0;
    },
  },
  {
    path: ['secrets', 'rm'],
    summary: 'soft-delete the latest (or given) versions; recoverable',
    usage: '<name>',
    args: [1, 1],
    options: { versions: { type: 'string' } },
    examples: ['stowage secrets rm db/password', 'stowage secrets rm db/password --versions 1,2'],
    async run(ctx) {
      await using s = await ctx.open(['secrets']);
      const versions = intList(ctx.values, 'versions');
      await s.secrets.delete(ctx.args[0] ?? '', { versions });
      if (ctx.json) ctx.emit({ name: ctx.args[0], deleted: versions ?? 'latest' });
      else ctx.out(`${ctx.palette.yellow('deleted')} ${ctx.args[0]} ${versions ? `versions ${versions.join(', ')}` : 'latest version'} (soft)\n`);
      return 0;
    },
  },
  {
    path: ['secrets', 'destroy'],
    summary: 'destroy versions for good (or the whole secret); needs --yes',
    usage: '<name>',
    args: [1, 1],
    options: { versions: { type: 'string' }, yes: { type: 'boolean' } },
    examples: ['stowage secrets destroy db/old-password --yes', 'stowage secrets destroy db/password --versions 1 --yes'],
    async run(ctx) {
      if (ctx.values.yes !== true) throw new UsageError('destroy cannot be undone: add --yes');
      await using s = await ctx.open(['secrets']);
      const versions = intList(ctx.values, 'versions');
      await s.secrets.destroy(ctx.args[0] ?? '', { versions });
      if (ctx.json) ctx.emit({ name: ctx.args[0], destroyed: versions ?? 'all' });
      else ctx.out(`${ctx.palette.red('destroyed')} ${ctx.args[0]} ${versions ? `versions ${versions.join(', ')}` : '(every version)'}\n`);
      return 0;
    },
  },
];
