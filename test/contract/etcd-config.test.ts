import { randomUUID } from 'node:crypto';
import { describe, it } from 'vitest';
import { EtcdConfigDriver } from '../../src/adapters/etcd/config-driver.js';
import { etcdOptionsFromUrl } from '../../src/adapters/etcd/connection.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { parseUrl } from '../../src/driver/url.js';
import { configContract } from '../../src/testing/config.js';
import { serviceSuite } from '../support/services.js';

// Debian's etcd 3.4 (the oldest supported) and the current one built from the Go module proxy.
for (const kind of ['etcd', 'etcd-current'] as const) {
  serviceSuite(kind, (svc) => {
    configContract({
      test: { describe, it },
      name: 'etcd://',
      // etcd grants at least its minimum TTL (about 2 s by default); the suite's lease tests use that much.
      leaseTtlMs: 2000,
      factory: async () =>
        createConfigStore(await EtcdConfigDriver.open(await etcdOptionsFromUrl(parseUrl(`${svc().url}/contract-${randomUUID()}`)))),
    });
  });
}
