/**
 * Input validation, done once in core so every driver receives clean input.
 *
 * @module
 */
import { StowageError } from '../ports/errors.js';
import type { JsonValue } from '../ports/common.js';
import { invalid } from './errors.js';

/** The longest key, secret name or cache key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;
/** The deepest nesting accepted in a JSON value. */
export const MAX_JSON_DEPTH = 64;

// Control characters (C0 and DEL) and lone surrogates are refused everywhere: backends disagree on them.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Whether `text` has a lone surrogate. `String.prototype.isWellFormed` (ES2024, in V8 since Node 20) is a
 * native scan, several times cheaper than the regular expression it replaced on every string of a value.
 */
function hasLoneSurrogate(text: string): boolean {
  return !(text as string & { isWellFormed(): boolean }).isWellFormed();
}

/** Shows a user-given string in an error message: quoted, cut short, control characters escaped. */
export function quote(value: string, max = 64): string {
  const cut = value.length > max ? `${value.slice(0, max)}…` : value;
  return JSON.stringify(cut);
}

/**
 * Checks a hierarchical key (config key, secret name): a non-empty string of at most
 * {@link MAX_KEY_BYTES} UTF-8 bytes, no control character or lone surrogate, no leading `/`, and no empty,
 * `.` or `..` segment between `/`. So a file adapter can never be led outside its folder.
 */
export function validateKey(key: unknown, what = 'key'): string {
  validateFlatKey(key, what);
  const k = key as string;
  if (k.startsWith('/') || k.endsWith('/')) throw invalid(`${what} ${quote(k)} must not start or end with "/"`);
  for (const segment of k.split('/')) {
    if (segment === '') throw invalid(`${what} ${quote(k)} has an empty segment ("//")`);
    if (segment === '.' || segment === '..') throw invalid(`${what} ${quote(k)} has a "${segment}" segment`);
  }
  return k;
}

/**
 * Checks a key prefix for `list`/`watch`: like {@link validateKey} but may be empty and may end with `/`.
 */
export function validatePrefix(prefix: unknown, what = 'prefix'): string {
  if (prefix === '') return '';
  if (typeof prefix !== 'string') throw invalid(`${what} must be a string, got ${typeof prefix}`);
  validateKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix, what);
  return prefix;
}

/** Checks a flat key (cache key, message id): non-empty, bounded, no control character or lone surrogate. */
export function validateFlatKey(key: unknown, what = 'key', maxBytes = MAX_KEY_BYTES): string {
  if (typeof key !== 'string') throw invalid(`${what} must be a string, got ${key === null ? 'null' : typeof key}`);
  if (key.length === 0) throw invalid(`${what} must not be empty`);
  if (CONTROL.test(key)) throw invalid(`${what} ${quote(key)} contains a control character (NUL or below U+0020)`);
  if (hasLoneSurrogate(key)) throw invalid(`${what} ${quote(key)} contains a lone surrogate (not valid Unicode)`);
  if (key.length > maxBytes || Buffer.byteLength(key, 'utf8') > maxBytes) {
    throw invalid(`${what} ${quote(key)} is longer than ${maxBytes} bytes`);
  }
  return key;
}

/** Refuses text with a lone surrogate: it cannot be encoded as UTF-8 without silently changing it. */
export function assertWellFormed(text: string, what: string): string {
  if (hasLoneSurrogate(text)) throw invalid(`${what} contains a lone surrogate (not valid Unicode)`);
  return text;
}

/** Checks a name made of `[A-Za-z0-9_-]` (topics, groups, namespaces), 1 to `max` characters. */
export function validateName(name: unknown, what: string, pattern = /^[A-Za-z0-9_-]+$/, max = 128): string {
  if (typeof name !== 'string') throw invalid(`${what} must be a string, got ${name === null ? 'null' : typeof name}`);
  if (name.length === 0 || name.length > max || !pattern.test(name)) {
    throw invalid(`${what} ${quote(name)} must be 1 to ${max} characters of ${pattern.source.replace(/^\^|\+\$$/g, '')}`);
  }
  return name;
}

