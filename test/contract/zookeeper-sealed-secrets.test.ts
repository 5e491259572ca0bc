import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ZookeeperConfigDriver, zookeeperConfigScheme } from '../../src/adapters/zookeeper/config-driver.js';
import { zookeeperOptionsFromUrl } from '../../src/adapters/zookeeper/connection.js';
import { SealedSecretsDriver, zookeeperSealedSecretsScheme } from '../../src/adapters/sealed/index.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { parseUrl } from '../../src/driver/url.js';
import { secretsContract } from '../../src/testing/secrets.js';
import { serviceSuite } from '../support/services.js';

const MASTER = 'zookeeper-sealed-contract-master-key-0123456789';
// A low scrypt cost keeps the suite quick on a loaded machine; the scheme (default cost) is opened below.
const TEST_KDF_COST = { N: 1024, r: 8, p: 1 };
const logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };

serviceSuite('zookeeper', (svc) => {
  secretsContract({
    test: { describe, it },
    name: 'zookeeper+sealed://',
    factory: async () => {
      const inner = await ZookeeperConfigDriver.open(zookeeperOptionsFromUrl(parseUrl(`${svc().url}/sealed-${randomUUID()}`)));
      return createSecretStore(await SealedSecretsDriver.open('zookeeper+sealed', inner, Buffer.from(MASTER), AbortSignal.timeout(10_000), TEST_KDF_COST));
    },
  });

  it('opens zookeeper+sealed:// through the registry and shares secrets between two nodes', async () => {
    const registry = new SchemeRegistry().register(zookeeperConfigScheme).register(zookeeperSealedSecretsScheme);
    const url = `${svc().url.replace(/^zookeeper:/, 'zookeeper+sealed:')}/sealed-${randomUUID()}`;
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
