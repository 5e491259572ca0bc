/**
 * The secrets contract on `postgres+sealed://`: sealed secrets kept in the postgres:// config store.
 */
import { describe, expect, it } from 'vitest';
import { postgresConfigScheme, PostgresConfigDriver, openPostgresPool } from '../../src/adapters/postgres/index.js';
import { postgresSealedSecretsScheme, SEALED_INNER_PARAMS, SealedSecretsDriver } from '../../src/adapters/sealed/index.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { secretsContract } from '../../src/testing/secrets.js';
import { serviceSuite } from '../support/services.js';

const MASTER = 'postgres-sealed-contract-master-key-0123456789';
// A low scrypt cost keeps the suite quick on a loaded machine; the scheme (default cost) is opened below.
const TEST_KDF_COST = { N: 1024, r: 8, p: 1 };
const logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };

it('postgres+sealed:// passes through exactly the postgres:// config parameters', () => {
  expect([...(SEALED_INNER_PARAMS.postgres ?? [])].sort()).toEqual([...postgresConfigScheme.params].sort());
  expect(SEALED_INNER_PARAMS.postgresql).toEqual(SEALED_INNER_PARAMS.postgres);
});

serviceSuite('postgres', (svc) => {
  const run = Date.now().toString(36).slice(-5);
  let n = 0;
  secretsContract({
    test: { describe, it },
    name: 'postgres+sealed://',
    factory: async () => {
      const inner = new PostgresConfigDriver(await openPostgresPool(`${svc().url}?tablePrefix=s${run}_${n++}_`, { backend: 'config (postgres)' }), { historyRevisions: 1000 });
      return createSecretStore(await SealedSecretsDriver.open('postgres+sealed', inner, Buffer.from(MASTER), AbortSignal.timeout(10_000), TEST_KDF_COST));
    },
  });

  it('opens postgres+sealed:// through the registry and shares secrets between two nodes', async () => {
    const registry = new SchemeRegistry().register(postgresConfigScheme).register(postgresSealedSecretsScheme);
    const url = `${svc().url.replace(/^postgres:/, 'postgres+sealed:')}?tablePrefix=s${run}_reg_`;
    const context = { dataDir: '/nonexistent', env: { STOWAGE_MASTER_KEY: MASTER }, logger };
    const [a, b] = await Promise.all([registry.open('secrets', url, context), registry.open('secrets', url, context)]);
    const nodeA = createSecretStore(a);
    const nodeB = createSecretStore(b);
    try {
      const writes = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? nodeA : nodeB).put('shared', `v${i}`)));
      expect(writes.map((w) => w.version).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6]);
      expect((await nodeB.versions('shared')).length).toBe(6);
      expect((await nodeA.get('shared')).version).toBe(6);
    } finally {
      await nodeA.close();
      await nodeB.close();
    }
  }, 60_000);
});
