import { randomUUID } from 'node:crypto';
import { describe, it } from 'vitest';
import { natsQueueScheme } from '../../src/adapters/nats/index.js';
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

// Debian's nats-server 2.9 (the oldest supported) and the current one built from the Go module proxy.
for (const kind of ['nats', 'nats-current'] as const) {
  serviceSuite(kind, (svc) => {
    // A stream per test: every instance starts empty.
    const open = async (query = ''): Promise<Queue> => {
      const stream = `t${randomUUID().replaceAll('-', '').slice(0, 12)}`;
      return createQueue(await natsQueueScheme.open(parseUrl(`${svc().url}?stream=${stream}&storage=memory${query}`), context), {
        config: createConfigStore(new MemoryConfigDriver()),
      });
    };
    queueContract({
      test: { describe, it },
      name: 'nats://',
      factory: () => open(),
      retention: { maxAgeMs: 1_000, factory: () => open('&maxAgeMs=1000') },
    });
    queueContract({
      test: { describe, it },
      name: 'nats:// with ackConfirm=false',
      factory: () => open('&ackConfirm=false'),
    });
  });
}
