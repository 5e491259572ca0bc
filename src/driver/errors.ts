/**
 * The errors a driver throws: one factory per kind, so the wording and the `details` of each (which callers
 * read, and which the contract suites check) are written once; and turning raw client errors into
 * {@link StowageError}s with credentials removed.
 *
 * @module
 */
import { StowageError, type StowageErrorCode } from '../ports/errors.js';
import { quote } from './validate.js';

/** The `details` of a config CONFLICT ({@link revisionConflict}). */
export type RevisionConflictDetails = {
  /** The key. */
  readonly key: string;
  /** Its current revision; 0 when it is absent. */
  readonly revision: number;
};

/** The `details` of a secrets CONFLICT ({@link secretVersionConflict}). */
export type SecretConflictDetails = {
  /** The secret's name. */
  readonly name: string;
  /** The version the caller expected to be the latest. */
  readonly expected: number;
  /** The latest version; 0 when the secret has none. */
  readonly current: number;
};

/** The `details` of a documents version CONFLICT ({@link versionConflict}). */
export type VersionConflictDetails = {
  /** The document's current version; 0 when it is absent. */
  readonly currentVersion: number;
};

/**
 * The `details` of a documents index CONFLICT: a write that breaks a unique index
 * ({@link uniqueIndexConflict}), a unique index that existing documents break
 * ({@link uniqueIndexBuildConflict}), an index declared again with another definition
 * ({@link indexDefinitionConflict}).
 */
export type IndexConflictDetails = {
  /** The index, by its declared name. */
  readonly index: string;
};

/**
 * The `details` of a CONFLICT, by port — the one place they are documented. This shape is part of the
 * contract: callers read it to retry or to report, and the contract suites check it.
 *
 * | port | factory | details |
 * |---|---|---|
 * | config | {@link revisionConflict} | `{ key, revision }`: the key's current revision, 0 when absent |
 * | secrets | {@link secretVersionConflict} | `{ name, expected, current }` |
 * | documents | {@link versionConflict} | `{ currentVersion }`: 0 when the document is absent |
 * | documents | {@link uniqueIndexConflict}, {@link uniqueIndexBuildConflict}, {@link indexDefinitionConflict} | `{ index }` |
 */
export type ConflictDetails = RevisionConflictDetails | SecretConflictDetails | VersionConflictDetails | IndexConflictDetails;

/**
 * CONFLICT: document `id` in `collection` is at version `actual`, not the `expected` of the caller's
 * `ifVersion`. Details: `{ currentVersion: actual }`.
 */
export function versionConflict(collection: string, id: string, actual: number, expected: number): StowageError {
  const details: VersionConflictDetails = { currentVersion: actual };
  return new StowageError('CONFLICT', `document ${quote(id)} in ${collection} is at version ${actual}, not ${expected}`, { details });
}

/**
 * CONFLICT: writing document `id` in `collection` would give unique index `index` (its declared name) a
 * value another document has. Details: `{ index }`.
 *
 * @param cause - the client's error, already safe to keep (see {@link safeCause})
 */
export function uniqueIndexConflict(collection: string, id: string, index: string, cause?: Error): StowageError {
  const details: IndexConflictDetails = { index };
  return new StowageError('CONFLICT', `document ${quote(id)} in ${collection} breaks unique index ${index}`, { details, ...(cause ? { cause } : {}) });
}

/**
 * CONFLICT: unique index `index` on `fields` cannot be created on `collection` because existing documents
 * share values of them. Details: `{ index }`.
 *
 * @param cause - the client's error, already safe to keep (see {@link safeCause})
 */
export function uniqueIndexBuildConflict(collection: string, index: string, fields: readonly string[], cause?: Error): StowageError {
  const details: IndexConflictDetails = { index };
  return new StowageError('CONFLICT', `cannot create unique index ${index} on ${collection}: existing documents share values of ${fields.join(', ')}`, {
    details,
    ...(cause ? { cause } : {}),
  });
}

