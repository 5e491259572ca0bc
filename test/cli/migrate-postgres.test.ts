/**
 * `stowage migrate` standalone ↔ PostgreSQL: a populated standalone folder goes to postgres:// (config and
 * documents) and postgres+sealed:// (secrets) on one server and back to a fresh folder, with every
 * verification row matching and the round trip equal to the original.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { it } from 'vitest';
import { serviceSuite } from '../support/services.js';
import { migrateFolder, roundTrip, writeSecretsAndDocuments } from './migrate-round-trip.js';

serviceSuite('postgres', (pg) => {
  const folder = migrateFolder('stowage-cli-postgres-', () => {
    const ns = `m${randomBytes(4).toString('hex')}_`;
    const url = (prefix: string, scheme = 'postgres'): string => `${pg().url.replace(/^postgres:/, `${scheme}:`)}?tablePrefix=${prefix}`;
    return { urls: { config: url(ns), secrets: url(`${ns}s_`, 'postgres+sealed'), documents: url(ns) } };
  });

  it('migrates config, secrets and documents to PostgreSQL and back, every row matching', async () => {
    {
      await using s = await folder.open('a');
      for (let i = 0; i < 40; i++) await s.config.put(`app/k${i}`, { i, tags: [`t${i % 3}`], nested: { on: i % 2 === 0 } });
      await s.config.put('app/é/ü', 'unicode');
      await writeSecretsAndDocuments(s, { people: 120, orders: 30 });
    }
    const there = await roundTrip(folder);
    assert.deepEqual(there.verification.filter((r) => r.port === 'documents').map((r) => [r.item, r.target]), [['orders', 30], ['orders indexes', 0], ['people', 120], ['people indexes', 2]]);

    await using b = await folder.open('b');
    assert.equal((await b.secrets.get('db/password')).value.reveal(), 'v3');
    assert.deepEqual((await b.config.get('app/k7'))?.value, { i: 7, tags: ['t1'], nested: { on: false } });
    const [p7] = (await (await b.documents.collection('people')).find({ email: 'p7@x.org' })).items;
    assert.equal(p7?.data.team, 't0');
  }, 120_000);
});
