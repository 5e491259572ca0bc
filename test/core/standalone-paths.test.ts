/**
 * Standalone URLs stay inside the data folder they name and hold its lock: no `..` (raw or
 * percent-encoded) leads out of it, and folder names with `?`, `#`, `%` or a literal `%2e%2e` open.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'vitest';
import { createStowage, type Profile } from '../../src/index.js';
import type { PortName } from '../../src/ports/common.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-paths-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function tree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

describe('standalone paths', () => {
  const escapes: [PortName, string][] = [
    ['queue', 'disk://../x'],
    ['queue', 'disk://%2e%2e/x'],
    ['queue', 'disk://q/../../x'],
    ['queue', 'disk:///%2e%2e/x'],
    ['documents', 'sqlite://../x.db'],
    ['documents', 'sqlite://%2E%2E/x.db'],
  ];
  for (const [port, url] of escapes) {
    it(`${url} is INVALID_ARGUMENT and writes nothing outside the data folder`, async () => {
      const dataDir = join(root, 'inner', 'data');
      await mkdir(dataDir, { recursive: true });
      const before = await tree(root);
      await assert.rejects(createStowage({ dataDir, [port]: url }, { ports: [port] }), { code: 'INVALID_ARGUMENT' });
      assert.deepEqual(await tree(root), before);
    });
  }

  it('a data folder named …/%2e%2e/app keeps everything in it and holds its lock', async () => {
    const dataDir = join(root, 'a', '%2e%2e', 'app');
    const stowage = await createStowage({ dataDir });
    try {
      await stowage.config.put('k', 1);
      await stowage.secrets.put('s', 'v');
      await stowage.queue.publish('t', 'x');
      await stowage.documents.collection('c').then((c) => c.insert({ a: 1 }));
      assert.ok((await stat(join(dataDir, 'stowage.lock'))).isFile(), 'the data folder is locked');
      for (const name of ['config.json', 'secrets.keyring', 'queue', 'documents.db']) await stat(join(dataDir, name));
      assert.deepEqual(await readdir(root), ['a']);
      assert.deepEqual(await readdir(join(root, 'a')), ['%2e%2e']);
      await assert.rejects(createStowage({ dataDir }, { ports: ['queue'] }), { code: 'UNAVAILABLE' });
    } finally {
      await stowage.close();
    }
  });

  it('folder names holding "?", "#", "%" and spaces open and keep their data there', async () => {
    const dataDir = join(root, 'odd ?name#with%25 and %zz');
    const profile: Profile = { dataDir };
    let stowage = await createStowage(profile);
    let id: string;
    try {
      await stowage.config.put('k', 1);
      await stowage.secrets.put('s', 'v');
      await stowage.queue.publish('t', 'x');
      id = (await (await stowage.documents.collection('c')).insert({ a: 1 })).id;
    } finally {
      await stowage.close();
    }
    assert.deepEqual(await readdir(root), ['odd ?name#with%25 and %zz']);
    stowage = await createStowage(profile);
    try {
      assert.equal((await stowage.config.get('k'))?.value, 1);
      assert.equal((await stowage.secrets.get('s')).value.reveal(), 'v');
      assert.equal((await (await stowage.documents.collection('c')).get(id))?.data.a, 1);
    } finally {
      await stowage.close();
    }
  });
});
