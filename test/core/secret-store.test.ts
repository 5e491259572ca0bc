import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { StowageError } from '../../src/ports/errors.js';
import { SecretValue, type SecretRecord, type SecretVersionInfo, type SecretsCapability, type SecretsDriver } from '../../src/ports/secrets.js';
import { rejectsWith } from '../../src/testing/harness.js';

const CANARY = 'canary-Zq7wX3-value';

/** A minimal driver that records what core hands it; behaviour is overridable per test. */
class FakeDriver implements SecretsDriver {
  readonly backend = 'fake';
  readonly capabilities: ReadonlySet<SecretsCapability>;
  readonly calls: string[] = [];
  readonly data = new Map<string, Uint8Array[]>();
  closeCount = 0;

  constructor(capabilities: SecretsCapability[] = ['softDelete', 'undelete', 'destroy']) {
    this.capabilities = new Set(capabilities);
  }

  async get(name: string, version: number | undefined): Promise<SecretRecord | undefined> {
    this.calls.push(`get ${name} ${version}`);
    const all = this.data.get(name);
    if (!all) return undefined;
    const v = version ?? all.length;
    const value = all[v - 1];
    return value && { version: v, value, createdAt: new Date(0) };
  }

  async put(name: string, value: Uint8Array, ifVersion: number | undefined): Promise<{ version: number }> {
    this.calls.push(`put ${name} ${ifVersion}`);
    const all = this.data.get(name) ?? [];
    if (ifVersion !== undefined && ifVersion !== all.length) throw new StowageError('CONFLICT', `version is ${all.length}`);
    all.push(value);
    this.data.set(name, all);
    return { version: all.length };
  }

  async delete(name: string, versions: readonly number[] | undefined): Promise<void> {
    this.calls.push(`delete ${name} ${versions?.join(',')}`);
  }

  async undelete(name: string, versions: readonly number[]): Promise<void> {
    this.calls.push(`undelete ${name} ${versions.join(',')}`);
  }

  async destroy(name: string, versions: readonly number[] | undefined): Promise<void> {
    this.calls.push(`destroy ${name} ${versions?.join(',')}`);
  }

  async list(prefix: string): Promise<string[]> {
    return [...this.data.keys()].filter((k) => k.startsWith(prefix)).sort();
  }

  async versions(name: string): Promise<SecretVersionInfo[] | undefined> {
    return this.data.get(name)?.map((_, i) => ({ version: i + 1, createdAt: new Date(0), deleted: false, destroyed: false }));
  }

  async ping(): Promise<{ serverVersion?: string }> {
    return {};
  }

  async close(): Promise<void> {
    this.closeCount++;
  }
}

/** A driver method that never settles. */
const hang = (): Promise<never> => new Promise<never>(() => undefined);

