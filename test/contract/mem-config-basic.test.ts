import { describe, it } from 'vitest';
import { MemoryConfigDriver } from '../../src/adapters/memory/config-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import type { ConfigDriver } from '../../src/ports/config.js';
import { configContract } from '../../src/testing/config.js';

/** mem:// with only the basic capabilities, so the suite's UNSUPPORTED checks for watch and leases run. */
function basicDriver(): ConfigDriver {
  const inner = new MemoryConfigDriver();
  return {
    backend: 'mem',
    capabilities: new Set(),
    get: (key, signal) => inner.get(key, signal),
    list: (prefix, limit, signal) => inner.list(prefix, limit, signal),
    put: (key, value, options, signal) => inner.put(key, value, options, signal),
    delete: (key, options, signal) => inner.delete(key, options, signal),
    ping: (signal) => inner.ping(signal),
    close: () => inner.close(),
  };
}

configContract({
  test: { describe, it },
  name: 'mem:// without watch and leases',
  factory: async () => createConfigStore(basicDriver()),
});
