/**
 * What every `stowage` command receives: its parsed arguments, the profile options, output helpers and a
 * way to open only the ports it needs.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import type { ParseArgsConfig } from 'node:util';
import type { JsonValue, PortName } from '../ports/common.js';
import { StowageError } from '../ports/errors.js';
import type { Profile } from '../core/profile.js';
import type { Stowage } from '../core/stowage.js';
import type { Palette } from './output.js';

/** Parsed option values (as `node:util` `parseArgs` gives them). */
export type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** One command of the CLI, e.g. `config get`. */
export interface Command {
  /** The words naming it, e.g. `['queue', 'dlq', 'ls']`. */
  readonly path: readonly string[];
  /** One line for the command list. */
  readonly summary: string;
  /** The argument synopsis, e.g. `<key> [json]`. */
  readonly usage: string;
  /** More text for `--help`. */
  readonly description?: string;
  /** Example invocations for `--help`. */
  readonly examples: readonly string[];
  /** The command's own options (the global ones are added). */
  readonly options?: NonNullable<ParseArgsConfig['options']>;
  /** How many positional arguments it takes. */
  readonly args: readonly [min: number, max: number];
  /** Runs it; resolves with the exit status. */
  run(ctx: CommandContext): Promise<number>;
}

/** What a command runs with. */
export interface CommandContext {
  /** Positional arguments after the command's words. */
  readonly args: readonly string[];
  /** Option values (command and global). */
  readonly values: OptionValues;
  /** `--json`: machine output on stdout. */
  readonly json: boolean;
  /** The profile built from `--profile`, `--data-dir`, `--<port>-url`, `--timeout-ms`. */
  readonly profile: Profile;
  /** The environment. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The working folder. */
  readonly cwd: string;
  /** Colours for stdout. */
  readonly palette: Palette;
  /** Colours for stderr. */
  readonly errPalette: Palette;
  /** Writes to stdout. */
  out(text: string): void;
  /** Writes to stderr. */
  err(text: string): void;
  /** Writes one JSON document (a line) to stdout. */
  emit(value: unknown): void;
  /** Opens only the given ports of the profile. The caller closes it. */
  open(ports: readonly PortName[]): Promise<Stowage>;
  /** Reads stdin to the end (for secret values and payloads). */
  readStdin(): Promise<Buffer>;
  /** Aborts on SIGINT / SIGTERM (streaming commands stop on it). */
  readonly signal: AbortSignal;
}

/** A usage error: wrong arguments. Exit status 2. */
export class UsageError extends Error {
  /** @param message - what is wrong, and how to get help */
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A string option's value, or undefined. */
export function str(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** An integer option's value, refusing anything else with a usage error. */
export function int(values: OptionValues, name: string, { min = 0 } = {}): number | undefined {
  const raw = str(values, name);
  if (raw === undefined) return undefined;
  if (!/^-?\d+$/.test(raw) || Number(raw) < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${raw}"`);
  return Number(raw);
}

/** A comma-separated list of integers (`--versions 1,2,3`). */
export function intList(values: OptionValues, name: string): number[] | undefined {
  const raw = str(values, name);
  if (raw === undefined) return undefined;
  const parts = raw.split(',').map((p) => p.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) throw new UsageError(`--${name} must be a comma-separated list of integers, got "${raw}"`);
  return parts.map(Number);
}

/** Parses JSON given on the command line or in a file, naming where it came from on failure. */
export function parseJson(text: string, what: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new UsageError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * The input of a write: the positional argument when given, else `--file`, else stdin. `-` as the argument
 * also means stdin.
 */
export async function readInput(ctx: CommandContext, positional: string | undefined): Promise<Buffer> {
  const file = str(ctx.values, 'file');
  if (positional !== undefined && positional !== '-') {
    if (file !== undefined) throw new UsageError('give the value either as an argument or with --file, not both');
    return Buffer.from(positional, 'utf8');
  }
  if (file !== undefined) {
    try {
      return await readFile(file);
    } catch (err) {
      throw new StowageError('INVALID_ARGUMENT', `cannot read --file ${file}: ${(err as Error).message}`);
    }
  }
  return ctx.readStdin();
}

/** Shortens a value for a table cell. */
export function cell(value: unknown, max = 60): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