/** Checks an integer from `min` to `max`. */
export function validateInt(value: unknown, what: string, { min, max = Number.MAX_SAFE_INTEGER }: { min: number; max?: number }): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${what} must be an integer from ${min} to ${max}, got ${typeof value === 'number' ? value : typeof value}`);
  }
  return value;
}

/**
 * Checks a positive integer, from `min` to `max`. `min` (default 1) may raise the floor; where 0 is allowed
 * use {@link validateNonNegativeInt}, and {@link validateInt} for any other range.
 */
export function validatePositiveInt(value: unknown, what: string, { min = 1, max = Number.MAX_SAFE_INTEGER } = {}): number {
  return validateInt(value, what, { min, max });
}

/** Checks a non-negative integer (a duration that may be 0, a revision where 0 means "absent"). */
export function validateNonNegativeInt(value: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number {
  return validateInt(value, what, { min: 0, max });
}

/** Checks an optional non-negative integer (revisions, versions: 0 means "absent"). */
export function validateOptionalRevision(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  return validateNonNegativeInt(value, what);
}

/**
 * Checks that `value` is plain JSON (see {@link JsonValue}) and serialises it, checking the size against
 * `maxBytes` (RESOURCE_EXHAUSTED). Strings and object keys with lone surrogates, non-finite numbers,
 * `undefined`, functions, symbols, bigints, class instances (Date, Map, Buffer…), cycles and nesting deeper
 * than {@link MAX_JSON_DEPTH} are INVALID_ARGUMENT. `what` names the value in errors: a string, or a
 * function called only then.
 *
 * @returns the JSON text
 */
export function serializeJson(value: unknown, maxBytes: number, what: string | (() => string) = 'value'): string {
  // The common case is valid input: check it without building paths, and walk again with paths only to
  // word the error (the label too is made only then).
  if (!isPlainJson(value, 0, undefined)) checkJson(value, typeof what === 'string' ? what : what(), 0, new Set());
  const text = JSON.stringify(value);
  // A UTF-16 code unit is at most 3 UTF-8 bytes: short text needs no count.
  if (text.length > maxBytes || (text.length * 3 > maxBytes && Buffer.byteLength(text, 'utf8') > maxBytes)) {
    throw new StowageError(
      'RESOURCE_EXHAUSTED',
      `${typeof what === 'string' ? what : what()} is ${Buffer.byteLength(text, 'utf8')} bytes serialised; the limit is ${maxBytes}`,
      { details: { limit: maxBytes } },
    );
  }
  return text;
}

/** Whether `value` is plain JSON (the rules of {@link serializeJson}), without building error paths. */
function isPlainJson(value: unknown, depth: number, seen: object[] | undefined): boolean {
  switch (typeof value) {
    case 'string':
      return !hasLoneSurrogate(value);
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (value === null) return true;
      if (depth >= MAX_JSON_DEPTH) return false;
      // The objects above this one, outermost first (a cycle leads back to one of them). An array, not a
      // set: values are shallow, and a short linear scan costs less than hashing. Made on the first object.
      const ancestors = seen ?? [];
      if (ancestors.includes(value)) return false;
      ancestors.push(value);
      let ok = true;
      if (Array.isArray(value)) {
        for (let i = 0; ok && i < value.length; i++) ok = isPlainJson(value[i], depth + 1, ancestors);
      } else {
        const proto: unknown = Object.getPrototypeOf(value);
        if ((proto !== Object.prototype && proto !== null) || Object.getOwnPropertySymbols(value).length > 0) ok = false;
        for (const k in value) {
          if (!ok) break;
          if (!Object.hasOwn(value, k)) continue;
          ok = !hasLoneSurrogate(k) && isPlainJson((value as Record<string, unknown>)[k], depth + 1, ancestors);
        }
      }
      ancestors.pop();
      return ok;
    }
    default:
      return false;
  }
}

function checkJson(value: unknown, path: string, depth: number, seen: Set<object>): void {
  switch (typeof value) {
    case 'string':
      if (hasLoneSurrogate(value)) throw invalid(`${path} contains a lone surrogate (not valid Unicode)`);
      return;
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw invalid(`${path} is ${value}, which JSON cannot hold`);
      return;
    case 'object': {
      if (value === null) return;
      if (depth >= MAX_JSON_DEPTH) throw invalid(`${path} is nested deeper than ${MAX_JSON_DEPTH} levels`);
      if (seen.has(value)) throw invalid(`${path} contains a cycle`);
      seen.add(value);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) checkJson(value[i], `${path}[${i}]`, depth + 1, seen);
      } else {
        const proto: unknown = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          throw invalid(`${path} is a ${(value as object).constructor?.name ?? 'non-plain object'}, not a plain JSON object`);
        }
        if (Object.getOwnPropertySymbols(value).length > 0) throw invalid(`${path} has symbol keys`);
        for (const [k, v] of Object.entries(value)) {
          if (hasLoneSurrogate(k)) throw invalid(`${path} has a key with a lone surrogate`);
          checkJson(v, `${path}.${k}`, depth + 1, seen);
        }
      }
      seen.delete(value);
      return;
    }
    default:
      throw invalid(`${path} is ${typeof value}, which is not JSON`);
  }
}

/** Parses JSON text that Stowage wrote; a failure means the stored data is damaged. */
export function parseStoredJson(text: string, where: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new StowageError('CORRUPTED', `${where}: stored value is not valid JSON`, { cause: err });
  }
}

/** Checks the `{ signal, timeoutMs }` part of options. */
export function validateCallOptions(options: { signal?: unknown; timeoutMs?: unknown } | undefined): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw invalid('options must be an object');
  if (options.timeoutMs !== undefined) validatePositiveInt(options.timeoutMs, 'timeoutMs', { min: 1, max: 2_147_483_647 });
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw invalid('signal must be an AbortSignal');
}
