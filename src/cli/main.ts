/**
 * The `stowage` command: inspect and operate every port of a profile, check the backends (`doctor`) and move
 * data between profiles (`migrate`). Arguments are parsed with `node:util` `parseArgs`.
 *
 * Exit status: 0 success, 1 a failure (an error, a missing item, a failing port, a verification mismatch),
 * 2 a usage error.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { PortName } from '../ports/common.js';
import { StowageError } from '../ports/errors.js';
import { PORTS, type Profile } from '../core/profile.js';
import { cacheCommands } from './commands/cache.js';
import { configCommands } from './commands/config.js';
import { docsCommands } from './commands/docs.js';
import { queueCommands } from './commands/queue.js';
import { secretsCommands } from './commands/secrets.js';
import { uiCommand } from './commands/ui.js';
import { UsageError, int, str, type Command, type CommandContext, type OptionValues } from './context.js';
import { doctor, formatDoctorTable } from './doctor.js';
import { migrateCommand } from './migrate.js';
import { paletteFor } from './output.js';

type Options = NonNullable<ParseArgsConfig['options']>;

const GLOBAL_OPTIONS: Options = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  profile: { type: 'string' },
  'data-dir': { type: 'string' },
  'timeout-ms': { type: 'string' },
  ...Object.fromEntries(PORTS.map((p) => [`${p}-url`, { type: 'string' as const }])),
};

const GLOBAL_HELP = `Global options:
  --profile <file>        a stowage.yaml / stowage.json profile (default: environment, then ./stowage.yaml)
  --config-url <url>      the config port's URL (also --secrets-url, --queue-url, --cache-url, --documents-url)
  --data-dir <dir>        the standalone data folder (default STOWAGE_DATA_DIR or ./.stowage)
  --timeout-ms <ms>       deadline of each call (default 10000)
  --json                  machine-readable output on stdout
  -h, --help              help for a command`;

const doctorCommand: Command = {
  path: ['doctor'],
  summary: 'check every configured port with a real round-trip',
  usage: '',
  args: [0, 0],
  options: { ports: { type: 'string' } },
  description:
    'Opens each port on its own, calls health() (one real round-trip) and prints backend, server version, latency and capabilities. ' +
    'Exits 1 when any port fails, with a hint per failure (unreachable, auth, missing stream, data folder permissions).',
  examples: ['stowage doctor', 'STOWAGE_CONFIG_URL=etcd://10.0.0.1:2379/app stowage doctor --json', 'stowage doctor --ports config,queue --profile cluster.yaml'],
  async run(ctx) {
    const ports = portsOption(ctx.values);
    const rows = await doctor({ profile: ctx.profile, env: ctx.env, cwd: ctx.cwd, ports, timeoutMs: int(ctx.values, 'timeout-ms', { min: 1 }) });
    if (ctx.json) ctx.emit({ ok: rows.every((r) => r.ok), ports: rows });
    else ctx.out(formatDoctorTable(rows, ctx.palette));
    return rows.every((r) => r.ok) ? 0 : 1;
  },
};

/** `--ports config,queue` → the port names, refusing unknown ones. */
export function portsOption(values: OptionValues): PortName[] | undefined {
  const raw = str(values, 'ports');
  if (raw === undefined) return undefined;
  const names = raw.split(',').map((p) => p.trim());
  for (const name of names) {
    if (!(PORTS as readonly string[]).includes(name)) throw new UsageError(`--ports: unknown port "${name}" (ports: ${PORTS.join(', ')})`);
  }
  return names as PortName[];
}

/** Every command, in the order `stowage --help` lists them. */
export const COMMANDS: readonly Command[] = [...configCommands, ...secretsCommands, ...queueCommands, ...cacheCommands, ...docsCommands, doctorCommand, migrateCommand, uiCommand];

function commandHelp(command: Command): string {
  const own = Object.entries(command.options ?? {})
    .map(([name, o]) => `  --${name}${o.type === 'string' ? ' <value>' : ''}${o.multiple ? ' (repeatable)' : ''}`)
    .join('\n');
  return [
    `Usage: stowage ${command.path.join(' ')} ${command.usage}`.trimEnd(),
    '',
    command.summary[0]?.toUpperCase() + command.summary.slice(1) + '.',
    ...(command.description ? ['', command.description] : []),
    ...(own ? ['', 'Options:', own] : []),
    '',
    'Examples:',
    ...command.examples.map((e) => `  ${e}`),
    '',
    GLOBAL_HELP,
    '',
  ].join('\n');
}

function mainHelp(prefix: readonly string[] = []): string {
  const list = COMMANDS.filter((c) => prefix.every((w, i) => c.path[i] === w));
  const width = Math.max(...list.map((c) => `${c.path.join(' ')} ${c.usage}`.length));
  return [
    'Usage: stowage <command> [arguments] [options]',
    '',
    'Inspect and operate the storage ports of a Stowage profile, check backends, and migrate between profiles.',
    '',
    'Commands:',
    ...list.map((c) => `  ${`${c.path.join(' ')} ${c.usage}`.padEnd(width)}  ${c.summary}`),
    '',
    GLOBAL_HELP,
    '',
    'Examples:',
    '  stowage doctor',
    '  stowage config ls service/',
    '  printf %s "$TOKEN" | stowage secrets put service/api-token',
    '  stowage migrate --from standalone.yaml --to cluster.yaml',
    '  stowage ui --port 8099',
    '',
    'Run `stowage <command> --help` for a command\'s options and examples.',
    '',
  ].join('\n');
}

