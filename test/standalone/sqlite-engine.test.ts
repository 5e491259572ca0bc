/**
 * The default standalone profile opens with nothing but Stowage installed on every supported Node (better-sqlite3
 * when it loads, else `node:sqlite`), and a profile whose SQLite engine this Node cannot run is refused before any
 * file is created.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createStowage } from '../../src/index.js';
import { chooseSqliteEngine, type SqliteEngineName } from '../../src/adapters/sqlite/engine.js';
import { rejectsWith } from '../../src/testing/harness.js';
import { tempDir } from '../support/services.js';

function runs(engine: SqliteEngineName): boolean {
  try {
    chooseSqliteEngine(engine);
    return true;
  } catch {
    return false;
  }
}

const missing = (['node-sqlite', 'better-sqlite3'] as const).find((e) => !runs(e));

describe('the standalone profile\'s SQLite engine', () => {
  it('the default profile opens and stores a document on this Node', async () => {
    const dataDir = join(await tempDir('stowage-engine-'), 'data');
    await using stowage = await createStowage({ dataDir }, { env: {} });
    const col = await stowage.documents.collection('c');
    await col.put('a', { n: 1 });
    expect((await col.get('a'))?.data).toEqual({ n: 1 });
    await rm(dataDir, { recursive: true, force: true });
  });

  it.skipIf(missing === undefined)(`a profile asking for an engine this Node lacks (${missing ?? 'none'}) is UNSUPPORTED before anything is created on disk`, async () => {
    const dataDir = join(await tempDir('stowage-engine-'), 'data');
    const err = await rejectsWith(createStowage({ dataDir, documents: `sqlite://?engine=${missing!}` }, { env: {} }), 'UNSUPPORTED');
    expect(err.message).toContain('documents port');
    expect(err.message).toMatch(missing === 'node-sqlite' ? /Node 22\.16 or later/ : /npm install better-sqlite3@12/);
    expect(existsSync(dataDir), 'no keyring, queue folder or lock file was created').toBe(false);
  });
});
