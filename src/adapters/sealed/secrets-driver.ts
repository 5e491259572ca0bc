/**
 * Sealed secrets: the secrets port over any config driver, values encrypted with AES-256-GCM under a
 * master key, so a cluster without Vault still keeps secrets encrypted at rest.
 *
 * Layout under the config driver's keys:
 * - `h` — the header: scrypt parameters with their random salt and a key-check record (created once,
 *   with create-only compare-and-set, so concurrent first opens agree on one salt);
 * - `m/<name>` — the secret's metadata: one entry per version (time, deleted mark, data id or null once
 *   destroyed). Every change to it is a compare-and-set on its revision, retried on conflict, so
 *   concurrent writers never lose a version and `ifVersion` is exact;
 * - `d/<name>/<id>` — one sealed value per write, under a fresh random id, with `name NUL id` as
 *   associated data. The value is written before the metadata that points to it; a writer that loses the
 *   race for `ifVersion` deletes its value again.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { ConfigDriver, ConfigEntry } from '../../ports/config.js';
import type { JsonValue, PingResult } from '../../ports/common.js';
import { StowageError } from '../../ports/errors.js';
import type { SecretRecord, SecretVersionInfo, SecretsCapability, SecretsDriver, SecretWriteResult } from '../../ports/secrets.js';
import { toStowageError } from '../../core/errors.js';
import { DEFAULT_KDF_COST, checkKdfParams, deriveKeys, makeKeyCheck, newKdfParams, seal, unseal, verifyKeyCheck, type KdfParams, type SealKeys } from '../../core/secrets/seal.js';

const FORMAT = 'stowage-sealed';
const FORMAT_VERSION = 1;
const HEADER_KEY = 'h';
const CAPABILITIES: ReadonlySet<SecretsCapability> = new Set(['softDelete', 'undelete', 'destroy']);

interface Meta {
  versions: { at: string; deleted: boolean; id: string | null }[];
}

interface MetaState {
  readonly meta: Meta | undefined;
  /** The metadata key's revision, 0 when absent: the `ifRevision` of the next compare-and-set. */
  readonly revision: number;
}

const metaKey = (name: string): string => `m/${name}`;
const dataKey = (name: string, id: string): string => `d/${name}/${id}`;
const aadOf = (name: string, id: string): string => `${name}\u0000${id}`;

function notFound(name: string): StowageError {
  return new StowageError('NOT_FOUND', `secret ${JSON.stringify(name)} does not exist`, { details: { name } });
}

/** The secrets driver over a config driver. Open it with {@link SealedSecretsDriver.open}. */
export class SealedSecretsDriver implements SecretsDriver {
  /** The outer scheme, e.g. `etcd+sealed`. */
  readonly backend: string;
  /** Soft delete, undelete and destroy. */
  readonly capabilities = CAPABILITIES;
  readonly #inner: ConfigDriver;
  readonly #keys: SealKeys;

  private constructor(backend: string, inner: ConfigDriver, keys: SealKeys) {
    this.backend = backend;
    this.#inner = inner;
    this.#keys = keys;
  }

  /**
   * Opens sealed secrets over `inner`, creating the header on first use. The driver owns `inner` and
   * closes it. `kdfCost` is the scrypt cost of a new header (an existing one keeps its own); lower it only
   * in tests.
   *
   * @throws StowageError PERMISSION_DENIED when the master key does not open the store (nothing else is said).
   */
  static async open(
    backend: string,
    inner: ConfigDriver,
    masterKey: Uint8Array,
    signal: AbortSignal,
    kdfCost: { readonly N: number; readonly r: number; readonly p: number } = DEFAULT_KDF_COST,
  ): Promise<SealedSecretsDriver> {
    try {
      const keys = await openHeader(inner, masterKey, backend, signal, kdfCost);
      return new SealedSecretsDriver(backend, inner, keys);
    } catch (err) {
      await inner.close().catch(() => undefined);
      throw mapInner(inner, err, 'open');
    }
  }

