/**
 * Config `get` through the port, served from memory (`getSync`, no deadline machinery), on `mem://` and
 * `file://`, one awaited call at a time. Run: `npx tsx bench/config-get.ts`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileConfigDriver } from '../src/adapters/file/config-driver.js';
import { MemoryConfigDriver } from '../src/adapters/memory/config-driver.js';
import { createConfigStore } from '../src/core/config/config-store.js';
import type { ConfigStore } from '../src/ports/config.js';

const KEYS = 100;
const keys = Array.from({ length: KEYS }, (_, i) => `app/service-${i % 10}/setting-${i}`);
const N = 1_000_000;

async function measure(label: string, store: ConfigStore): Promise<void> {
  for (let i = 0; i < KEYS; i++) await store.put(keys[i] as string, { enabled: true, limit: i });
  for (let round = 0; round < 3; round++) {
    const started = performance.now();
    for (let i = 0; i < N; i++) await store.get(keys[i % KEYS] as string);
    const ms = performance.now() - started;
    console.log(`config get ${label} (awaited one at a time): ${((N / ms) * 1000 / 1e6).toFixed(2)} M ops/s`);
  }
  await store.close();
}

const dir = mkdtempSync(join(tmpdir(), 'stowage-bench-config-'));
try {
  await measure('mem://', createConfigStore(new MemoryConfigDriver()));
  await measure('file://', createConfigStore(await FileConfigDriver.open(join(dir, 'config.json'))));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