/** CONFLICT: index `index` of `collection` exists with other fields or uniqueness. Details: `{ index }`. */
export function indexDefinitionConflict(collection: string, index: string): StowageError {
  const details: IndexConflictDetails = { index };
  return new StowageError('CONFLICT', `index ${index} of ${collection} exists with another definition`, { details });
}

/**
 * CONFLICT: config `key` is at revision `actual` (0: absent), not the `expected` of the caller's
 * `ifRevision`. Details: `{ key, revision: actual }`.
 *
 * @param where - names the store at the start of the message, e.g. `config (etcd)`
 */
export function revisionConflict(key: string, actual: number, expected: number, where = 'config'): StowageError {
  const details: RevisionConflictDetails = { key, revision: actual };
  return new StowageError('CONFLICT', `${where}: key ${quote(key)} is at revision ${actual}${actual === 0 ? ' (absent)' : ''}, not ${expected}`, { details });
}

/**
 * CONFLICT: secret `name` has `current` versions, not the `expected` of the caller's `ifVersion`. Details:
 * `{ name, expected, current }`.
 */
export function secretVersionConflict(name: string, expected: number, current: number): StowageError {
  const details: SecretConflictDetails = { name, expected, current };
  return new StowageError('CONFLICT', `secret ${JSON.stringify(name)}: expected version ${expected}, latest is ${current}`, { details });
}

/**
 * Why an operation failed, in `details.reason`, where the code alone does not say what to do about it: what
 * `stowage doctor` gives its advice by, never by the wording of a message.
 *
 * - `missing-client`: the scheme's client library is not installed (`details.install` is the npm line);
 * - `data-dir-locked`: another live process holds the standalone data folder (`details.pid`);
 * - `file-permission`: the file system refused access to a file or folder (EACCES, EPERM, EROFS);
 * - `wrong-master-key`: the master key does not open the keyring or sealed store;
 * - `missing-stream`: the stream (or bucket) the URL names does not exist.
 */
export type ErrorReason = 'missing-client' | 'data-dir-locked' | 'file-permission' | 'wrong-master-key' | 'missing-stream';

/** The {@link ErrorReason} an error carries in `details.reason`, if any. */
export function reasonOf(err: { readonly details?: Readonly<Record<string, unknown>> } | undefined): ErrorReason | undefined {
  const reason = err?.details?.reason;
  return typeof reason === 'string' && (REASONS as readonly string[]).includes(reason) ? (reason as ErrorReason) : undefined;
}

const REASONS: readonly ErrorReason[] = ['missing-client', 'data-dir-locked', 'file-permission', 'wrong-master-key', 'missing-stream'];

/** INVALID_ARGUMENT with `message` (which must not hold secrets) and optional `details`. */
export function invalid(message: string, details?: Readonly<Record<string, unknown>>): StowageError {
  return new StowageError('INVALID_ARGUMENT', message, details === undefined ? {} : { details });
}

/**
 * UNSUPPORTED: `backend` cannot do `what`. With `capability`, the message names the capability the call
 * needs and `details` is `{ capability }`.
 *
 * @param what - the call or feature, e.g. `watch` or `purge`
 * @param backend - names the store, e.g. `config (etcd)`
 */
export function unsupported(what: string, backend: string, capability?: string): StowageError {
  if (capability === undefined) return new StowageError('UNSUPPORTED', `${backend}: ${what} is not supported`);
  return new StowageError('UNSUPPORTED', `${backend}: ${what} needs the "${capability}" capability, which this backend does not declare`, {
    details: { capability },
  });
}

/** CLOSED: `what` (e.g. `disk queue /data/queue`) was closed. */
export function closed(what: string): StowageError {
  return new StowageError('CLOSED', `${what} is closed`);
}

/**
 * UNAVAILABLE: `backend` cannot be reached or cannot serve now. `cause` is kept in redacted form (see
 * {@link safeCause}); its message is appended.
 */
export function unavailable(backend: string, cause?: unknown): StowageError {
  const safe = safeCause(cause);
  return new StowageError('UNAVAILABLE', `${backend}: unavailable${safe ? ` (${safe.message})` : ''}`, { cause: safe });
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ENOTCONN',
  'ESOCKETTIMEDOUT',
]);

