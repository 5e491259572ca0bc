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
 * - `d/<name>/<id>` — one sealed value per write, `{ s, t }`: the ciphertext (base64) under a fresh random id
 *   with `name NUL id` as associated data, and when it was written (`t`, milliseconds since the epoch; values
 *   written before `t` existed have none). The value is written before the metadata that points to it; a
 *   writer that loses the race for `ifVersion` deletes its value again.
 *
 * Orphans. A crash or a lost connection between a value's write and its version's leaves a value that no
 * version points to. With no multi-key transaction such an orphan looks just like the value of a writer
 * still in flight, so only its age tells them apart (`t`, against a grace of one hour by default):
 * - Sweep. After a successful put of a name (at most once per quarter grace per name in a process: the list
 *   costs an etcd put about 40 %, and an orphan is worth deleting only a grace after its write anyway), and
 *   after a whole destroy (also of a name without metadata), one list of `d/<name>/` finds the name's values; each one that the metadata just written (or
 *   deleted) does not point to and whose `t` is more than the grace before that metadata was read is
 *   deleted, by compare-and-set on the value's revision. Best effort: a failure leaves it for the next sweep
 *   and never fails the call.
 * - Writer. After each metadata read, a writer publishes its value only if it is at most half the grace
 *   old; an older one is deleted and a fresh one written. A version missing from the metadata a sweep
 *   wrote is published by a compare-and-set on a later revision, so after a later read and check: its value
 *   is younger than the grace. The one exception is a create-only compare-and-set, which succeeds again
 *   once a destroy has removed the metadata: a writer that stalled past half the grace before it (a paused
 *   process) may find its value swept. So a writer whose compare-and-set returns more than half the grace
 *   after its value's write writes the value again (a new revision, which also fails a sweep's pending
 *   delete) before it acknowledges.
 * - Older records. An unreferenced value without `t` (written by an older release, maybe by a node of a
 *   rolling upgrade still in flight) is not deleted but stamped with the sweep's time, so it goes one
 *   grace later.
 *
 * This holds while the clocks of the nodes sharing the store differ by far less than half the grace. A name
 * never written or destroyed again keeps its orphans. Not covered: a put that found no metadata and failed
 * (outcome unknown, e.g. TIMEOUT) whose metadata write the backend applies more than half the grace later,
 * after a whole destroy swept its value, leaves a version without a value.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { ConfigDriver, ConfigEntry } from '../../ports/config.js';
import type { JsonValue, PingResult } from '../../ports/common.js';
import { StowageError } from '../../ports/errors.js';
import type { SecretRecord, SecretVersionInfo, SecretsCapability, SecretsDriver, SecretWriteResult } from '../../ports/secrets.js';
import { toStowageError } from '../../driver/errors.js';
import { validatePositiveInt } from '../../driver/validate.js';
import { DEFAULT_KDF_COST, checkKdfParams, deriveKeys, makeKeyCheck, newKdfParams, seal, unseal, verifyKeyCheck, type KdfParams, type SealKeys } from '../../driver/seal.js';
import { secretVersionConflict, type ErrorReason } from '../../driver/errors.js';

const FORMAT = 'stowage-sealed';
const FORMAT_VERSION = 1;
const HEADER_KEY = 'h';
const CAPABILITIES: ReadonlySet<SecretsCapability> = new Set(['softDelete', 'undelete', 'destroy']);

/**
 * How long a sealed value that no version points to is kept before a sweep deletes it, by default: one
 * hour, far longer than any write takes, and far more than the clock difference between nodes.
 */
export const DEFAULT_ORPHAN_GRACE_MS = 60 * 60 * 1000;

/** Options of {@link SealedSecretsDriver.open} beyond the KDF cost. */
export interface SealedSecretsOptions {
  /**
   * How long a sealed value that no version points to (left by a crash between its write and its
   * version's) is kept before the next put or destroy of its name deletes it, in milliseconds. Writers
   * never publish a value older than half of it, so it must exceed twice the clock difference between
   * the nodes sharing the store.
   *
   * @default 3600000
   */
  readonly orphanGraceMs?: number;
  /**
   * The clock, in milliseconds since the epoch: what values are stamped with and sweeps compare to.
   *
   * @default Date.now
   */
  readonly now?: () => number;
}

