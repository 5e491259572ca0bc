/**
 * The one error type every Stowage call rejects with.
 *
 * @module
 */

/**
 * Stable error codes. Application code branches on `code`, never on messages.
 *
 * - `NOT_FOUND` — the key, secret, version, document or collection does not exist.
 * - `ALREADY_EXISTS` — a create-only write found the item already there (document `insert`).
 * - `CONFLICT` — a compare-and-set (`ifRevision`, `ifVersion`) or a unique index did not hold.
 * - `INVALID_ARGUMENT` — bad input: an empty key, a NUL byte, a `..` segment, a value that is not JSON,
 *   an unknown URL parameter or scheme. Nothing was changed.
 * - `UNAVAILABLE` — the backend cannot be reached now; retrying later may succeed.
 * - `TIMEOUT` — the call's deadline passed. For a write the outcome is unknown.
 * - `CANCELLED` — the caller's `AbortSignal` fired.
 * - `PERMISSION_DENIED` — credentials were refused, or a master key does not open a keyring.
 * - `RESOURCE_EXHAUSTED` — a value over its size limit, or a backend quota. Nothing was changed.
 * - `CLOSED` — the store was closed before or during the call.
 * - `CORRUPTED` — stored data failed its checksum or authentication; the message names where.
 * - `UNSUPPORTED` — the adapter does not declare the capability the call needs, or the URL's scheme needs a
 *   client library that is not installed (the message and `details.install` give the `npm install` line).
 * - `COMPACTED` — a watch asked for history the backend no longer keeps; resync with `list` and watch
 *   from the revision it returns.
 * - `INTERNAL` — a bug or an error the adapter could not classify.
 */
export type StowageErrorCode =
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'CONFLICT'
  | 'INVALID_ARGUMENT'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'CANCELLED'
  | 'PERMISSION_DENIED'
  | 'RESOURCE_EXHAUSTED'
  | 'CLOSED'
  | 'CORRUPTED'
  | 'UNSUPPORTED'
  | 'COMPACTED'
  | 'INTERNAL';

/** Every code, in a fixed order, for iteration and validation. */
export const STOWAGE_ERROR_CODES: readonly StowageErrorCode[] = Object.freeze([
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'CONFLICT',
  'INVALID_ARGUMENT',
  'UNAVAILABLE',
  'TIMEOUT',
  'CANCELLED',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'CLOSED',
  'CORRUPTED',
  'UNSUPPORTED',
  'COMPACTED',
  'INTERNAL',
]);

const RETRYABLE_BY_DEFAULT: ReadonlySet<StowageErrorCode> = new Set(['UNAVAILABLE', 'TIMEOUT']);

/** Options of {@link StowageError}'s constructor. */
export interface StowageErrorOptions {
  /** The underlying error, already stripped of credentials and secret values. */
  cause?: unknown;
  /** Whether the same call may succeed if retried. Defaults to `true` for UNAVAILABLE and TIMEOUT. */
  retryable?: boolean;
  /** Machine-readable facts about the failure (the current revision on CONFLICT, a file offset on CORRUPTED). Never secrets. */
  details?: Readonly<Record<string, unknown>>;
}

/**
 * The error every Stowage port rejects with.
 *
 * The message is for people; `code` is for programs. `cause` holds the driver's own error with
 * credentials removed, so logging a `StowageError` whole is always safe.
 *
 * @example
 * ```ts
 * try {
 *   await config.put('feature/x', true, { ifRevision: 0 });
 * } catch (err) {
 *   if (StowageError.is(err, 'CONFLICT')) console.log('someone created it first');
 *   else throw err;
 * }
 * ```
 */
export class StowageError extends Error {
  /** The stable error code. */
  readonly code: StowageErrorCode;
  /** Whether retrying the same call later may succeed. */
  readonly retryable: boolean;
  /** Machine-readable facts about the failure; never contains secrets. */
  readonly details: Readonly<Record<string, unknown>>;

  /**
   * @param code - the stable code
   * @param message - a sentence for people; must not contain secrets
   * @param options - cause, retryable, details
   */
  constructor(code: StowageErrorCode, message: string, options: StowageErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StowageError';
    this.code = code;
    this.retryable = options.retryable ?? RETRYABLE_BY_DEFAULT.has(code);
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }

  /**
   * Whether `err` is a {@link StowageError}, optionally with the given code.
   *
   * Works across copies of the package (it checks the shape, not only `instanceof`).
   */
  static is(err: unknown, code?: StowageErrorCode): err is StowageError {
    if (err instanceof StowageError) return code === undefined || err.code === code;
    if (typeof err !== 'object' || err === null) return false;
    const e = err as { name?: unknown; code?: unknown };
    return (
      e.name === 'StowageError' &&
      typeof e.code === 'string' &&
      (STOWAGE_ERROR_CODES as readonly string[]).includes(e.code) &&
      (code === undefined || e.code === code)
    );
  }
}