/** Every option that takes a value, so the command words can be found before strict parsing. */
function valueOptions(): Set<string> {
  const names = new Set<string>();
  for (const options of [GLOBAL_OPTIONS, ...COMMANDS.map((c) => c.options ?? {})]) {
    for (const [name, o] of Object.entries(options)) if (o.type === 'string') names.add(`--${name}`);
  }
  return names;
}

/** The leading words of argv (skipping options and their values). */
function words(argv: readonly string[]): string[] {
  const takesValue = valueOptions();
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? '';
    if (token === '--') break;
    if (token.startsWith('-') && token !== '-') {
      if (takesValue.has(token)) i++;
      continue;
    }
    out.push(token);
  }
  return out;
}

function findCommand(found: readonly string[]): Command | undefined {
  return [...COMMANDS].sort((a, b) => b.path.length - a.path.length).find((c) => c.path.every((w, i) => found[i] === w));
}

function profileFrom(values: OptionValues): Profile {
  const profile: Profile = {};
  const file = str(values, 'profile');
  if (file !== undefined) profile.profileFile = file;
  const dataDir = str(values, 'data-dir');
  if (dataDir !== undefined) profile.dataDir = dataDir;
  const timeoutMs = int(values, 'timeout-ms', { min: 1 });
  if (timeoutMs !== undefined) profile.timeoutMs = timeoutMs;
  for (const port of PORTS) {
    const url = str(values, `${port}-url`);
    if (url !== undefined) profile[port] = url;
  }
  return profile;
}

/**
 * Runs the CLI with `argv` (without `node` and the script) and resolves with the exit status.
 *
 * @example
 * ```ts
 * process.exitCode = await runCli(['doctor', '--json']);
 * ```
 */
export async function runCli(
  argv: readonly string[],
  io: { env?: Readonly<Record<string, string | undefined>>; cwd?: string; stdout?: NodeJS.WriteStream; stderr?: NodeJS.WriteStream; stdin?: NodeJS.ReadStream } = {},
): Promise<number> {
  const env = io.env ?? process.env;
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const stdin = io.stdin ?? process.stdin;
  const jsonRequested = argv.includes('--json');
  const errPalette = paletteFor(stderr, env);
  const fail = (code: string, message: string, status: number): number => {
    if (jsonRequested) stdout.write(`${JSON.stringify({ error: { code, message } })}\n`);
    stderr.write(`${errPalette.red('stowage:')} ${message}\n`);
    return status;
  };

  if (argv.includes('--version')) {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const found = words(argv);
  const command = findCommand(found);
  if (!command) {
    const known = found.length > 0 && COMMANDS.some((c) => c.path[0] === found[0]);
    if (found.length === 0 || argv.includes('--help') || argv.includes('-h') || known) {
      stdout.write(mainHelp(known ? [found[0] ?? ''] : []));
      return found.length === 0 || argv.includes('--help') || argv.includes('-h') ? 0 : 2;
    }
    return fail('USAGE', `unknown command "${found.join(' ')}" (stowage --help lists the commands)`, 2);
  }

  let values: OptionValues;
  let positionals: string[];
  try {
    const parsed = parseArgs({ args: [...argv], options: { ...GLOBAL_OPTIONS, ...command.options }, allowPositionals: true, strict: true });
    values = parsed.values as OptionValues;
    positionals = parsed.positionals.slice(command.path.length);
  } catch (err) {
    return fail('USAGE', `${(err as Error).message.split('\n')[0]} (stowage ${command.path.join(' ')} --help)`, 2);
  }
  if (values.help === true) {
    stdout.write(commandHelp(command));
    return 0;
  }
  const [min, max] = command.args;
  if (positionals.length < min || positionals.length > max) {
    const extra = command.path[0] === 'secrets' && command.path[1] === 'put' && positionals.length > max;
    return fail(
      'USAGE',
      extra
        ? 'secret values are never taken from the command line (they would end up in shell history and ps): pipe the value on stdin or use --file'
        : `usage: stowage ${command.path.join(' ')} ${command.usage} (got ${positionals.length} argument${positionals.length === 1 ? '' : 's'}; --help for examples)`,
      2,
    );
  }

  const json = values.json === true;
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const cwd = io.cwd ?? process.cwd();
    const ctx: CommandContext = {
      args: positionals,
      values,
      json,
      profile: profileFrom(values),
      env,
      cwd,
      palette: paletteFor(stdout, env, json),
      errPalette,
      out: (text) => void stdout.write(text),
      err: (text) => void stderr.write(text),
      emit: (value) => void stdout.write(`${JSON.stringify(value)}\n`),
      open: async (ports) => (await import('../index.js')).createStowage(ctx.profile, { ports, env, cwd }),
      readStdin: async () => {
        if (stdin.isTTY) stderr.write(errPalette.dim('reading the value from stdin (end with Ctrl-D)…\n'));
        const chunks: Buffer[] = [];
        for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
        return Buffer.concat(chunks);
      },
      signal: stop.signal,
    };
    return await command.run(ctx);
  } catch (err) {
    if (err instanceof UsageError) return fail('USAGE', `${err.message} (stowage ${command.path.join(' ')} --help)`, 2);
    const e = StowageError.is(err) ? err : new StowageError('INTERNAL', err instanceof Error ? err.message : String(err));
    return fail(e.code, `${e.code}: ${e.message}`, 1);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

// Run when executed (bin/stowage.js imports this module), not when imported by tests.
const invoked = process.argv[1] ?? '';
if (/(^|[\\/])(stowage(\.js)?|main\.(ts|js))$/.test(invoked)) {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  });
  const status = await runCli(process.argv.slice(2));
  process.exitCode = status;
  // A backend that hung during open can keep the event loop alive after the command is done (stdout and
  // stderr are synchronous for files and pipes on POSIX, so nothing printed is lost).
  setTimeout(() => process.exit(status), 200).unref();
}
