/**
 * `file://` config against what a hand-rolled file config uses: the document kept in memory, saved with
 * write-file-atomic and watched with chokidar, on the same disk, same keys and values.
 *
 * Guarantees differ: write-file-atomic writes a temporary file, fsyncs it and renames it over the target,
 * but does not fsync the folder, so after a power loss the rename (the put) can be gone; it serialises
 * writes to one file within a process only, so two processes can each overwrite the other's change. The
 * port also fsyncs the folder, takes a lock file shared with other processes, re-reads the file when
 * another writer or a hand edit changed it, and gives every key a revision.
 */
import { join } from 'node:path';
import { watch as chokidarWatch } from 'chokidar';
import writeFileAtomic from 'write-file-atomic';
import { createConfigStore } from '../src/core/config/config-store.js';
import type { JsonValue } from '../src/ports/common.js';
import { openDriver } from './lib/adapters.js';
import type { Benchmark } from './lib/benchmark.js';

const KEYS = 100;
const keys = Array.from({ length: KEYS }, (_, i) => `app/service-${i % 10}/setting-${i}`);
const valueOf = (i: number): JsonValue => ({ enabled: i % 2 === 0, limit: 1000 + i, name: `setting ${i}`, tags: ['a', 'b'] });

/** The config peer benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    kind: 'pair',
    name: 'config put file:// vs write-file-atomic + chokidar (1 at a time)',
    group: 'config peers',
    adapters: ['file'],
    unit: 'ops/s',
    note:
      'Both sides rewrite the whole pretty-printed document and fsync it, with a watcher on the file. write-file-atomic does not fsync the folder (a put can be lost on power loss) and has no lock across processes nor revisions; file:// has both and fsyncs the folder.',
    async setup(ctx) {
      const store = createConfigStore(await openDriver(ctx, 'file', 'config', `file://${join(ctx.dir, 'config.json')}`));
      for (let i = 0; i < KEYS; i++) await store.put(keys[i] as string, valueOf(i));
      const path = join(ctx.dir, 'peer.json');
      const doc: Record<string, JsonValue> = {};
      for (let i = 0; i < KEYS; i++) doc[keys[i] as string] = valueOf(i);
      await writeFileAtomic(path, JSON.stringify(doc, null, 2));
      // The watcher runs as in an application (its events cost the process); reloading is not timed.
      const watcher = chokidarWatch(path, { ignoreInitial: true }).on('change', () => undefined);
      await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
      let counter = 0;
      return {
        stowage: {
          label: 'stowage file://',
          async run(n) {
            for (let i = 0; i < n; i++) await store.put(keys[i % KEYS] as string, { ...(valueOf(i % KEYS) as object), counter: counter++ });
          },
        },
        baseline: {
          label: 'write-file-atomic + chokidar',
          async run(n) {
            for (let i = 0; i < n; i++) {
              doc[keys[i % KEYS] as string] = { ...(valueOf(i % KEYS) as object), counter: counter++ };
              await writeFileAtomic(path, JSON.stringify(doc, null, 2));
            }
          },
        },
        async teardown() {
          await watcher.close();
          await store.close();
        },
      };
    },
  },
];