const FS_CODES: Readonly<Record<string, StowageErrorCode>> = {
  EACCES: 'PERMISSION_DENIED',
  EPERM: 'PERMISSION_DENIED',
  EROFS: 'PERMISSION_DENIED',
  ENOSPC: 'RESOURCE_EXHAUSTED',
  EDQUOT: 'RESOURCE_EXHAUSTED',
  EMFILE: 'RESOURCE_EXHAUSTED',
  ENFILE: 'RESOURCE_EXHAUSTED',
};

/**
 * Removes credentials from a piece of text: the user info of URLs, `token=`/`password=`-style query
 * parameters and headers, bearer tokens, and every string in `extra` (known secret values or tokens).
 */
export function redact(text: string, extra: readonly string[] = []): string {
  let out = text
    // Up to the last "@" of the word: a password may hold a raw "/", "?", "#" or "@", so the user info
    // cannot be told to end any earlier. Hiding too much of an error message costs less than a password.
    .replace(/(\/\/)[^\s@]*@/g, '$1[redacted]@')
    .replace(/((?:token|password|passwd|pwd|secret|auth|key|pass|credential)s?["']?\s*[=:]\s*["']?)[^\s"'&,;}]+/gi, '$1[redacted]')
    .replace(/(bearer\s+)[A-Za-z0-9._~+/=-]+/gi, '$1[redacted]')
    .replace(/(x-vault-token["']?\s*[:=]\s*["']?)[^\s"',}]+/gi, '$1[redacted]');
  for (const s of extra) if (s.length >= 4) out = out.split(s).join('[redacted]');
  return out;
}

/**
 * A copy of a raw error that is safe to keep as `cause`: its name, code and redacted message only (never
 * the original object, which may hold request options, headers or payloads).
 */
export function safeCause(err: unknown, extra: readonly string[] = []): Error | undefined {
  if (err === undefined || err === null) return undefined;
  if (StowageError.is(err)) return err;
  const raw = err as { name?: unknown; message?: unknown; code?: unknown };
  const message = typeof raw.message === 'string' ? raw.message : typeof err === 'string' ? err : String(err);
  const copy = new Error(redact(message, extra));
  copy.name = typeof raw.name === 'string' ? raw.name : 'Error';
  if (typeof raw.code === 'string' || typeof raw.code === 'number') (copy as Error & { code?: unknown }).code = raw.code;
  copy.stack = `${copy.name}: ${copy.message}`;
  return copy;
}

/** The errno-style `code` of a raw error, if any. */
export function errorCodeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Classifies any thrown value as a {@link StowageError}.
 *
 * Order: a StowageError passes through; then the driver's own `mapError`; then generic rules (network
 * errno codes → UNAVAILABLE, file-system errno codes, AbortError → CANCELLED); anything else is INTERNAL.
 * The message always names the operation and never includes credentials.
 */
export function toStowageError(
  err: unknown,
  context: { operation: string; backend: string; mapError?: (err: unknown) => StowageError | undefined },
): StowageError {
  if (StowageError.is(err)) return err;
  const mapped = context.mapError?.(err);
  if (mapped) return mapped;
  const code = errorCodeOf(err);
  const cause = safeCause(err);
  const what = `${context.backend}: ${context.operation} failed`;
  if (code !== undefined && NETWORK_CODES.has(code)) {
    return new StowageError('UNAVAILABLE', `${what}: backend unreachable (${code})`, { cause });
  }
  if (code !== undefined && FS_CODES[code] !== undefined) {
    const reason: ErrorReason | undefined = FS_CODES[code] === 'PERMISSION_DENIED' ? 'file-permission' : undefined;
    return new StowageError(FS_CODES[code], `${what}: ${cause?.message ?? code}`, { cause, ...(reason ? { details: { reason } } : {}) });
  }
  if ((err as { name?: unknown } | null)?.name === 'AbortError') {
    return new StowageError('CANCELLED', `${what}: cancelled`, { cause });
  }
  return new StowageError('INTERNAL', `${what}: ${cause?.message ?? 'unknown error'}`, { cause });
}
