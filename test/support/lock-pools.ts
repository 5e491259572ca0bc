/**
 * The deadlock that SQL documents adapters guard against by holding their locks outside the pool: a lock
 * held on a pooled connection while the index build's statements (or a migration's writes) wait for another
 * connection of the same pool. As many concurrent builds or migrations as connections then wait on each
 * other until a connect timeout (PostgreSQL) or forever (MySQL, whose pool has no acquire timeout).
 */
import { expect } from 'vitest';
import type { Collection, DocumentStore } from '../../src/ports/documents.js';

/**
 * Opens a store with a pool of 2 and opens 4 collections with two indexes each at once (writing and counting
 * in each), then one with a pool of 1 and opens a collection with an index and a migration that writes.
 * Returns the single-connection store, open, for the caller's own checks; the caller closes it.
 *
 * @param storeWithPool - opens a store of the adapter under test whose pool holds `size` connections
 */
export async function expectLocksOutsideThePool(storeWithPool: (size: 1 | 2) => Promise<DocumentStore>, timeoutMs = 20_000): Promise<DocumentStore> {
  const store = await storeWithPool(2);
  try {
    const indexes = [{ fields: ['team'] }, { fields: ['email'], unique: true }];
    const collections = await Promise.all(['a', 'b', 'c', 'd'].map((name) => store.collection(name, { indexes, timeoutMs })));
    for (const c of collections) await c.insert({ team: 'x', email: `${c.name}@example.com` });
    expect(await Promise.all(collections.map((c) => c.count({ team: 'x' })))).toEqual([1, 1, 1, 1]);
  } finally {
    await store.close();
  }
  const one = await storeWithPool(1);
  try {
    const migrations = [{ version: 1, up: async (c: Collection) => void (await c.insertMany([{ team: 'y' }, { team: 'z' }])) }];
    const jobs = await one.collection('jobs', { indexes: [{ fields: ['team'] }], migrations, timeoutMs });
    expect((await jobs.find({ team: 'y' })).items.map((d) => d.data)).toEqual([{ team: 'y' }]);
  } catch (err) {
    await one.close();
    throw err;
  }
  return one;
}
