import { describe, it } from 'vitest';
import { memQueueScheme } from '../../src/adapters/memory/queue-driver.js';
import { MemoryConfigDriver } from '../../src/adapters/memory/config-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { parseUrl } from '../../src/driver/url.js';
import { defaultLogger, type OpenContext } from '../../src/core/registry.js';
import { queueContract } from '../../src/testing/queue.js';

const context: OpenContext = {
  dataDir: '/nonexistent',
  env: {},
  logger: defaultLogger,
  openDriver: () => Promise.reject(new Error('not used')),
};

queueContract({
  test: { describe, it },
  name: 'mem://',
  factory: async () => createQueue(await memQueueScheme.open(parseUrl('mem://'), context), { config: createConfigStore(new MemoryConfigDriver()) }),
});
