import { randomUUID } from 'node:crypto';
import { describe, it } from 'vitest';
import { kafkaQueueScheme } from '../../src/adapters/kafka/index.js';
import { MemoryConfigDriver } from '../../src/adapters/memory/config-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { parseUrl } from '../../src/driver/url.js';
import type { Logger, OpenContext } from '../../src/core/registry.js';
import { queueContract } from '../../src/testing/queue.js';
import { serviceSuite } from '../support/services.js';

const quiet: Logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };
const context: OpenContext = {
  dataDir: '/nonexistent',
  env: {},
  logger: quiet,
  openDriver: () => Promise.reject(new Error('not used')),
};

// One broker for the file; a topic and group prefix per test, so every instance starts empty.
serviceSuite('kafka', (svc) => {
  queueContract({
    test: { describe, it },
    name: 'kafka://',
    factory: async () => {
      const prefix = `t${randomUUID().replaceAll('-', '').slice(0, 12)}`;
      return createQueue(await kafkaQueueScheme.open(parseUrl(`${svc().url}?prefix=${prefix}`), context), { config: createConfigStore(new MemoryConfigDriver()) });
    },
  });
});
