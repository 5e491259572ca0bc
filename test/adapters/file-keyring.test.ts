import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { fileSecretsScheme, KeyringSecretsDriver } from '../../src/adapters/file/keyring-driver.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import type { SecretStore } from '../../src/ports/secrets.js';
import { rejectsWith } from '../../src/testing/harness.js';

const root = mkdtempSync(join(tmpdir(), 'stowage-keyring-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const registry = new SchemeRegistry().register(fileSecretsScheme);
const MASTER = 'keyring-test-master-key-abcdefghij';

function folder(): string {
  return join(root, randomUUID());
}

function logger(): { warnings: string[]; warn(m: string): void; info(): void; debug(): void } {
  const warnings: string[] = [];
  return { warnings, warn: (m) => warnings.push(m), info: () => undefined, debug: () => undefined };
}

async function openKeyring(dataDir: string, env: Record<string, string> = { STOWAGE_MASTER_KEY: MASTER }, log = logger(), query = ''): Promise<SecretStore> {
  const driver = await registry.open('secrets', `file://${join(dataDir, 'secrets.keyring')}${query}`, { dataDir, env, logger: log });
  return createSecretStore(driver);
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('file:// keyring', () => {
  it('keeps versions, deletions and values across a reopen', async () => {
    const dir = folder();
    const a = await openKeyring(dir);
    await a.put('db/password', 'one');
    await a.put('db/password', 'two');
    await a.delete('db/password', { versions: [1] });
    await a.close();
    const b = await openKeyring(dir);
    expect((await b.get('db/password')).value.reveal()).toBe('two');
    expect((await b.versions('db/password')).map((v) => v.deleted)).toEqual([true, false]);
    await b.close();
  });

  it('leaves no plaintext of a secret anywhere in the data folder, raw or as base64 or hex', async () => {
    const dir = folder();
    const canaries = [`canary-${randomUUID()}`, `canary-${randomUUID()}`, `canary-${randomUUID()}`];
    const store = await openKeyring(dir, {});
    await store.put('app/one', canaries[0] as string);
    await store.put('app/one', canaries[1] as string);
    await store.put('app/two', new TextEncoder().encode(canaries[2]));
    await store.delete('app/one', { versions: [1] });
    await store.destroy('app/two', { versions: [1] });
    await store.close();
    const files = filesUnder(dir);
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const file of files) {
      const raw = readFileSync(file);
      for (const c of canaries) {
        const forms = [Buffer.from(c), Buffer.from(Buffer.from(c).toString('base64')), Buffer.from(Buffer.from(c).toString('hex')), Buffer.from(c, 'utf16le')];
        for (const form of forms) expect(raw.includes(form), `${c} found in ${file}`).toBe(false);
      }
    }
  });

  it('removes a destroyed version\'s ciphertext from the file', async () => {
    const dir = folder();
    const store = await openKeyring(dir);
    await store.put('s', 'to-be-destroyed-value');
    await store.put('s', 'kept');
    const sealedOf = (): string | null => {
      const body = JSON.parse(readFileSync(join(dir, 'secrets.keyring'), 'utf8').split('\n')[1] as string) as {
        secrets: Record<string, { data: string | null }[]>;
      };
      return body.secrets.s?.[0]?.data ?? null;
    };
    const before = sealedOf();
    expect(before).toBeTypeOf('string');
    await store.destroy('s', { versions: [1] });
    expect(sealedOf()).toBeNull();
    expect(readFileSync(join(dir, 'secrets.keyring'), 'utf8')).not.toContain(before as string);
    await store.close();
  });

  it('seals every write under a fresh nonce: the same value twice gives different ciphertexts', async () => {
    const dir = folder();
    const store = await openKeyring(dir);
    await store.put('s', 'same');
    await store.put('s', 'same');
    await store.close();
    const body = JSON.parse(readFileSync(join(dir, 'secrets.keyring'), 'utf8').split('\n')[1] as string) as {
      secrets: Record<string, { data: string }[]>;
    };
    const [a, b] = body.secrets.s ?? [];
    expect(a?.data.slice(0, 16)).not.toBe(b?.data.slice(0, 16));
  });

  it('creates the keyring and, without a master key, a key file beside it, both mode 0600, and says where', async () => {
    const dir = folder();
    const log = logger();
    const store = await openKeyring(dir, {}, log);
    await store.put('s', 'v');
    await store.close();
    const keyring = join(dir, 'secrets.keyring');
    expect(statSync(keyring).mode & 0o777).toBe(0o600);
    expect(statSync(`${keyring}.key`).mode & 0o777).toBe(0o600);
    expect(log.warnings.join('\n')).toContain(`${keyring}.key`);
    expect(readdirSync(dir).sort()).toEqual(['secrets.keyring', 'secrets.keyring.key']);
    const again = await openKeyring(dir, {});
    expect((await again.get('s')).value.reveal()).toBe('v');
    await again.close();
  });

  it('reads the master key from ?masterKeyFile=', async () => {
    const dir = folder();
    const keyFile = join(root, `${randomUUID()}.key`);
    writeFileSync(keyFile, 'a-master-key-from-a-file-0123456\n', { mode: 0o600 });
    const store = await openKeyring(dir, {}, logger(), `?masterKeyFile=${keyFile}`);
    await store.put('s', 'v');
    await store.close();
    await rejectsWith(openKeyring(dir, { STOWAGE_MASTER_KEY: MASTER }), 'PERMISSION_DENIED');
    const again = await openKeyring(dir, {}, logger(), `?masterKeyFile=${keyFile}`);
    expect((await again.get('s')).value.reveal()).toBe('v');
    await again.close();
  });

  it('refuses a wrong master key with PERMISSION_DENIED that reveals neither key nor any value, and changes nothing', async () => {
    const dir = folder();
    const value = `canary-${randomUUID()}`;
    const store = await openKeyring(dir);
    await store.put('s', value);
    await store.close();
    const before = readFileSync(join(dir, 'secrets.keyring'));
    const wrong = 'a-completely-different-master-key';
    const err = await rejection(openKeyring(dir, { STOWAGE_MASTER_KEY: wrong }));
    const shown = inspect(err, { depth: 10, showHidden: true });
    expect((err as { code?: string }).code).toBe('PERMISSION_DENIED');
    for (const secret of [wrong, MASTER, value]) expect(shown).not.toContain(secret);
    expect(readFileSync(join(dir, 'secrets.keyring')).equals(before)).toBe(true);
  });

  it('opens a keyring made with its own key file while STOWAGE_MASTER_KEY holds another store\'s key', async () => {
    const dir = folder();
    const first = await openKeyring(dir, {});
    await first.put('s', 'v');
    await first.close();
    const again = await openKeyring(dir, { STOWAGE_MASTER_KEY: MASTER });
    expect((await again.get('s')).value.reveal()).toBe('v');
    await again.close();
    rmSync(join(dir, 'secrets.keyring.key'));
    await rejectsWith(openKeyring(dir, { STOWAGE_MASTER_KEY: MASTER }), 'PERMISSION_DENIED');
  });

  it('refuses a master key shorter than 16 bytes', async () => {
    await rejectsWith(openKeyring(folder(), { STOWAGE_MASTER_KEY: 'short' }), 'INVALID_ARGUMENT');
  });

  it('gives CORRUPTED naming the file for one flipped byte anywhere in the keyring', async () => {
    const dir = folder();
    // Created at a low scrypt cost (kept in the header), since the test reopens it many times.
    const store = createSecretStore(
      await KeyringSecretsDriver.open({ path: join(dir, 'secrets.keyring'), env: { STOWAGE_MASTER_KEY: MASTER }, logger: logger(), kdfCost: { N: 1024, r: 8, p: 1 } }),
    );
    await store.put('a', 'first value');
    await store.put('b/c', new Uint8Array([1, 2, 3]));
    await store.delete('a');
    await store.close();
    const path = join(dir, 'secrets.keyring');
    const original = readFileSync(path);
    const lines = original.toString('utf8').split('\n');
    const headerEnd = (lines[0] as string).length;
    const bodyEnd = headerEnd + 1 + (lines[1] as string).length;
    // Positions spread over the header (salt, key check, checksum), the body (metadata and sealed values),
    // the line breaks and the MAC.
    const positions = new Set([0, 5, Math.floor(headerEnd / 3), Math.floor(headerEnd / 2), headerEnd - 3, headerEnd, headerEnd + 5, bodyEnd - 40, bodyEnd - 10, bodyEnd, bodyEnd + 3, original.length - 2]);
    for (let i = 0; i < 6; i++) positions.add(headerEnd + 1 + Math.floor(((lines[1] as string).length * (i + 0.5)) / 6));
    for (const position of positions) {
      const damaged = Buffer.from(original);
      damaged[position] = (damaged[position] as number) ^ 0x01;
      writeFileSync(path, damaged);
      const err = await rejectsWith(openKeyring(dir), 'CORRUPTED');
      expect(err.message, `byte ${position}`).toContain(path);
    }
    writeFileSync(path, original);
    const healthy = await openKeyring(dir);
    expect((await healthy.get('b/c')).value.byteLength).toBe(3);
    await healthy.close();
  }, 30_000);

  it('gives CORRUPTED for a truncated keyring', async () => {
    const dir = folder();
    const store = await openKeyring(dir);
    await store.put('a', 'v');
    await store.close();
    const path = join(dir, 'secrets.keyring');
    writeFileSync(path, readFileSync(path).subarray(0, 100));
    await rejectsWith(openKeyring(dir), 'CORRUPTED');
  });

  it('opening leaves alone the temp files of a live writer, its lock file\'s included, and removes a dead one\'s', async () => {
    const dir = folder();
    await (await openKeyring(dir)).close();
    const live = ['.secrets.keyring', '.secrets.keyring.lock'].map((n) => `${n}.${process.ppid}.abcdef012345.tmp`);
    const dead = ['.secrets.keyring.999999999.abcdef012345.tmp', '.secrets.keyring.lock.999999999.abcdef012345.tmp'];
    for (const n of [...live, ...dead]) writeFileSync(join(dir, n), '');
    await (await openKeyring(dir)).close();
    expect(readdirSync(dir).sort()).toEqual(['secrets.keyring', ...live].sort());
  });

  it('refuses a file:// URL with a host or a relative path', async () => {
    const ctx = { dataDir: folder(), env: { STOWAGE_MASTER_KEY: MASTER }, logger: logger() };
    await rejectsWith(registry.open('secrets', 'file://somehost/x.keyring', ctx), 'INVALID_ARGUMENT');
    await rejectsWith(registry.open('secrets', 'file:///tmp/x?bogus=1', ctx), 'INVALID_ARGUMENT');
  });

  it('puts secrets.keyring in the data folder for a bare file://', async () => {
    const dataDir = folder();
    const driver = await registry.open('secrets', 'file://', { dataDir, env: { STOWAGE_MASTER_KEY: MASTER }, logger: logger() });
    await driver.close();
    expect(readdirSync(dataDir)).toEqual(['secrets.keyring']);
  });

  it('loses no version when two instances write the same keyring at once, and each sees the other\'s writes', async () => {
    const dir = folder();
    const a = await openKeyring(dir);
    const b = await openKeyring(dir);
    const writes = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).put('shared', `v${i}`)));
    expect(writes.map((w) => w.version).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect((await a.versions('shared')).length).toBe(10);
    await b.put('only-b', 'x');
    expect(await a.list()).toEqual(['only-b', 'shared']);
    await rejectsWith(a.put('only-b', 'y', { ifVersion: 0 }), 'CONFLICT');
    await a.close();
    await b.close();
    expect(readdirSync(dir).sort()).toEqual(['secrets.keyring']);
  });
});
