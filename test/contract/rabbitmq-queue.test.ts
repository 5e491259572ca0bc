import { randomUUID } from 'node:crypto';
import { describe, it } from 'vitest';
import { rabbitmqQueueScheme } from '../../src/adapters/rabbitmq/index.js';
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

serviceSuite('rabbitmq', (svc) => {
  queueContract({
    test: { describe, it },
    name: 'rabbitmq://',
    // A prefix per test: every instance starts with its own exchange, streams and queues.
    factory: async () =>
      createQueue(await rabbitmqQueueScheme.open(parseUrl(`${svc().url}?prefix=t${randomUUID().slice(0, 8)}`), context), {
        config: createConfigStore(new MemoryConfigDriver()),
      }),
  });
});
