/**
 * The secrets port: versioned secret values that never show themselves in logs, errors or JSON.
 *
 * @module
 */
import { inspect } from 'node:util';
import type { CallOptions, DriverBase, Lifecycle } from './common.js';

const REDACTED = '[redacted]';

/**
 * A secret value. It prints as `[redacted]` through `util.inspect`, `console.log`, `String()`, template
 * literals and `JSON.stringify`; only {@link SecretValue.reveal} and {@link SecretValue.bytes} give the
 * plaintext.
 *
 * @example
 * ```ts
 * const { value } = await secrets.get('db/password');
 * console.log(value);               // [redacted]
 * connect({ password: value.reveal() });
 * ```
 */
export class SecretValue {
  readonly #bytes: Uint8Array;

  /** Wraps a string (stored as UTF-8) or bytes (copied). */
  constructor(value: string | Uint8Array) {
    this.#bytes = typeof value === 'string' ? new TextEncoder().encode(value) : Uint8Array.from(value);
  }

  /** The plaintext as a UTF-8 string. */
  reveal(): string {
    return new TextDecoder().decode(this.#bytes);
  }

  /** A copy of the plaintext bytes. */
  bytes(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }

  /** The plaintext length in bytes (safe to log). */
  get byteLength(): number {
    return this.#bytes.byteLength;
  }

  /** Constant-time comparison with another value. */
  equals(other: SecretValue | string | Uint8Array): boolean {
    const b = other instanceof SecretValue ? other.#bytes : new SecretValue(other).#bytes;
    if (b.byteLength !== this.#bytes.byteLength) return false;
    let diff = 0;
    for (let i = 0; i < b.byteLength; i++) diff |= (b[i] ?? 0) ^ (this.#bytes[i] ?? 0);
    return diff === 0;
  }

  /** Always `[redacted]`. */
  toString(): string {
    return REDACTED;
  }

  /** Always `[redacted]`, so `JSON.stringify` never shows the value. */
  toJSON(): string {
    return REDACTED;
  }

  /** Always `[redacted]`, so `util.inspect` and `console.log` never show the value. */
  [inspect.custom](): string {
    return REDACTED;
  }

  /** Always `[redacted]` for template literals and string coercion. */
  [Symbol.toPrimitive](): string {
    return REDACTED;
  }
}

/**
 * What a secrets adapter can do beyond `get`, `put` (with compare-and-set), `list` and `versions`.
 *
 * - `softDelete` — `delete` hides versions and keeps them recoverable.
 * - `undelete` — `undelete` brings soft-deleted versions back.
 * - `destroy` — `destroy` removes versions' data for good.
 */
export type SecretsCapability = 'softDelete' | 'undelete' | 'destroy';

/** One version of a secret, as returned by {@link SecretStore.get}. */
export interface Secret {
  /** The secret's name. */
  readonly name: string;
  /** The version number: 1 for the first write, one more for every later write. */
  readonly version: number;
  /** The value, redacted in every printout. */
  readonly value: SecretValue;
  /** When this version was written. */
  readonly createdAt: Date;
}

/** What is known of one version without its value. */
export interface SecretVersionInfo {
  /** The version number. */
  readonly version: number;
  /** When it was written. */
  readonly createdAt: Date;
  /** Soft-deleted: hidden from `get`, recoverable with `undelete`. */
  readonly deleted: boolean;
  /** Destroyed: the value is gone for good. */
  readonly destroyed: boolean;
}

/** Options of {@link SecretStore.get}. */
export interface SecretGetOptions extends CallOptions {
  /** A specific version; default the latest. */
  version?: number;
}

/** Options of {@link SecretStore.put}. */
export interface SecretPutOptions extends CallOptions {
  /**
   * Compare-and-set: write only if the latest version is this one; `0` = only if the secret has no version
   * yet. A mismatch rejects with CONFLICT and writes nothing.
   */
  ifVersion?: number;
}

/** Options naming versions. */
export interface SecretVersionsOptions extends CallOptions {
  /** The versions to act on; default the latest version. */
  versions?: readonly number[];
}

/** Options of {@link SecretStore.destroy}. */
export interface SecretDestroyOptions extends CallOptions {
  /** The versions to destroy; default every version and the secret's metadata. */
  versions?: readonly number[];
}

/**
 * The secrets port.
 *
 * Guarantees, checked by the secrets contract suite:
 * - every `put` creates a new version, numbered 1, 2, 3, … and older versions stay readable until deleted
 *   or destroyed;
 * - `put` with `ifVersion` is an atomic compare-and-set (`0` = create only);
 * - `get` of the latest version after a soft delete gives NOT_FOUND; older versions still read;
 * - `destroy` removes the data of the versions named, or of every version and the name itself;
 * - values are {@link SecretValue}s: they print as `[redacted]` in `util.inspect`, `JSON.stringify` and error
 *   messages, and no error or log line from Stowage contains a value or a credential;
 * - names follow the key rules of the config port; values are at most {@link SecretStore.maxValueBytes}.
 */
export interface SecretStore extends Lifecycle {
  /** What this adapter supports. */
  readonly capabilities: ReadonlySet<SecretsCapability>;
  /** The largest value accepted, in bytes. */
  readonly maxValueBytes: number;
  /** Reads the latest (or a given) version. NOT_FOUND when absent, soft-deleted or destroyed. */
  get(name: string, options?: SecretGetOptions): Promise<Secret>;
  /** Writes a new version; resolves with its number once durable. */
  put(name: string, value: string | Uint8Array | SecretValue, options?: SecretPutOptions): Promise<SecretWriteResult>;
  /** Soft-deletes the latest (or given) versions (capability `softDelete`). */
  delete(name: string, options?: SecretVersionsOptions): Promise<void>;
  /** Restores soft-deleted versions (capability `undelete`). */
  undelete(name: string, options: SecretVersionsOptions & { versions: readonly number[] }): Promise<void>;
  /** Destroys the given versions, or the whole secret (capability `destroy`). */
  destroy(name: string, options?: SecretDestroyOptions): Promise<void>;
  /** Names starting with `prefix` that have at least one version not destroyed, sorted. */
  list(prefix?: string, options?: CallOptions): Promise<string[]>;
  /** Every version of a secret, oldest first, without values. NOT_FOUND when the name is unknown. */
  versions(name: string, options?: CallOptions): Promise<SecretVersionInfo[]>;
}

/** The result of a secret write. */
export interface SecretWriteResult {
  /** The version created. */
  readonly version: number;
}

/** One stored version as a driver returns it: plaintext bytes, which core wraps in a {@link SecretValue}. */
export interface SecretRecord {
  /** The version number. */
  readonly version: number;
  /** The plaintext. */
  readonly value: Uint8Array;
  /** When it was written. */
  readonly createdAt: Date;
}

/** What a secrets adapter implements. Input is validated; values arrive as bytes. */
export interface SecretsDriver extends DriverBase {
  /** What the driver supports. */
  readonly capabilities: ReadonlySet<SecretsCapability>;
  /** Reads a version (latest when undefined); undefined when absent, deleted or destroyed. */
  get(name: string, version: number | undefined, signal: AbortSignal): Promise<SecretRecord | undefined>;
  /** Writes a new version, honouring `ifVersion` (throw CONFLICT on mismatch). */
  put(name: string, value: Uint8Array, ifVersion: number | undefined, signal: AbortSignal): Promise<SecretWriteResult>;
  /** Soft-deletes versions (latest when undefined). NOT_FOUND if the name is unknown. */
  delete?(name: string, versions: readonly number[] | undefined, signal: AbortSignal): Promise<void>;
  /** Restores soft-deleted versions. */
  undelete?(name: string, versions: readonly number[], signal: AbortSignal): Promise<void>;
  /** Destroys versions, or everything when undefined. */
  destroy?(name: string, versions: readonly number[] | undefined, signal: AbortSignal): Promise<void>;
  /** Names under a prefix, sorted. */
  list(prefix: string, signal: AbortSignal): Promise<string[]>;
  /** Version metadata, oldest first; undefined when the name is unknown. */
  versions(name: string, signal: AbortSignal): Promise<SecretVersionInfo[] | undefined>;
}
