import { describe, it } from 'vitest';
import { MemoryConfigDriver } from '../../src/adapters/memory/config-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { configContract } from '../../src/testing/config.js';

configContract({
  test: { describe, it },
  name: 'mem://',
  factory: async () => createConfigStore(new MemoryConfigDriver()),
});
