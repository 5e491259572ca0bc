/**
 * `stowage migrate` to and from ZooKeeper (config): a populated standalone folder goes to a `zookeeper://` store
 * and back to a fresh folder, with every verification row matching and the round trip equal to the original.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { it } from 'vitest';
import { serviceSuite } from '../support/services.js';
import { migrateFolder, roundTrip } from './migrate-round-trip.js';

serviceSuite('zookeeper', (zk) => {
  const folder = migrateFolder('stowage-cli-zookeeper-', () => ({ urls: { config: `${zk().url}/m${randomBytes(4).toString('hex')}` } }));

  it('migrates config to ZooKeeper and back, every row matching and every key equal', async () => {
    const written = new Map<string, unknown>();
    {
      await using s = await folder.open('a');
      for (let i = 0; i < 150; i++) {
        const value = { i, name: `svc-${i}`, tags: [i % 3, 'é✓𝄞'], nested: { on: i % 2 === 0 } };
        await s.config.put(`app/${i % 5}/key-${i}`, value);
        written.set(`app/${i % 5}/key-${i}`, value);
      }
      await s.config.put('top', 'level');
      written.set('top', 'level');
    }
    const there = await roundTrip(folder);
    assert.ok(there.verification.some((r) => r.port === 'config' && r.target === written.size), JSON.stringify(there.verification));

    await using b = await folder.open('b');
    const { entries } = await b.config.list('');
    assert.deepEqual(new Map(entries.map((e) => [e.key, e.value])), written);
  }, 120_000);
});
