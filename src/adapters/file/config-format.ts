/**
 * The on-disk format of `file://` config, JSON or YAML (same structure):
 *
 * ```json
 * {
 *   "$stowage": "config/1",
 *   "revision": 12,
 *   "keys": {
 *     "app/port": { "value": 8080, "revision": 3, "createRevision": 1 },
 *     "nodes/a": { "value": { "url": "http://a" }, "revision": 12, "createRevision": 12, "lease": "9f0…" }
 *   },
 *   "leases": { "9f0…": { "pid": 4242, "host": "web-1", "token": "…", "ttlMs": 5000 } },
 *   "deleted": { "app/old": { "revision": 11, "reason": "deleted" } }
 * }
 * ```
 *
 * `revision` is the store revision; each key carries its last-write and create revisions, so both survive
 * restarts. `leases` records which process owns each lease, so a process that finds the owner dead
 * removes its keys. `deleted` keeps the revisions of the latest deletes (bounded), so other processes
 * report deletes with the revision they really had.
 *
 * A file without the `$stowage` marker is a plain object of key → value, as a person would write it; it
 * loads with revisions assigned in key order, and the next write stores it in the full format.
 *
 * @module
 */
import YAML, { YAMLParseError } from 'yaml';
import { StowageError } from '../../ports/errors.js';
import type { JsonValue } from '../../ports/common.js';
import { serializeJson, validateKey } from '../../driver/validate.js';

/** The marker value that identifies the full format. */
export const CONFIG_FILE_FORMAT = 'config/1';

/** One key as stored in the file. Revisions are absent in a plain file or after a hand edit that dropped them. */
export interface StoredKey {
  /** The value. */
  value: JsonValue;
  /** The revision of its last write. */
  revision?: number;
  /** The revision at which it was created. */
  createRevision?: number;
  /** The lease it is bound to. */
  lease?: string;
}

/** Who owns a lease: a process on a host, identified by pid and a per-process random token. */
export interface StoredLease {
  /** The owner's pid. */
  pid: number;
  /** The owner's host name. */
  host: string;
  /** A random token of the owning process, so a later process reusing the pid is not taken for the owner. */
  token: string;
  /** The TTL granted. */
  ttlMs: number;
}

/** A recent delete. */
export interface StoredTombstone {
  /** The revision of the delete. */
  revision: number;
  /** Why the key went away. */
  reason: 'deleted' | 'lease-expired';
}

/** The parsed content of a config file. */
export interface ConfigFileState {
  /** The store revision, when the file is in the full format. */
  revision: number | undefined;
  /** Keys. */
  keys: Map<string, StoredKey>;
  /** Leases. */
  leases: Map<string, StoredLease>;
  /** Recent deletes. */
  deleted: Map<string, StoredTombstone>;
}

/** Whether a path names a YAML file. */
export function isYamlPath(path: string): boolean {
  return /\.ya?ml$/i.test(path);
}

function corrupted(path: string, message: string, details: Record<string, unknown> = {}, cause?: unknown): StowageError {
  return new StowageError('CORRUPTED', `config file ${path}: ${message}`, { details: { file: path, ...details }, cause });
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

/** Where JSON.parse fails: V8 states a position for most errors; for the rest, the shortest failing prefix. */
function jsonErrorOffset(text: string, message: string): number {
  const m = /at position (\d+)/.exec(message);
  if (m) return Number(m[1]);
  const failsAt = (length: number): boolean => {
    try {
      JSON.parse(text.slice(0, length));
      return false;
    } catch (err) {
      return !/end of JSON input/i.test((err as Error).message);
    }
  };
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (failsAt(mid)) hi = mid;
    else lo = mid + 1;
  }
  return Math.max(0, lo - 1);
}