interface Meta {
  versions: { at: string; deleted: boolean; id: string | null }[];
}

interface MetaState {
  readonly meta: Meta | undefined;
  /** The metadata key's revision, 0 when absent: the `ifRevision` of the next compare-and-set. */
  readonly revision: number;
}

/** A value this writer sealed and stored: what it needs to publish it, or to write it again. */
interface Written {
  readonly id: string;
  readonly sealed: string;
  /** When it was written, by this driver's clock. */
  readonly t: number;
}

/** How many names {@link SealedSecretsDriver} remembers the last sweep of. */
const SWEPT_NAMES_MAX = 10_000;

const metaKey = (name: string): string => `m/${name}`;
const dataPrefix = (name: string): string => `d/${name}/`;
const dataKey = (name: string, id: string): string => `${dataPrefix(name)}${id}`;
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
  readonly #graceMs: number;
  readonly #now: () => number;
  /** When a put last swept each name (this process): a put sweeps a name at most once per quarter grace. */
  readonly #sweptAt = new Map<string, number>();

  private constructor(backend: string, inner: ConfigDriver, keys: SealKeys, graceMs: number, now: () => number) {
    this.backend = backend;
    this.#inner = inner;
    this.#keys = keys;
    this.#graceMs = graceMs;
    this.#now = now;
  }

  /**
   * Opens sealed secrets over `inner`, creating the header on first use. The driver owns `inner` and
   * closes it. `kdfCost` is the scrypt cost of a new header (an existing one keeps its own); lower it only
   * in tests. `options` sets the grace of unreferenced values and the clock (see {@link SealedSecretsOptions}).
   *
   * @throws StowageError PERMISSION_DENIED when the master key does not open the store (nothing else is said),
   * INVALID_ARGUMENT for a bad option.
   */
  static async open(
    backend: string,
    inner: ConfigDriver,
    masterKey: Uint8Array,
    signal: AbortSignal,
    kdfCost: { readonly N: number; readonly r: number; readonly p: number } = DEFAULT_KDF_COST,
    options: SealedSecretsOptions = {},
  ): Promise<SealedSecretsDriver> {
    try {
      const graceMs = validatePositiveInt(options.orphanGraceMs ?? DEFAULT_ORPHAN_GRACE_MS, 'orphanGraceMs', { min: 2 });
      const now = options.now ?? Date.now;
      if (typeof now !== 'function') throw new StowageError('INVALID_ARGUMENT', `now must be a function, got ${typeof now}`);
      const keys = await openHeader(inner, masterKey, backend, signal, kdfCost);
      return new SealedSecretsDriver(backend, inner, keys, graceMs, now);
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

  /**
   * Seals the value under a new id, then appends a version to the metadata by compare-and-set; then sweeps
   * the name's unreferenced values past the grace.
   */
  async put(name: string, value: Uint8Array, ifVersion: number | undefined, signal: AbortSignal): Promise<SecretWriteResult> {
    let written: Written | undefined;
    for (;;) {
      signal.throwIfAborted();
      const readAt = this.#now();
      const { meta, revision } = await this.#meta(name, signal);
      const versions = meta?.versions ?? [];
      if (ifVersion !== undefined && ifVersion !== versions.length) {
        if (written !== undefined) await this.#deleteQuietly(dataKey(name, written.id), signal);
        throw secretVersionConflict(name, ifVersion, versions.length);
      }
      const current = await this.#fresh(name, value, written, signal);
      written = current;
      const next: Meta = { versions: [...versions, { at: new Date().toISOString(), deleted: false, id: current.id }] };
      if (!(await this.#casMeta(name, next, revision, signal))) continue;
      if (this.#tooOld(current)) {
        // The compare-and-set returned late (a paused process): a sweep may have taken the value for an
        // orphan meanwhile. Writing it again, fresh, also fails a sweep's pending compare-and-set delete.
        const again = { s: current.sealed, t: this.#now() };
        await this.#call('put', () => this.#inner.put(dataKey(name, current.id), again, {}, signal));
      }
      if (this.#sweepDue(name)) await this.#sweep(name, readAt, new Set(next.versions.map((e) => e.id)), signal);
      return { version: next.versions.length };
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

  /**
   * Unlinks versions (or the whole secret) from the metadata, then deletes their sealed values; a whole
   * destroy also sweeps the name's unreferenced values past the grace, even when it has no metadata.
   */
  async destroy(name: string, versions: readonly number[] | undefined, signal: AbortSignal): Promise<void> {
    if (versions === undefined) {
      for (;;) {
        signal.throwIfAborted();
        const readAt = this.#now();
        const { meta, revision } = await this.#meta(name, signal);
        if (meta === undefined) return this.#sweep(name, readAt, new Set(), signal);
        const res = await this.#call('destroy', () => this.#inner.delete(metaKey(name), { ifRevision: revision }, signal)).catch((err: unknown) => {
          if (StowageError.is(err, 'CONFLICT')) return undefined;
          throw err;
        });
        if (res === undefined) continue;
        await this.#deleteData(name, meta.versions.map((e) => e.id), signal);
        return this.#sweep(name, readAt, new Set(), signal);
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

  /** Whether a value is too old to publish: a sweep may delete it once it is a grace old. */
  #tooOld(written: Written): boolean {
    return this.#now() - written.t > this.#graceMs / 2;
  }

  /** `written` if it is young enough to publish, else (or when there is none yet) a fresh sealed value in its place. */
  async #fresh(name: string, value: Uint8Array, written: Written | undefined, signal: AbortSignal): Promise<Written> {
    let current = written;
    while (current === undefined || this.#tooOld(current)) {
      signal.throwIfAborted();
      if (current !== undefined) await this.#deleteQuietly(dataKey(name, current.id), signal);
      const id = randomUUID();
      const sealed = seal(this.#keys, value, aadOf(name, id)).toString('base64');
      const t = this.#now();
      await this.#call('put', () => this.#inner.put(dataKey(name, id), { s: sealed, t }, { ifRevision: 0 }, signal));
      current = { id, sealed, t };
    }
    return current;
  }

  /**
   * Deletes the values of `name` that no version in `referenced` points to and that were written more than
   * the grace before `readAt`, a time taken before the metadata that `referenced` comes from was read (not
   * the time of the delete: a version published after that read has a value younger than the grace then,
   * however late this sweep gets to it). Unreferenced values without a time are stamped instead.
   */
  async #sweep(name: string, readAt: number, referenced: ReadonlySet<string | null>, signal: AbortSignal): Promise<void> {
    const prefix = dataPrefix(name);
    const listed = await this.#inner.list(prefix, undefined, signal).catch(() => undefined);
    for (const entry of listed?.entries ?? []) {
      const id = entry.key.slice(prefix.length);
      // A key with a further `/` is a value of a name below this one (`a/b` under `a`), not ours to judge.
      if (id.includes('/') || referenced.has(id)) continue;
      if (signal.aborted) return;
      const record = entry.value;
      if (typeof record !== 'object' || record === null || Array.isArray(record)) continue;
      const t = record.t;
      if (typeof t !== 'number') {
        await this.#inner.put(entry.key, { ...record, t: this.#now() }, { ifRevision: entry.revision }, signal).catch(() => undefined);
      } else if (readAt - t > this.#graceMs) {
        await this.#inner.delete(entry.key, { ifRevision: entry.revision }, signal).catch(() => undefined);
      }
    }
  }

  /**
   * Whether a put of `name` sweeps now: not if this process swept it less than a quarter grace ago. A value
   * becomes an orphan worth deleting only a grace after its write, so a sweep per quarter grace still removes
   * it within 1.25 graces of a put, and a name written often pays for the list once per quarter grace, not
   * on every put (which measured +40 % on an etcd put).
   */
  #sweepDue(name: string): boolean {
    const now = this.#now();
    const last = this.#sweptAt.get(name);
    if (last !== undefined && now - last < this.#graceMs / 4) return false;
    // Bounded: forgetting only makes a put sweep again.
    if (this.#sweptAt.size >= SWEPT_NAMES_MAX) this.#sweptAt.clear();
    this.#sweptAt.set(name, now);
    return true;
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
      if (!verifyKeyCheck(keys, h.check)) {
        throw new StowageError('PERMISSION_DENIED', `${backend}: the master key does not open these sealed secrets`, { details: { reason: 'wrong-master-key' satisfies ErrorReason } });
      }
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
