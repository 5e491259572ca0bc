import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EtcdConfigDriver, etcdConfigScheme } from '../../src/adapters/etcd/config-driver.js';
import { etcdOptionsFromUrl } from '../../src/adapters/etcd/connection.js';
import { etcdSealedSecretsScheme, SealedSecretsDriver } from '../../src/adapters/sealed/index.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { parseUrl } from '../../src/driver/url.js';
import { secretsContract } from '../../src/testing/secrets.js';
import { serviceSuite } from '../support/services.js';

const MASTER = 'etcd-sealed-contract-master-key-0123456789';
// A low scrypt cost keeps the suite quick on a loaded machine; the scheme (default cost) is opened below.
const TEST_KDF_COST = { N: 1024, r: 8, p: 1 };
const logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };

// Debian's etcd 3.4 (the oldest supported) and the current one built from the Go module proxy.
for (const kind of ['etcd', 'etcd-current'] as const) {
  serviceSuite(kind, (svc) => {
    secretsContract({
      test: { describe, it },
      name: 'etcd+sealed://',
      factory: async () => {
        const inner = await EtcdConfigDriver.open(await etcdOptionsFromUrl(parseUrl(`${svc().url}/sealed-${randomUUID()}`)));
        return createSecretStore(await SealedSecretsDriver.open('etcd+sealed', inner, Buffer.from(MASTER), AbortSignal.timeout(10_000), TEST_KDF_COST));
      },
    });

    it('opens etcd+sealed:// through the registry and shares secrets between two nodes', async () => {
      const registry = new SchemeRegistry().register(etcdConfigScheme).register(etcdSealedSecretsScheme);
      const url = `${svc().url.replace(/^etcd:/, 'etcd+sealed:')}/sealed-${randomUUID()}`;
      const context = { dataDir: '/nonexistent', env: { STOWAGE_MASTER_KEY: MASTER }, logger };
      const [a, b] = await Promise.all([registry.open('secrets', url, context), registry.open('secrets', url, context)]);
      const nodeA = createSecretStore(a);
      const nodeB = createSecretStore(b);
      try {
        const writes = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? nodeA : nodeB).put('shared', `v${i}`)));
        expect(writes.map((w) => w.version).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6]);
        expect((await nodeB.versions('shared')).length).toBe(6);
        const latest = await nodeA.get('shared');
        expect(latest.version).toBe(6);
      } finally {
        await nodeA.close();
        await nodeB.close();
      }
    }, 60_000);
  });
}
