/**
 * Config `get` through the port on `mem://`: the in-memory fast path (no deadline machinery).
 * Run: `npx tsx bench/config-get.ts`.
 */
import { MemoryConfigDriver } from '../src/adapters/memory/config-driver.js';
import { createConfigStore } from '../src/core/config/config-store.js';

const store = createConfigStore(new MemoryConfigDriver());
await store.put('app/feature/flag', { on: true });
const N = 2_000_000;
for (let round = 0; round < 3; round++) {
  const started = performance.now();
  for (let i = 0; i < N; i++) await store.get('app/feature/flag');
  const ms = performance.now() - started;
  console.log(`config get (mem://, awaited one at a time): ${((N / ms) * 1000 / 1e6).toFixed(2)} M ops/s`);
}
await store.close();