  /** Reads and decrypts a version. */
  async get(name: string, version: number | undefined, signal: AbortSignal): Promise<SecretRecord | undefined> {
    const { meta } = await this.#meta(name, signal);
    if (meta === undefined) return undefined;
    const number = version ?? meta.versions.length;
    const entry = meta.versions[number - 1];
    if (entry === undefined || entry.deleted || entry.id === null) return undefined;
    const stored = await this.#call('get', () => this.#inner.get(dataKey(name, entry.id as string), signal));
    if (stored === undefined) {
      // A destroy may have run between the two reads; only a value still referenced is missing for real.
      const again = (await this.#meta(name, signal)).meta?.versions[number - 1];
      if (again?.id !== entry.id || again.deleted) return undefined;
      throw this.#damaged(dataKey(name, entry.id), 'the sealed value is missing');
    }
    const sealed = typeof stored.value === 'object' && stored.value !== null ? (stored.value as { s?: unknown }).s : undefined;
    const plain = typeof sealed === 'string' ? unseal(this.#keys, Buffer.from(sealed, 'base64'), aadOf(name, entry.id)) : undefined;
    if (plain === undefined) throw this.#damaged(dataKey(name, entry.id), 'the sealed value fails authentication');
    return { version: number, value: new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength), createdAt: new Date(entry.at) };
  }

  /** Seals the value under a new id, then appends a version to the metadata by compare-and-set. */
  async put(name: string, value: Uint8Array, ifVersion: number | undefined, signal: AbortSignal): Promise<SecretWriteResult> {
    const id = randomUUID();
    const sealed = seal(this.#keys, value, aadOf(name, id)).toString('base64');
    let written = false;
    for (;;) {
      signal.throwIfAborted();
      const { meta, revision } = await this.#meta(name, signal);
      const versions = meta?.versions ?? [];
      if (ifVersion !== undefined && ifVersion !== versions.length) {
        if (written) await this.#deleteQuietly(dataKey(name, id), signal);
        throw new StowageError('CONFLICT', `secret ${JSON.stringify(name)}: expected version ${ifVersion}, latest is ${versions.length}`, {
          details: { name, expected: ifVersion, current: versions.length },
        });
      }
      if (!written) {
        await this.#call('put', () => this.#inner.put(dataKey(name, id), { s: sealed }, { ifRevision: 0 }, signal));
        written = true;
      }
      const next: Meta = { versions: [...versions, { at: new Date().toISOString(), deleted: false, id }] };
      if (await this.#casMeta(name, next, revision, signal)) return { version: next.versions.length };
    }
  }

  /** Marks versions (the latest by default) deleted. */
  async delete(name: string, versions: readonly number[] | undefined, signal: AbortSignal): Promise<void> {
    await this.#updateMeta(name, signal, (meta) => {
      for (const v of versions ?? [meta.versions.length]) {
        const e = meta.versions[v - 1];
        if (e !== undefined && e.id !== null) e.deleted = true;
      }
    });
  }

  /** Clears the deleted mark of versions not destroyed. */
  async undelete(name: string, versions: readonly number[], signal: AbortSignal): Promise<void> {
    await this.#updateMeta(name, signal, (meta) => {
      for (const v of versions) {
        const e = meta.versions[v - 1];
        if (e !== undefined) e.deleted = false;
      }
    });
  }

  /** Unlinks versions (or the whole secret) from the metadata, then deletes their sealed values. */
  async destroy(name: string, versions: readonly number[] | undefined, signal: AbortSignal): Promise<void> {
    if (versions === undefined) {
      for (;;) {
        signal.throwIfAborted();
        const { meta, revision } = await this.#meta(name, signal);
        if (meta === undefined) return;
        const res = await this.#call('destroy', () => this.#inner.delete(metaKey(name), { ifRevision: revision }, signal)).catch((err: unknown) => {
          if (StowageError.is(err, 'CONFLICT')) return undefined;
          throw err;
        });
        if (res === undefined) continue;
        await this.#deleteData(name, meta.versions.map((e) => e.id), signal);
        return;
      }
    }
    const removed: (string | null)[] = [];
    await this.#updateMeta(name, signal, (meta) => {
      removed.length = 0;
      for (const v of versions) {
        const e = meta.versions[v - 1];
        if (e === undefined) continue;
        removed.push(e.id);
        e.id = null;
        e.deleted = false;
      }
    });
    await this.#deleteData(name, removed, signal);
  }

  /** Names under `prefix` with a version not destroyed. */
  async list(prefix: string, signal: AbortSignal): Promise<string[]> {
    const snapshot = await this.#call('list', () => this.#inner.list(metaKey(prefix), undefined, signal));
    return snapshot.entries
      .filter((e) => this.#parseMeta(e.value, e.key).versions.some((v) => v.id !== null))
      .map((e) => e.key.slice(2))
      .sort();
  }

  /** Version metadata, oldest first. */
  async versions(name: string, signal: AbortSignal): Promise<SecretVersionInfo[] | undefined> {
    const { meta } = await this.#meta(name, signal);
    return meta?.versions.map((e, i) => ({ version: i + 1, createdAt: new Date(e.at), deleted: e.deleted, destroyed: e.id === null }));
  }

  /** A round-trip to the config backend. */
  ping(signal: AbortSignal): Promise<PingResult> {
    return this.#call('ping', () => this.#inner.ping(signal));
  }

  /** Closes the config driver. */
  close(): Promise<void> {
    return this.#call('close', () => this.#inner.close());
  }

  /** The config driver underneath. */
  native(): ConfigDriver {
    return this.#inner;
  }

  #damaged(key: string, why: string): StowageError {
    return new StowageError('CORRUPTED', `${this.backend}: stored key ${JSON.stringify(key)} is damaged: ${why}`, { details: { key } });
  }

  #parseMeta(value: JsonValue, key: string): Meta {
    const versions = (value as { versions?: unknown } | null)?.versions;
    const ok =
      Array.isArray(versions) &&
      versions.every(
        (e: { at?: unknown; deleted?: unknown; id?: unknown } | null) =>
          typeof e === 'object' && e !== null && typeof e.at === 'string' && typeof e.deleted === 'boolean' && (e.id === null || typeof e.id === 'string'),
      );
    if (!ok) throw this.#damaged(key, 'the metadata is malformed');
    return structuredClone(value as unknown as Meta);
  }

  async #meta(name: string, signal: AbortSignal): Promise<MetaState> {
    const entry: ConfigEntry | undefined = await this.#call('get', () => this.#inner.get(metaKey(name), signal));
    if (entry === undefined) return { meta: undefined, revision: 0 };
    return { meta: this.#parseMeta(entry.value, entry.key), revision: entry.revision };
  }

  /** Writes metadata if its revision is still `revision`; false when another writer got there first. */
  async #casMeta(name: string, meta: Meta, revision: number, signal: AbortSignal): Promise<boolean> {
    try {
      await this.#call('put', () => this.#inner.put(metaKey(name), meta as unknown as JsonValue, { ifRevision: revision }, signal));
      return true;
    } catch (err) {
      if (StowageError.is(err, 'CONFLICT')) return false;
      throw err;
    }
  }

  /** Read-modify-write of existing metadata, retried until the compare-and-set holds. */
  async #updateMeta(name: string, signal: AbortSignal, change: (meta: Meta) => void): Promise<void> {
    for (;;) {
      const { meta, revision } = await this.#meta(name, signal);
      if (meta === undefined) throw notFound(name);
      change(meta);
      if (await this.#casMeta(name, meta, revision, signal)) return;
      signal.throwIfAborted();
    }
  }

  async #deleteData(name: string, ids: readonly (string | null)[], signal: AbortSignal): Promise<void> {
    for (const id of ids) if (id !== null) await this.#call('destroy', () => this.#inner.delete(dataKey(name, id), {}, signal));
  }

  async #deleteQuietly(key: string, signal: AbortSignal): Promise<void> {
    await this.#inner.delete(key, {}, signal).catch(() => undefined);
  }

  /** Runs an inner call, mapping its raw errors through the inner driver's own mapping. */
  async #call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapInner(this.#inner, err, operation);
    }
  }
}