describe('createSecretStore', () => {
  it('wraps stored bytes in a SecretValue that prints as [redacted]', async () => {
    const store = createSecretStore(new FakeDriver());
    await store.put('db/password', CANARY);
    const secret = await store.get('db/password');
    expect(secret.value.reveal()).toBe(CANARY);
    expect(inspect(secret)).not.toContain(CANARY);
    expect(JSON.stringify(secret)).not.toContain(CANARY);
  });

  it('accepts Uint8Array and SecretValue values and hands the driver bytes', async () => {
    const driver = new FakeDriver();
    const store = createSecretStore(driver);
    await store.put('a', new Uint8Array([0, 1, 255]));
    await store.put('a', new SecretValue('xyz'));
    expect([...(driver.data.get('a')?.[0] ?? [])]).toEqual([0, 1, 255]);
    expect(new TextDecoder().decode(driver.data.get('a')?.[1])).toBe('xyz');
  });

  it.each([[''], ['a\u0000b'], ['a/../b'], ['..'], ['a\ud800'], ['/a'], [42]])('refuses the name %j with INVALID_ARGUMENT before reaching the driver', async (name) => {
    const driver = new FakeDriver();
    const store = createSecretStore(driver);
    await rejectsWith(store.put(name as string, 'v'), 'INVALID_ARGUMENT');
    await rejectsWith(store.get(name as string), 'INVALID_ARGUMENT');
    await rejectsWith(store.versions(name as string), 'INVALID_ARGUMENT');
    expect(driver.calls).toEqual([]);
  });

  it.each([[null], [42], [{ v: 1 }], ['bad \ud800 surrogate']])('refuses the value %j with INVALID_ARGUMENT', async (value) => {
    const driver = new FakeDriver();
    const store = createSecretStore(driver);
    await rejectsWith(store.put('a', value as string), 'INVALID_ARGUMENT');
    expect(driver.calls).toEqual([]);
  });

  it('refuses a value over 64 KiB by default with RESOURCE_EXHAUSTED and writes nothing', async () => {
    const driver = new FakeDriver();
    const store = createSecretStore(driver);
    expect(store.maxValueBytes).toBe(64 * 1024);
    await store.put('a', 'x'.repeat(64 * 1024));
    await rejectsWith(store.put('a', 'x'.repeat(64 * 1024 + 1)), 'RESOURCE_EXHAUSTED');
    expect(driver.data.get('a')).toHaveLength(1);
  });

  it('honours a configured maxValueBytes', async () => {
    const store = createSecretStore(new FakeDriver(), { maxValueBytes: 8 });
    await rejectsWith(store.put('a', new Uint8Array(9)), 'RESOURCE_EXHAUSTED');
  });

  it.each([[0], [-1], [1.5], [Number.NaN], ['1']])('refuses version %j with INVALID_ARGUMENT', async (version) => {
    const store = createSecretStore(new FakeDriver());
    await rejectsWith(store.get('a', { version: version as number }), 'INVALID_ARGUMENT');
    await rejectsWith(store.delete('a', { versions: [version as number] }), 'INVALID_ARGUMENT');
    await rejectsWith(store.destroy('a', { versions: [version as number] }), 'INVALID_ARGUMENT');
    await rejectsWith(store.undelete('a', { versions: [version as number] }), 'INVALID_ARGUMENT');
  });

  it('refuses a negative or fractional ifVersion, and accepts 0 as create-only', async () => {
    const driver = new FakeDriver();
    const store = createSecretStore(driver);
    await rejectsWith(store.put('a', 'v', { ifVersion: -1 }), 'INVALID_ARGUMENT');
    await rejectsWith(store.put('a', 'v', { ifVersion: 0.5 }), 'INVALID_ARGUMENT');
    expect(await store.put('a', 'v', { ifVersion: 0 })).toEqual({ version: 1 });
  });

  it('refuses an empty version list for undelete', async () => {
    const store = createSecretStore(new FakeDriver());
    await rejectsWith(store.undelete('a', { versions: [] }), 'INVALID_ARGUMENT');
  });

  it('gives NOT_FOUND naming the secret and the version when the driver has none', async () => {
    const store = createSecretStore(new FakeDriver());
    const latest = await rejectsWith(store.get('app/key'), 'NOT_FOUND');
    expect(latest.message).toContain('"app/key"');
    const given = await rejectsWith(store.get('app/key', { version: 7 }), 'NOT_FOUND');
    expect(given.message).toContain('version 7');
    await rejectsWith(store.versions('app/key'), 'NOT_FOUND');
  });

  it('gives UNSUPPORTED for delete, undelete and destroy when the driver lacks the capability', async () => {
    const driver = new FakeDriver([]);
    const store = createSecretStore(driver);
    await rejectsWith(store.delete('a'), 'UNSUPPORTED');
    await rejectsWith(store.undelete('a', { versions: [1] }), 'UNSUPPORTED');
    await rejectsWith(store.destroy('a'), 'UNSUPPORTED');
    expect(driver.calls).toEqual([]);
  });

  it('passes sorted, de-duplicated version lists to the driver', async () => {
    const driver = new FakeDriver();
    const store = createSecretStore(driver);
    await store.destroy('a', { versions: [3, 1, 3] });
    expect(driver.calls).toEqual(['destroy a 1,3']);
  });

  it('rejects every call with CLOSED after close, and closes the driver once', async () => {
    const driver = new FakeDriver();
    const store = createSecretStore(driver);
    await store.close();
    await store.close();
    expect(store.closed).toBe(true);
    expect(driver.closeCount).toBe(1);
    await rejectsWith(store.get('a'), 'CLOSED');
    await rejectsWith(store.put('a', 'v'), 'CLOSED');
    await rejectsWith(store.delete('a'), 'CLOSED');
    await rejectsWith(store.list(), 'CLOSED');
    await rejectsWith(store.versions('a'), 'CLOSED');
  });

  it('rejects with TIMEOUT when the driver never answers', async () => {
    const driver = new FakeDriver();
    driver.get = hang;
    driver.put = hang;
    const store = createSecretStore(driver);
    await rejectsWith(store.get('a', { timeoutMs: 20 }), 'TIMEOUT');
    await rejectsWith(store.put('a', CANARY, { timeoutMs: 20 }), 'TIMEOUT');
  });

  it('rejects with CANCELLED for an already-aborted signal without calling the driver', async () => {
    const driver = new FakeDriver();
    const store = createSecretStore(driver);
    await rejectsWith(store.put('a', 'v', { signal: AbortSignal.abort() }), 'CANCELLED');
    expect(driver.calls).toEqual([]);
  });

  it('removes the value from a driver error that echoes it, in message, stack and cause', async () => {
    const driver = new FakeDriver();
    driver.put = async (_name, value) => {
      const raw = Object.assign(new Error(`write failed for payload ${new TextDecoder().decode(value)}`), {
        options: { headers: { 'X-Vault-Token': 'hvs.tokentoken' }, body: new TextDecoder().decode(value) },
      });
      throw raw;
    };
    const store = createSecretStore(driver);
    const err = await rejectsWith(store.put('a', CANARY), 'INTERNAL');
    expect(inspect(err, { depth: 10 })).not.toContain(CANARY);
    expect(inspect(err, { depth: 10 })).not.toContain('hvs.tokentoken');
    expect(String(err.stack)).not.toContain(CANARY);
  });

  it('removes the value from a StowageError thrown by the driver, including its details and cause', async () => {
    const driver = new FakeDriver();
    driver.put = async (_name, value) => {
      const text = new TextDecoder().decode(value);
      throw new StowageError('CONFLICT', `conflict writing ${text}`, {
        details: { attempted: text },
        cause: Object.assign(new Error(`raw ${text}`), { request: { body: text } }),
      });
    };
    const store = createSecretStore(driver);
    const err = await rejectsWith(store.put('a', CANARY), 'CONFLICT');
    expect(inspect(err, { depth: 10 })).not.toContain(CANARY);
    expect(JSON.stringify(err.details)).not.toContain(CANARY);
    expect(err.message).toContain('[redacted]');
  });

  it('keeps no raw driver error object as cause, even when no value is in scope', async () => {
    const driver = new FakeDriver();
    driver.list = async () => {
      throw Object.assign(new Error('boom'), { config: { headers: { authorization: 'Bearer abc.def' } } });
    };
    const store = createSecretStore(driver);
    const err = await rejectsWith(store.list(), 'INTERNAL');
    expect(inspect(err, { depth: 10 })).not.toContain('abc.def');
  });

  it('reports health failures without throwing', async () => {
    const driver = new FakeDriver();
    driver.ping = async () => {
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    };
    const report = await createSecretStore(driver).health();
    expect(report.ok).toBe(false);
    expect(report.error?.code).toBe('UNAVAILABLE');
  });
});
