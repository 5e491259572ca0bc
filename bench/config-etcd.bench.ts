/**
 * `etcd://` config through the ConfigStore port against the raw `etcd3` client doing the same work
 * (issue 5: at least 0.95× raw, one at a time and 100 in flight), and watch latency from put to event.
 *
 * Same work: the raw get reads the key-value with its revisions and parses the JSON value; the raw put
 * writes the JSON text and reads the new revision from the response header.
 */
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { createConfigStore } from '../src/core/config/config-store.js';
import type { ConfigStore } from '../src/ports/config.js';
import type { JsonValue } from '../src/ports/common.js';
import { openDriver } from './lib/adapters.js';
import { alternating } from './lib/measure.js';
import { inFlight, percentile, stats, type BenchContext, type Benchmark, type Figure, type Pair } from './lib/benchmark.js';

const KEYS = 100;
const valueOf = (i: number): JsonValue => ({ enabled: i % 2 === 0, limit: 1000 + i, name: `setting ${i}` });

interface Sides {
  store: ConfigStore;
  client: Etcd3;
  /** Key names (without prefix) used by both sides. */
  keys: string[];
  /** The raw side's prefix (the port's prefix is in its URL). */
  rawPrefix: string;
  close(): Promise<void>;
}

async function open(ctx: BenchContext): Promise<Sides> {
  const svc = ctx.services.etcd;
  if (!svc) ctx.skip('etcd unavailable');
  const tag = randomBytes(4).toString('hex');
  const store = createConfigStore(await openDriver(ctx, 'etcd', 'config', `${svc.url}/bench-${tag}`));
  const client = new Etcd3({ hosts: `http://${svc.host}:${svc.port}` });
  const keys = Array.from({ length: KEYS }, (_, i) => `app/setting-${i}`);
  const rawPrefix = `/bench-raw-${tag}/`;
  for (let i = 0; i < KEYS; i++) {
    await store.put(keys[i] as string, valueOf(i));
    await client.put(rawPrefix + (keys[i] as string)).value(JSON.stringify(valueOf(i)));
  }
  return {
    store,
    client,
    keys,
    rawPrefix,
    async close() {
      await store.close();
      client.close();
    },
  };
}

function rawGet(s: Sides, key: string): Promise<unknown> {
  return s.client
    .get(s.rawPrefix + key)
    .exec()
    .then((res) => {
      const kv = res.kvs[0];
      return kv && { key, value: JSON.parse(kv.value.toString()) as unknown, revision: Number(kv.mod_revision), createRevision: Number(kv.create_revision) };
    });
}

function rawPut(s: Sides, key: string, value: JsonValue): Promise<number> {
  return s.client
    .put(s.rawPrefix + key)
    .value(JSON.stringify(value))
    .exec()
    .then((res) => Number(res.header.revision));
}

async function pair(ctx: BenchContext, op: 'get' | 'put', concurrency: number): Promise<Pair> {
  const s = await open(ctx);
  const key = (i: number): string => s.keys[i % KEYS] as string;
  const stowageOp = op === 'get' ? (i: number) => s.store.get(key(i)) : (i: number) => s.store.put(key(i), valueOf(i));
  const rawOp = op === 'get' ? (i: number) => rawGet(s, key(i)) : (i: number) => rawPut(s, key(i), valueOf(i));
  return {
    stowage: { label: 'stowage etcd://', run: (n) => inFlight(n, concurrency, stowageOp) },
    baseline: { label: 'etcd3', run: (n) => inFlight(n, concurrency, rawOp) },
    teardown: () => s.close(),
  };
}

const BAR = { ratio: 0.95, source: 'issue 5' } as const;
const requires = ['etcd'] as const;

/** Measures put → watch event latency on one side: `samples` sequential puts, each waiting for its event. */
class LatencyProbe {
  readonly #waiters = new Map<number, () => void>();

  /** Called by the side's watch loop with the counter carried by the event's value. */
  arrived(counter: number): void {
    this.#waiters.get(counter)?.();
  }

  async sample(counter: number, put: () => Promise<unknown>): Promise<number> {
    const started = performance.now();
    const seen = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no watch event for write ${counter} within 5 s`)), 5000);
      this.#waiters.set(counter, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    await put();
    await seen;
    this.#waiters.delete(counter);
    return performance.now() - started;
  }
}

/** The etcd config benchmarks. */
export const benchmarks: Benchmark[] = [
  { kind: 'pair', name: 'etcd config get (1 at a time)', group: 'config', adapters: ['etcd'], unit: 'ops/s', requires, bar: BAR, setup: (ctx) => pair(ctx, 'get', 1) },
  { kind: 'pair', name: 'etcd config get (100 in flight)', group: 'config', adapters: ['etcd'], unit: 'ops/s', requires, bar: BAR, setup: (ctx) => pair(ctx, 'get', 100) },
  { kind: 'pair', name: 'etcd config put (1 at a time)', group: 'config', adapters: ['etcd'], unit: 'ops/s', requires, bar: BAR, setup: (ctx) => pair(ctx, 'put', 1) },
  { kind: 'pair', name: 'etcd config put (100 in flight)', group: 'config', adapters: ['etcd'], unit: 'ops/s', requires, bar: BAR, setup: (ctx) => pair(ctx, 'put', 100) },
  {
    kind: 'measure',
    name: 'etcd config watch latency',
    group: 'config',
    adapters: ['etcd'],
    requires,
    async measure(ctx) {
      const s = await open(ctx);
      const abort = new AbortController();
      const ours = new LatencyProbe();
      const theirs = new LatencyProbe();
      // The watch starts after this write's revision (one started "now" is established asynchronously).
      const { revision } = await s.store.put('watch/key', { counter: -1 });
      const loop = (async () => {
        for await (const ev of s.store.watch('watch/', { afterRevision: revision, signal: abort.signal })) {
          if (ev.type === 'put') ours.arrived((ev.value as { counter: number }).counter);
        }
      })();
      const watcher = await s.client.watch().prefix(`${s.rawPrefix}watch/`).create();
      watcher.on('put', (kv) => theirs.arrived((JSON.parse(kv.value.toString()) as { counter: number }).counter));
      const rounds = ctx.quick ? 4 : 10;
      const perRound = ctx.quick ? 50 : 100;
      const a: number[] = [];
      const b: number[] = [];
      let counter = 0;
      try {
        const sampleOurs = async (): Promise<void> => {
          for (let i = 0; i < perRound; i++) {
            const c = counter++;
            a.push(await ours.sample(c, () => s.store.put('watch/key', { counter: c })));
          }
        };
        const sampleTheirs = async (): Promise<void> => {
          for (let i = 0; i < perRound; i++) {
            const c = counter++;
            b.push(await theirs.sample(c, () => rawPut(s, 'watch/key', { counter: c })));
          }
        };
        // Which side goes first alternates by round, as in the pair benchmarks.
        await alternating(rounds, sampleOurs, sampleTheirs);
      } finally {
        abort.abort();
        await watcher.cancel();
        await loop.catch(() => undefined);
        await s.close();
      }
      const note = `${a.length} sequential puts per side, each timed from the put call until the watch delivers its event (includes the put's round trip).`;
      const figure = (name: string, p: number): Figure => ({
        name,
        unit: 'ms',
        higherIsBetter: false,
        stowage: stats([percentile(a, p)]),
        stowageLabel: 'stowage etcd:// watch',
        baseline: { label: 'etcd3 watcher', stats: stats([percentile(b, p)]) },
        note,
      });
      return [figure('etcd config watch latency p50', 50), figure('etcd config watch latency p99', 99)];
    },
  },
];
