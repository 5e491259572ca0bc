import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteDocumentsDriver } from '../../src/adapters/sqlite/documents-driver.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';
import { documentsContract } from '../../src/testing/documents.js';

const root = mkdtempSync(join(tmpdir(), 'stowage-sqlite-docs-'));
let n = 0;
afterAll(() => rmSync(root, { recursive: true, force: true }));

documentsContract({
  test: { describe, it },
  name: 'sqlite://',
  factory: async () =>
    createDocumentStore(new SqliteDocumentsDriver({ file: join(root, `t${n++}`, 'documents.db'), synchronous: 'normal' }), {
      maxDocumentBytes: 64 * 1024,
    }),
});

describe('sqlite:// specifics', () => {
  const ctx = (dataDir: string) => ({
    dataDir,
    env: {},
    logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
    openDriver: () => Promise.reject(new Error('not used')),
  });

  it('an empty path puts documents.db in the data folder; an absolute path is used as is', async () => {
    const { sqliteDocumentsScheme } = await import('../../src/adapters/sqlite/index.js');
    const { parseUrl } = await import('../../src/core/url.js');
    const dir = join(root, 'urls');
    const a = await sqliteDocumentsScheme.open(parseUrl('sqlite://'), ctx(dir));
    expect((a.native?.() as { name: string }).name).toBe(join(dir, 'documents.db'));
    await a.close();
    const b = await sqliteDocumentsScheme.open(parseUrl(`sqlite://${join(root, 'abs', 'x.db')}?synchronous=normal`), ctx(dir));
    expect((b.native?.() as { name: string }).name).toBe(join(root, 'abs', 'x.db'));
    await b.close();
  });

  it('documents, indexes and migration versions survive reopening the file', async () => {
    const file = join(root, 'reopen', 'documents.db');
    const calls: number[] = [];
    const migrations = [{ version: 1, up: async () => void calls.push(1) }];
    const first = createDocumentStore(new SqliteDocumentsDriver({ file }));
    const col = await first.collection('users', { indexes: [{ fields: ['email'], unique: true, name: 'by_email' }], migrations });
    await col.insert({ email: 'a@x' }, { id: 'u1' });
    await first.close();
    const second = createDocumentStore(new SqliteDocumentsDriver({ file }));
    const again = await second.collection('users', { migrations });
    expect(await again.get('u1')).toEqual({ id: 'u1', version: 1, data: { email: 'a@x' } });
    expect(await again.indexes()).toEqual([{ name: 'by_email', fields: ['email'], unique: true }]);
    await expect(again.insert({ email: 'a@x' })).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(calls).toEqual([1]);
    await second.close();
  });

  it('a stored document that is not JSON any more is CORRUPTED, naming it', async () => {
    const driver = new SqliteDocumentsDriver({ file: join(root, 'corrupt', 'documents.db') });
    const store = createDocumentStore(driver);
    const col = await store.collection('things');
    await col.insert({ a: 1 }, { id: 'broken' });
    driver.db.prepare('UPDATE "d_things" SET data = ? WHERE id = ?').run('{"a":', 'broken');
    const err = await col.get('broken').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CORRUPTED' });
    expect(String((err as Error).message)).toContain('"broken"');
    await store.close();
  });

  it('two connections to one file run a migration once', async () => {
    const file = join(root, 'two', 'documents.db');
    const stores = [0, 1].map(() => createDocumentStore(new SqliteDocumentsDriver({ file })));
    const calls: number[] = [];
    const migrations = [{ version: 1, up: async () => { calls.push(1); await new Promise((r) => setTimeout(r, 100)); } }];
    await Promise.all(stores.map((s) => s.collection('items', { migrations })));
    expect(calls).toEqual([1]);
    await Promise.all(stores.map((s) => s.close()));
  });
});
