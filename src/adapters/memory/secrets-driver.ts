/**
 * `mem://` secrets: versioned secrets in process memory, for tests and throwaway use.
 *
 * @module
 */
import type { SchemeDefinition } from '../../driver/index.js';
import type { PingResult } from '../../ports/common.js';
import { StowageError } from '../../ports/errors.js';
import type { SecretRecord, SecretVersionInfo, SecretsCapability, SecretsDriver, SecretWriteResult } from '../../ports/secrets.js';
import { secretVersionConflict as conflict } from '../../driver/errors.js';

interface StoredVersion {
  value: Uint8Array | undefined;
  readonly createdAt: Date;
  deleted: boolean;
}

const CAPABILITIES: ReadonlySet<SecretsCapability> = new Set(['softDelete', 'undelete', 'destroy']);

function unknown(name: string): StowageError {
  return new StowageError('NOT_FOUND', `secret ${JSON.stringify(name)} does not exist`, { details: { name } });
}

/**
 * Secrets held in a `Map`. Versions behave as in Vault's KV v2: numbers keep growing across soft deletes
 * and version destroys; destroying the whole secret forgets it, so the next write is version 1 again.
 */
export class MemorySecretsDriver implements SecretsDriver {
  /** Always `mem`. */
  readonly backend = 'mem';
  /** Soft delete, undelete and destroy. */
  readonly capabilities = CAPABILITIES;
  readonly #secrets = new Map<string, StoredVersion[]>();

  /** Reads a version; undefined when absent, soft-deleted or destroyed. */
  async get(name: string, version: number | undefined): Promise<SecretRecord | undefined> {
    const versions = this.#secrets.get(name);
    if (versions === undefined) return undefined;
    const number = version ?? versions.length;
    const stored = versions[number - 1];
    if (stored === undefined || stored.deleted || stored.value === undefined) return undefined;
    return { version: number, value: Uint8Array.from(stored.value), createdAt: stored.createdAt };
  }

  /** Appends a version, after checking `ifVersion` against the latest version number. */
  async put(name: string, value: Uint8Array, ifVersion: number | undefined): Promise<SecretWriteResult> {
    const versions = this.#secrets.get(name) ?? [];
    if (ifVersion !== undefined && ifVersion !== versions.length) throw conflict(name, ifVersion, versions.length);
    versions.push({ value: Uint8Array.from(value), createdAt: new Date(), deleted: false });
    this.#secrets.set(name, versions);
    return { version: versions.length };
  }

  /** Marks versions (the latest by default) deleted. */
  async delete(name: string, versions: readonly number[] | undefined): Promise<void> {
    const stored = this.#existing(name);
    for (const v of versions ?? [stored.length]) {
      const s = stored[v - 1];
      if (s !== undefined) s.deleted = true;
    }
  }

  /** Clears the deleted mark of versions that are not destroyed. */
  async undelete(name: string, versions: readonly number[]): Promise<void> {
    const stored = this.#existing(name);
    for (const v of versions) {
      const s = stored[v - 1];
      if (s !== undefined && s.value !== undefined) s.deleted = false;
    }
  }

  /** Drops the values of versions, or forgets the secret. */
  async destroy(name: string, versions: readonly number[] | undefined): Promise<void> {
    if (versions === undefined) {
      this.#secrets.delete(name);
      return;
    }
    const stored = this.#existing(name);
    for (const v of versions) {
      const s = stored[v - 1];
      if (s !== undefined) s.value = undefined;
    }
  }

  /** Names under `prefix` with at least one version not destroyed. */
  async list(prefix: string): Promise<string[]> {
    return [...this.#secrets]
      .filter(([name, versions]) => name.startsWith(prefix) && versions.some((v) => v.value !== undefined))
      .map(([name]) => name)
      .sort();
  }

  /** Every version's metadata, oldest first. */
  async versions(name: string): Promise<SecretVersionInfo[] | undefined> {
    return this.#secrets.get(name)?.map((s, i) => ({
      version: i + 1,
      createdAt: s.createdAt,
      deleted: s.deleted && s.value !== undefined,
      destroyed: s.value === undefined,
    }));
  }

  /** Always succeeds: memory is always there. */
  async ping(): Promise<PingResult> {
    return {};
  }

  /** Forgets every secret. */
  async close(): Promise<void> {
    this.#secrets.clear();
  }

  #existing(name: string): StoredVersion[] {
    const stored = this.#secrets.get(name);
    if (stored === undefined) throw unknown(name);
    return stored;
  }
}

/**
 * The `mem://` scheme of the secrets port. Every open gives a new, empty store.
 *
 * @example
 * ```ts
 * registry.register(memSecretsScheme);
 * const secrets = createSecretStore(await registry.open('secrets', 'mem://', ctx));
 * ```
 */
export const memSecretsScheme: SchemeDefinition<'secrets'> = {
  port: 'secrets',
  scheme: 'mem',
  params: [],
  open: async () => new MemorySecretsDriver(),
};
