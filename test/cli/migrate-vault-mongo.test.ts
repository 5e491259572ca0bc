/**
 * `stowage migrate` to and from Vault (secrets) and the MongoDB protocol (documents): a populated standalone
 * folder goes to the servers the harness builds (Vault 1.14.2, FerretDB 1.24.2) and back to a fresh folder,
 * with every verification row matching and the round trip equal to the original.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { it } from 'vitest';
import { serviceSuite } from '../support/services.js';
import { migrateFolder, roundTrip, writeSecretsAndDocuments } from './migrate-round-trip.js';

serviceSuite('vault', (vault) =>
  serviceSuite('mongodb', (mongo) => {
    const folder = migrateFolder('stowage-cli-vault-mongo-', () => {
      const ns = `m${randomBytes(4).toString('hex')}`;
      const documents = new URL(mongo().url);
      documents.pathname = `/${ns}`;
      return { urls: { secrets: vault().url.replace('/secret?', `/secret/${ns}?`), documents: documents.toString() }, env: vault().env };
    });

    it('migrates secrets and documents to Vault and FerretDB and back, every row matching', async () => {
      {
        await using s = await folder.open('a');
        await writeSecretsAndDocuments(s, { people: 120, orders: 30 });
      }
      const there = await roundTrip(folder);
      assert.deepEqual(there.verification.filter((r) => r.port === 'documents').map((r) => [r.item, r.target]), [['orders', 30], ['orders indexes', 0], ['people', 120], ['people indexes', 2]]);

      await using b = await folder.open('b');
      assert.equal((await b.secrets.get('db/password')).value.reveal(), 'v3');
      const [p7] = (await (await b.documents.collection('people')).find({ email: 'p7@x.org' })).items;
      assert.equal(p7?.data.team, 't0');
    }, 120_000);
  }),
);
