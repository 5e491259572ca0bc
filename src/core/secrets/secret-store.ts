/**
 * The secrets port over any {@link SecretsDriver}: validation, deadlines, capabilities, the closed state,
 * and the guarantee that no error leaving the port carries a secret value.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { CallOptions, HealthReport } from '../../ports/common.js';
import {
  SecretValue,
  type Secret,
  type SecretDestroyOptions,
  type SecretGetOptions,
  type SecretPutOptions,
  type SecretStore,
  type SecretVersionInfo,
  type SecretVersionsOptions,
  type SecretsCapability,
  type SecretsDriver,
  type SecretWriteResult,
} from '../../ports/secrets.js';
import { redact, safeCause } from '../../driver/errors.js';
import { PortRuntime, type RuntimeOptions } from '../runtime.js';
import { quote, validateKey, validateOptionalRevision, validatePositiveInt, validatePrefix } from '../../driver/validate.js';
import { invalid, unsupported } from '../../driver/errors.js';

/** The default largest secret value, in bytes. */
export const DEFAULT_MAX_SECRET_BYTES = 64 * 1024;

/** Options of {@link createSecretStore}. */
export interface SecretStoreOptions extends RuntimeOptions {
  /**
   * The largest value accepted, in bytes; larger values are RESOURCE_EXHAUSTED.
   *
   * @default 65536
   */
  maxValueBytes?: number;
}

/** Turns a put's value into bytes, refusing anything that is not a string, bytes or a SecretValue. */
function valueBytes(value: unknown): Uint8Array {
  if (value instanceof SecretValue) return value.bytes();
  if (typeof value === 'string') {
    if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(value)) {
      throw invalid('secret value contains a lone surrogate (not valid Unicode)');
    }
    return new TextEncoder().encode(value);
  }
  if (value instanceof Uint8Array) return Uint8Array.from(value);
  throw invalid(`secret value must be a string, a Uint8Array or a SecretValue, got ${value === null ? 'null' : typeof value}`);
}

function validateVersionList(versions: unknown, what: string): readonly number[] {
  if (!Array.isArray(versions)) throw invalid(`${what} must be an array of version numbers`);
  if (versions.length === 0) throw invalid(`${what} must name at least one version`);
  for (const v of versions) validatePositiveInt(v, `each of ${what}`);
  return [...new Set(versions as number[])].sort((a, b) => a - b);
}

/**
 * The strings under which a value could show up in a message: its UTF-8 text, the same text as it
 * appears inside a JSON string, and its base64 and hex forms.
 */
function valueForms(bytes: Uint8Array): string[] {
  const text = new TextDecoder().decode(bytes);
  const buf = Buffer.from(bytes);
  const forms = new Set([text, JSON.stringify(text).slice(1, -1), buf.toString('base64'), buf.toString('hex')]);
  return [...forms].filter((s) => s.length >= 4);
}

function mentionsAny(text: string, needles: readonly string[]): boolean {
  return needles.some((n) => text.includes(n));
}

/**
 * A copy of `err` whose message, stack, details and cause chain are free of `secrets`, and whose causes
 * are plain copies (name, code, redacted message) rather than a driver's own error objects, which may hold
 * request options, headers or payloads. Every error leaving the port goes through here.
 */
function scrub(err: StowageError, secrets: readonly string[], depth = 0): StowageError {
  const cause = scrubCause(err.cause, secrets, depth);
  const detailsText = safeJson(err.details);
  const details = detailsText !== undefined && !mentionsAny(detailsText, secrets) ? err.details : {};
  const stackLeaks = err.stack !== undefined && mentionsAny(err.stack, secrets);
  if (cause === err.cause && details === err.details && !stackLeaks && !mentionsAny(err.message, secrets)) return err;
  const copy = new StowageError(err.code, redact(err.message, secrets), { cause, retryable: err.retryable, details });
  copy.stack = redact(err.stack ?? `${copy.name}: ${copy.message}`, secrets);
  return copy;
}

function scrubCause(cause: unknown, secrets: readonly string[], depth: number): unknown {
  if (cause === undefined || depth > 8) return undefined;
  if (StowageError.is(cause)) return scrub(cause, secrets, depth + 1);
  const copy = safeCause(cause, secrets);
  // A copy made by safeCause already is what safeCause would make of it: keep it, so scrub is idempotent.
  if (cause instanceof Error && copy !== undefined && cause.message === copy.message && Object.keys(cause).every((k) => k === 'code')) {
    return cause;
  }
  return copy;
}

function safeJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

class CoreSecretStore implements SecretStore {
  readonly #driver: SecretsDriver;
  readonly #runtime: PortRuntime;
  readonly maxValueBytes: number;

  constructor(driver: SecretsDriver, options: SecretStoreOptions) {
    this.#driver = driver;
    this.#runtime = new PortRuntime('secrets', driver, options);
    this.maxValueBytes =
      options.maxValueBytes === undefined ? DEFAULT_MAX_SECRET_BYTES : validatePositiveInt(options.maxValueBytes, 'maxValueBytes');
  }

  get capabilities(): ReadonlySet<SecretsCapability> {
    return this.#driver.capabilities;
  }

  get backend(): string {
    return this.#runtime.backend;
  }

  get closed(): boolean {
    return this.#runtime.closed;
  }