function parseText(text: string, path: string, yaml: boolean): unknown {
  if (yaml) {
    try {
      return YAML.parse(text, { prettyErrors: true });
    } catch (err) {
      if (err instanceof YAMLParseError) {
        const pos = err.linePos?.[0];
        const where = pos ? `line ${pos.line}, column ${pos.col}` : 'an unknown position';
        throw corrupted(path, `not valid YAML at ${where}: ${err.message.split('\n')[0]}`, { line: pos?.line, column: pos?.col }, err);
      }
      throw corrupted(path, `not valid YAML: ${(err as Error).message}`, {}, err);
    }
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    const { line, column } = lineColumn(text, jsonErrorOffset(text, (err as Error).message));
    throw corrupted(path, `not valid JSON at line ${line}, column ${column}: ${(err as Error).message}`, { line, column }, err);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function revisionField(value: unknown, path: string, where: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw corrupted(path, `${where} must be an integer of at least ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkKey(key: string, path: string): void {
  try {
    validateKey(key);
  } catch (err) {
    throw corrupted(path, `holds an invalid key: ${(err as Error).message}`, { key }, err);
  }
}

function checkValue(value: unknown, key: string, path: string): JsonValue {
  try {
    serializeJson(value, Number.MAX_SAFE_INTEGER, `value of ${JSON.stringify(key)}`);
  } catch (err) {
    throw corrupted(path, (err as Error).message, { key }, err);
  }
  return value as JsonValue;
}

/**
 * Parses a config file's text. An empty file is an empty store.
 *
 * @throws StowageError CORRUPTED naming the file and, for a syntax error, the line and column.
 */
export function parseConfigFile(text: string, path: string, yaml = isYamlPath(path)): ConfigFileState {
  const state: ConfigFileState = { revision: undefined, keys: new Map(), leases: new Map(), deleted: new Map() };
  if (text.trim() === '') return state;
  const doc = parseText(text, path, yaml);
  if (doc === null || doc === undefined) return state;
  if (!isObject(doc)) throw corrupted(path, 'must hold an object (key → value), not ' + (Array.isArray(doc) ? 'an array' : typeof doc));

  if (doc['$stowage'] === undefined) {
    for (const [key, value] of Object.entries(doc)) {
      checkKey(key, path);
      state.keys.set(key, { value: checkValue(value, key, path) });
    }
    return state;
  }
  if (doc['$stowage'] !== CONFIG_FILE_FORMAT) {
    throw corrupted(path, `has format ${JSON.stringify(doc['$stowage'])}; this version reads ${JSON.stringify(CONFIG_FILE_FORMAT)}`);
  }
  state.revision = revisionField(doc['revision'], path, '"revision"', 0) ?? 0;
  const keys = doc['keys'] ?? {};
  if (!isObject(keys)) throw corrupted(path, '"keys" must be an object');
  for (const [key, raw] of Object.entries(keys)) {
    checkKey(key, path);
    if (!isObject(raw) || !('value' in raw)) throw corrupted(path, `key ${JSON.stringify(key)} must be an object with a "value"`, { key });
    const stored: StoredKey = { value: checkValue(raw['value'], key, path) };
    const revision = revisionField(raw['revision'], path, `"revision" of key ${JSON.stringify(key)}`);
    const createRevision = revisionField(raw['createRevision'], path, `"createRevision" of key ${JSON.stringify(key)}`);
    if (revision !== undefined) stored.revision = revision;
    if (createRevision !== undefined) stored.createRevision = createRevision;
    if (typeof raw['lease'] === 'string') stored.lease = raw['lease'];
    state.keys.set(key, stored);
  }
  const leases = doc['leases'] ?? {};
  if (!isObject(leases)) throw corrupted(path, '"leases" must be an object');
  for (const [id, raw] of Object.entries(leases)) {
    if (!isObject(raw) || typeof raw['pid'] !== 'number' || typeof raw['host'] !== 'string' || typeof raw['token'] !== 'string') {
      throw corrupted(path, `lease ${JSON.stringify(id)} must have a pid, host and token`);
    }
    state.leases.set(id, { pid: raw['pid'], host: raw['host'], token: raw['token'], ttlMs: typeof raw['ttlMs'] === 'number' ? raw['ttlMs'] : 0 });
  }
  const deleted = doc['deleted'] ?? {};
  if (!isObject(deleted)) throw corrupted(path, '"deleted" must be an object');
  for (const [key, raw] of Object.entries(deleted)) {
    if (!isObject(raw)) throw corrupted(path, `deleted entry ${JSON.stringify(key)} must be an object`);
    const revision = revisionField(raw['revision'], path, `"revision" of deleted ${JSON.stringify(key)}`);
    if (revision === undefined) throw corrupted(path, `deleted entry ${JSON.stringify(key)} lacks a revision`);
    state.deleted.set(key, { revision, reason: raw['reason'] === 'lease-expired' ? 'lease-expired' : 'deleted' });
  }
  return state;
}

/** Writes a state in the full format, keys sorted, so diffs of the file stay readable. */
export function formatConfigFile(state: ConfigFileState, yaml: boolean): string {
  const sorted = <T>(map: Map<string, T>): Record<string, T> =>
    Object.fromEntries([...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const doc = {
    $stowage: CONFIG_FILE_FORMAT,
    revision: state.revision ?? 0,
    keys: sorted(state.keys),
    leases: sorted(state.leases),
    deleted: sorted(state.deleted),
  };
  return yaml ? YAML.stringify(doc) : `${JSON.stringify(doc, null, 2)}\n`;
}
