import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { diskQueueScheme } from '../../src/adapters/disk-queue/index.js';
import { MemoryConfigDriver } from '../../src/adapters/memory/config-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { parseUrl } from '../../src/driver/url.js';
import { defaultLogger, type OpenContext } from '../../src/core/registry.js';
import { queueContract } from '../../src/testing/queue.js';

const base = await mkdtemp(join(tmpdir(), 'stowage-disk-queue-contract-'));
let n = 0;

const context: OpenContext = {
  dataDir: base,
  env: {},
  logger: defaultLogger,
  openDriver: () => Promise.reject(new Error('not used')),
};

afterAll(() => rm(base, { recursive: true, force: true }));

// A fresh folder per instance; small segments so rolling and sealed-segment reads are exercised.
queueContract({
  test: { describe, it },
  name: 'disk://',
  factory: async () =>
    createQueue(await diskQueueScheme.open(parseUrl(`disk://${join(base, `q${++n}`)}?segmentBytes=4096`), context), {
      config: createConfigStore(new MemoryConfigDriver()),
    }),
});