function mapInner(inner: ConfigDriver, err: unknown, operation: string): StowageError {
  return toStowageError(err, { operation, backend: inner.backend, mapError: inner.mapError?.bind(inner) });
}

async function openHeader(
  inner: ConfigDriver,
  masterKey: Uint8Array,
  backend: string,
  signal: AbortSignal,
  kdfCost: { readonly N: number; readonly r: number; readonly p: number },
): Promise<SealKeys> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = await inner.get(HEADER_KEY, signal);
    if (existing !== undefined) {
      const h = existing.value as { format?: unknown; version?: unknown; kdf?: unknown; check?: unknown } | null;
      if (typeof h !== 'object' || h === null || h.format !== FORMAT || typeof h.check !== 'string') {
        throw new StowageError('CORRUPTED', `${backend}: stored key "h" is not a sealed-secrets header`);
      }
      if (h.version !== FORMAT_VERSION) {
        throw new StowageError('UNSUPPORTED', `${backend}: sealed-secrets format version ${String(h.version)} is not ${FORMAT_VERSION}`);
      }
      const keys = await deriveKeys(masterKey, checkKdfParams(h.kdf, `${backend} header`));
      if (!verifyKeyCheck(keys, h.check)) throw new StowageError('PERMISSION_DENIED', `${backend}: the master key does not open these sealed secrets`);
      return keys;
    }
    const kdf: KdfParams = newKdfParams(kdfCost);
    const keys = await deriveKeys(masterKey, kdf);
    const header = { format: FORMAT, version: FORMAT_VERSION, kdf: { ...kdf }, check: makeKeyCheck(keys) };
    try {
      await inner.put(HEADER_KEY, header, { ifRevision: 0 }, signal);
      return keys;
    } catch (err) {
      // Another node created the header first: use theirs.
      if (!StowageError.is(err, 'CONFLICT')) throw err;
    }
  }
  throw new StowageError('UNAVAILABLE', `${backend}: could not read or create the sealed-secrets header`);
}
