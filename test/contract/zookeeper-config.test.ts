import { randomUUID } from 'node:crypto';
import { describe, it } from 'vitest';
import { ZookeeperConfigDriver } from '../../src/adapters/zookeeper/config-driver.js';
import { zookeeperOptionsFromUrl } from '../../src/adapters/zookeeper/connection.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { parseUrl } from '../../src/driver/url.js';
import { configContract } from '../../src/testing/config.js';
import { serviceSuite } from '../support/services.js';

serviceSuite('zookeeper', (svc) => {
  configContract({
    test: { describe, it },
    name: 'zookeeper://',
    factory: async () =>
      createConfigStore(await ZookeeperConfigDriver.open(zookeeperOptionsFromUrl(parseUrl(`${svc().url}/contract-${randomUUID()}`)))),
  });
});
