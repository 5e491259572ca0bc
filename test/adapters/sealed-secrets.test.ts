import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdConfigScheme } from '../../src/adapters/etcd/config-driver.js';
import { fileConfigScheme } from '../../src/adapters/file/config-driver.js';
import { MemoryConfigDriver, memConfigScheme } from '../../src/adapters/memory/config-driver.js';
import { zookeeperConfigScheme } from '../../src/adapters/zookeeper/config-driver.js';
import {
  etcdSealedSecretsScheme,
  fileSealedSecretsScheme,
  innerConfigUrl,
  memSealedSecretsScheme,
  SealedSecretsDriver,
  zookeeperSealedSecretsScheme,
} from '../../src/adapters/sealed/index.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { parseUrl } from '../../src/driver/url.js';
import type { JsonValue } from '../../src/ports/common.js';
import type { ConfigDriver } from '../../src/ports/config.js';
import { rejectsWith } from '../../src/testing/harness.js';

const cheap = { N: 1024, r: 8, p: 1 };
const MASTER = Buffer.from('sealed-test-master-key-0123456789');
const signal = (): AbortSignal => AbortSignal.timeout(10_000);

async function open(inner: ConfigDriver, master = MASTER) {
  return createSecretStore(await SealedSecretsDriver.open('mem+sealed', inner, master, signal(), cheap));
}

/** Every value in the config store as JSON text. */
async function dump(inner: ConfigDriver): Promise<string> {
  const { entries } = await inner.list('', undefined, signal());
  return JSON.stringify(entries);
}