  async get(name: string, options?: SecretGetOptions): Promise<Secret> {
    this.#runtime.assertOpen('get');
    validateKey(name, 'secret name');
    const version = options?.version === undefined ? undefined : validatePositiveInt(options.version, 'version');
    const record = await this.#run('get', options, (signal) => this.#driver.get(name, version, signal));
    if (record === undefined) {
      const which = version === undefined ? 'has no current version' : `has no readable version ${version}`;
      throw new StowageError('NOT_FOUND', `secret ${quote(name)} ${which} (absent, deleted or destroyed)`, {
        details: version === undefined ? { name } : { name, version },
      });
    }
    return Object.freeze({
      name,
      version: record.version,
      value: new SecretValue(record.value),
      createdAt: new Date(record.createdAt.getTime()),
    });
  }

  async put(name: string, value: string | Uint8Array | SecretValue, options?: SecretPutOptions): Promise<SecretWriteResult> {
    this.#runtime.assertOpen('put');
    validateKey(name, 'secret name');
    const bytes = valueBytes(value);
    if (bytes.byteLength > this.maxValueBytes) {
      throw new StowageError(
        'RESOURCE_EXHAUSTED',
        `secret ${quote(name)}: value is ${bytes.byteLength} bytes; the limit is ${this.maxValueBytes}`,
        { details: { name, limit: this.maxValueBytes } },
      );
    }
    const ifVersion = validateOptionalRevision(options?.ifVersion, 'ifVersion');
    const forms = valueForms(bytes);
    return this.#run('put', options, (signal) => this.#driver.put(name, bytes, ifVersion, signal), forms);
  }

  async delete(name: string, options?: SecretVersionsOptions): Promise<void> {
    this.#runtime.assertOpen('delete');
    validateKey(name, 'secret name');
    const versions = options?.versions === undefined ? undefined : validateVersionList(options.versions, 'versions');
    const driverDelete = this.#require('softDelete', 'delete', this.#driver.delete);
    await this.#run('delete', options, (signal) => driverDelete.call(this.#driver, name, versions, signal));
  }

  async undelete(name: string, options: SecretVersionsOptions & { versions: readonly number[] }): Promise<void> {
    this.#runtime.assertOpen('undelete');
    validateKey(name, 'secret name');
    if (typeof options !== 'object' || options === null) throw invalid('undelete needs options with the versions to restore');
    const versions = validateVersionList(options.versions, 'versions');
    const driverUndelete = this.#require('undelete', 'undelete', this.#driver.undelete);
    await this.#run('undelete', options, (signal) => driverUndelete.call(this.#driver, name, versions, signal));
  }

  async destroy(name: string, options?: SecretDestroyOptions): Promise<void> {
    this.#runtime.assertOpen('destroy');
    validateKey(name, 'secret name');
    const versions = options?.versions === undefined ? undefined : validateVersionList(options.versions, 'versions');
    const driverDestroy = this.#require('destroy', 'destroy', this.#driver.destroy);
    await this.#run('destroy', options, (signal) => driverDestroy.call(this.#driver, name, versions, signal));
  }

  async list(prefix = '', options?: CallOptions): Promise<string[]> {
    this.#runtime.assertOpen('list');
    validatePrefix(prefix, 'secret name prefix');
    const names = await this.#run('list', options, (signal) => this.#driver.list(prefix, signal));
    return [...names];
  }

  async versions(name: string, options?: CallOptions): Promise<SecretVersionInfo[]> {
    this.#runtime.assertOpen('versions');
    validateKey(name, 'secret name');
    const infos = await this.#run('versions', options, (signal) => this.#driver.versions(name, signal));
    if (infos === undefined) {
      throw new StowageError('NOT_FOUND', `secret ${quote(name)} does not exist`, { details: { name } });
    }
    return infos.map((i) => Object.freeze({ ...i, createdAt: new Date(i.createdAt.getTime()) }));
  }

  async health(options?: CallOptions): Promise<HealthReport> {
    const report = await this.#runtime.health(options);
    return report.error === undefined ? report : { ...report, error: scrub(report.error, []) };
  }

  close(): Promise<void> {
    return this.#runtime.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Runs a driver call through the runtime; whatever it throws leaves scrubbed of `secrets` and raw causes. */
  async #run<T>(operation: string, options: CallOptions | undefined, fn: (signal: AbortSignal) => Promise<T>, secrets: readonly string[] = []): Promise<T> {
    try {
      return await this.#runtime.run(operation, options, fn);
    } catch (err) {
      throw scrub(StowageError.is(err) ? err : this.#runtime.mapError(err, operation), secrets);
    }
  }

  /** The driver's method for a capability, or UNSUPPORTED when the driver does not declare it. */
  #require<F>(capability: SecretsCapability, operation: string, method: F | undefined): F {
    if (!this.#driver.capabilities.has(capability) || method === undefined) {
      throw unsupported(operation, `secrets (${this.backend})`, capability);
    }
    return method;
  }
}

/**
 * Creates the secrets port over a driver.
 *
 * @param driver - the adapter's driver, usually from the scheme registry
 * @param options - deadlines and the value size limit (default 64 KiB)
 *
 * @example
 * ```ts
 * const secrets = createSecretStore(await registry.open('secrets', 'mem://', ctx));
 * await secrets.put('db/password', 's3cr3t');
 * const { value } = await secrets.get('db/password');
 * ```
 */
export function createSecretStore(driver: SecretsDriver, options: SecretStoreOptions = {}): SecretStore {
  return new CoreSecretStore(driver, options);
}
