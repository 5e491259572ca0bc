/**
 * `file://` config against lowdb 7, the small JSON-file database many Node applications keep their settings
 * and state in, on the same disk with the same keys and values.
 *
 * This is lowdb's closest match in Stowage: `file://` config and lowdb both hold the whole data set in
 * memory as one JSON document, serve reads from it, and rewrite the whole file on every write (lowdb
 * through steno: a temporary file renamed over the target). lowdb used as a document store is measured
 * against `sqlite://` documents in `documents-sqlite.bench.ts`, at two collection sizes, since `sqlite://`
 * pages its data and indexes on disk (an insert costs the same at any size) while a lowdb write grows with
 * its file. Reads are left out here: a lowdb read is a property access on `db.data`, the ceiling that the
 * `config get file://` row already measures against a Map.
 *
 * Guarantees differ, and the ratio is read with them: lowdb fsyncs neither the file nor the folder (a write
 * it resolved can be lost on a power loss, which a `file://` put never is), takes no lock (two processes
 * overwrite each other's changes), does not see edits made by others until it is asked to `read()` again,
 * and keeps no revisions; when writes overlap it coalesces them, writing only the latest data.
 */
import { join } from 'node:path';
import { JSONFilePreset } from 'lowdb/node';
import { createConfigStore } from '../src/core/config/config-store.js';
import type { JsonValue } from '../src/ports/common.js';
import { openDriver } from './lib/adapters.js';
import { inFlight, type Benchmark, type Pair, type BenchContext } from './lib/benchmark.js';

const KEYS = 100;
const keys = Array.from({ length: KEYS }, (_, i) => `app/service-${i % 10}/setting-${i}`);
const valueOf = (i: number, counter: number): JsonValue => ({ enabled: i % 2 === 0, limit: 1000 + i, name: `setting ${i}`, tags: ['a', 'b'], counter });

async function lowdbPair(ctx: BenchContext, width: number): Promise<Pair> {
  const store = createConfigStore(await openDriver(ctx, 'file', 'config', `file://${join(ctx.dir, 'config.json')}`));
  const initial: Record<string, JsonValue> = {};
  for (let i = 0; i < KEYS; i++) {
    await store.put(keys[i] as string, valueOf(i, 0));
    initial[keys[i] as string] = valueOf(i, 0);
  }
  const db = await JSONFilePreset<Record<string, JsonValue>>(join(ctx.dir, 'lowdb.json'), initial);
  await db.write();
  let counter = 0;
  return {
    stowage: {
      label: 'stowage file://',
      run: (n) => inFlight(n, width, (i) => store.put(keys[i % KEYS] as string, valueOf(i % KEYS, counter++))),
    },
    baseline: {
      label: 'lowdb 7 (JSONFile, no fsync)',
      run: (n) =>
        inFlight(n, width, (i) =>
          db.update((data) => {
            data[keys[i % KEYS] as string] = valueOf(i % KEYS, counter++);
          }),
        ),
    },
    teardown: () => store.close(),
  };
}

const NOTE =
  'Both sides keep the whole document in memory and rewrite the pretty-printed file on each write, a temporary file renamed over it. lowdb fsyncs neither the file nor the folder (a resolved write can be lost on power loss), takes no lock across processes and keeps no revisions; file:// does all three.';

/** `file://` config against lowdb. */
export const benchmarks: Benchmark[] = [
  {
    kind: 'pair',
    name: 'config put file:// vs lowdb (1 at a time)',
    group: 'config peers',
    adapters: ['file'],
    unit: 'ops/s',
    note: NOTE,
    setup: (ctx) => lowdbPair(ctx, 1),
  },
  {
    kind: 'pair',
    name: 'config put file:// vs lowdb (100 in flight)',
    group: 'config peers',
    adapters: ['file'],
    unit: 'ops/s',
    note: `${NOTE} With 100 writes outstanding lowdb writes only the latest data once the write in progress ends, resolving every write it replaced with it.`,
    setup: (ctx) => lowdbPair(ctx, 100),
  },
];