/** A config driver that the sealed driver cannot close, so a test can reopen over the same data. */
function keepOpen(inner: ConfigDriver): ConfigDriver {
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'close') return async () => undefined;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe('sealed secrets', () => {
  it('stores no plaintext in the config backend, raw, base64 or hex', async () => {
    const inner: ConfigDriver = new MemoryConfigDriver();
    const store = await open(keepOpen(inner));
    const canary = `canary-${randomUUID()}`;
    await store.put('app/db', canary);
    await store.put('app/db', `${canary}-2`);
    const text = await dump(inner);
    for (const form of [canary, Buffer.from(canary).toString('base64'), Buffer.from(canary).toString('hex')]) expect(text).not.toContain(form);
    await store.close();
    await inner.close();
  });

  it('reopens over the same config data with the same master key, and refuses another key with PERMISSION_DENIED', async () => {
    const inner: ConfigDriver = new MemoryConfigDriver();
    const a = await open(keepOpen(inner));
    await a.put('s', 'kept');
    await a.close();
    const b = await open(keepOpen(inner));
    expect((await b.get('s')).value.reveal()).toBe('kept');
    await b.close();
    const wrong = Buffer.from('another-master-key-9876543210');
    const err = await rejectsWith(SealedSecretsDriver.open('mem+sealed', keepOpen(inner), wrong, signal(), cheap), 'PERMISSION_DENIED');
    expect(inspect(err, { depth: 10 })).not.toContain(wrong.toString());
    expect(inspect(err, { depth: 10 })).not.toContain(MASTER.toString());
    await inner.close();
  });

  it('agrees on one header when several nodes open an empty store at once', async () => {
    const inner: ConfigDriver = new MemoryConfigDriver();
    const stores = await Promise.all(Array.from({ length: 4 }, () => open(keepOpen(inner))));
    await stores[0]?.put('s', 'from-node-0');
    for (const s of stores) expect((await s.get('s')).value.reveal()).toBe('from-node-0');
    for (const s of stores) await s.close();
    await inner.close();
  });

  it('gives CORRUPTED naming the key for a damaged sealed value', async () => {
    const inner: ConfigDriver = new MemoryConfigDriver();
    const store = await open(keepOpen(inner));
    await store.put('s', 'value');
    const { entries } = await inner.list('d/s/', undefined, signal());
    const entry = entries[0];
    expect(entry).toBeDefined();
    const sealed = Buffer.from((entry?.value as { s: string }).s, 'base64');
    sealed[20] = (sealed[20] as number) ^ 1;
    await inner.put(entry?.key as string, { s: sealed.toString('base64') }, {}, signal());
    const err = await rejectsWith(store.get('s'), 'CORRUPTED');
    expect(err.message).toContain(entry?.key as string);
    await store.close();
    await inner.close();
  });

  it('refuses a sealed value moved under another secret (the name is bound as associated data)', async () => {
    const inner: ConfigDriver = new MemoryConfigDriver();
    const store = await open(keepOpen(inner));
    await store.put('alice', 'alice-secret');
    await store.put('bob', 'bob-secret');
    const alice = (await inner.list('d/alice/', undefined, signal())).entries[0];
    const bob = (await inner.list('d/bob/', undefined, signal())).entries[0];
    await inner.put(bob?.key as string, alice?.value as JsonValue, {}, signal());
    await rejectsWith(store.get('bob'), 'CORRUPTED');
    await store.close();
    await inner.close();
  });

  it('removes the sealed values of destroyed versions from the config backend', async () => {
    const inner: ConfigDriver = new MemoryConfigDriver();
    const store = await open(keepOpen(inner));
    await store.put('s', 'a');
    await store.put('s', 'b');
    await store.destroy('s', { versions: [1] });
    expect((await inner.list('d/s/', undefined, signal())).entries).toHaveLength(1);
    await store.destroy('s');
    expect((await inner.list('d/', undefined, signal())).entries).toHaveLength(0);
    expect((await inner.list('m/', undefined, signal())).entries).toHaveLength(0);
    await store.close();
    await inner.close();
  });

  it('refuses to open without a master key, saying where to put one', async () => {
    const registry = new SchemeRegistry().register(memConfigScheme).register(memSealedSecretsScheme);
    const ctx = { dataDir: '/nonexistent', env: {}, logger: { warn: () => undefined, info: () => undefined, debug: () => undefined } };
    const err = await rejectsWith(registry.open('secrets', 'mem+sealed://', ctx), 'PERMISSION_DENIED');
    expect(err.message).toContain('STOWAGE_MASTER_KEY');
  });

  it('passes the URL to the config backend without +sealed and without masterKeyFile', () => {
    const url = parseUrl('etcd+sealed://user:p%40ss@10.0.0.1:2379,[::1]:2380/my%20app/secrets?masterKeyFile=/k&tls=true');
    const inner = innerConfigUrl(url, 'etcd');
    expect(inner).toBe('etcd://user:p%40ss@10.0.0.1:2379,[::1]:2380/my%20app/secrets?tls=true');
    const back = parseUrl(inner);
    expect(back.password).toBe('p@ss');
    expect(back.path).toBe('/my app/secrets');
    expect(innerConfigUrl(parseUrl('mem+sealed://'), 'mem')).toBe('mem://');
  });

  it('declares the query parameters of every config scheme it wraps', () => {
    for (const [sealed, inner] of [
      [memSealedSecretsScheme, memConfigScheme],
      [fileSealedSecretsScheme, fileConfigScheme],
      [etcdSealedSecretsScheme, etcdConfigScheme],
      [zookeeperSealedSecretsScheme, zookeeperConfigScheme],
    ] as const) {
      expect([...sealed.params].sort()).toEqual(['masterKeyFile', ...inner.params].sort());
    }
  });

  it('keeps file+sealed:// secrets encrypted in the config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stowage-file-sealed-'));
    try {
      const registry = new SchemeRegistry().register(fileConfigScheme).register(fileSealedSecretsScheme);
      const ctx = { dataDir: dir, env: { STOWAGE_MASTER_KEY: MASTER.toString() }, logger: { warn: () => undefined, info: () => undefined, debug: () => undefined } };
      const canary = `canary-${randomUUID()}`;
      const store = createSecretStore(await registry.open('secrets', `file+sealed://${join(dir, 'sealed.json')}`, ctx));
      await store.put('app/key', canary);
      expect((await store.get('app/key')).value.reveal()).toBe(canary);
      await store.close();
      for (const name of readdirSync(dir)) {
        const raw = readFileSync(join(dir, name));
        for (const form of [canary, Buffer.from(canary).toString('base64'), Buffer.from(canary).toString('hex')]) expect(raw.includes(form)).toBe(false);
      }
      const again = createSecretStore(await registry.open('secrets', `file+sealed://${join(dir, 'sealed.json')}`, ctx));
      expect((await again.get('app/key')).value.reveal()).toBe(canary);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
