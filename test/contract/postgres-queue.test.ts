import { randomUUID } from 'node:crypto';
import { describe, it } from 'vitest';
import { postgresQueueScheme } from '../../src/adapters/postgres/index.js';
import { MemoryConfigDriver } from '../../src/adapters/memory/config-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { parseUrl } from '../../src/driver/url.js';
import type { Logger, OpenContext } from '../../src/core/registry.js';
import { queueContract } from '../../src/testing/queue.js';
import type { Queue } from '../../src/ports/queue.js';
import { serviceSuite } from '../support/services.js';

const quiet: Logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };
const context: OpenContext = {
  dataDir: '/nonexistent',
  env: {},
  logger: quiet,
  openDriver: () => Promise.reject(new Error('not used')),
};

serviceSuite('postgres', (svc) => {
  // A schema per instance: every instance starts empty.
  const open = async (query = ''): Promise<Queue> => {
    const schema = `q${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    return createQueue(await postgresQueueScheme.open(parseUrl(`${svc().url}?schema=${schema}${query}`), context), {
      config: createConfigStore(new MemoryConfigDriver()),
    });
  };
  queueContract({
    test: { describe, it },
    name: 'postgres://',
    factory: () => open(),
    retention: { maxAgeMs: 1_000, factory: () => open('&maxAgeMs=1000') },
  });
});
