/**
 * `zookeeper://` config through the ConfigStore port against the raw `node-zookeeper-client` doing the same
 * work (issue 21: at least 0.95× raw, one at a time and 100 in flight).
 *
 * Same work: the raw get reads the znode, parses the JSON value and reads its revisions from the stat; the raw
 * put does what a revisioned, watchable write on ZooKeeper takes — read the znode's stat, then one transaction
 * of the versioned setData, a sequential change log entry and the revision znode's setData, whose stat gives
 * the write's zxid. (A bare `setData` is one round trip instead of two and keeps no history: not the same work.)
 * And, like the adapter, it keeps its change log bounded (see {@link rawTrim}): a log that only grows would fill
 * ZooKeeper's memory, which holds every znode.
 */
import { randomBytes } from 'node:crypto';
import zookeeper, { type Client, type Stat } from 'node-zookeeper-client';
import { createConfigStore } from '../src/core/config/config-store.js';
import type { ConfigStore } from '../src/ports/config.js';
import type { JsonValue } from '../src/ports/common.js';
import { openDriver } from './lib/adapters.js';
import { inFlight, type BenchContext, type Benchmark, type Pair } from './lib/benchmark.js';

const KEYS = 100;
const valueOf = (i: number): JsonValue => ({ enabled: i % 2 === 0, limit: 1000 + i, name: `setting ${i}` });

interface Sides {
  store: ConfigStore;
  client: Client;
  keys: string[];
  /** The raw side's root znode. */
  root: string;
  /** Set while the raw side trims its log. */
  trimming: boolean;
  close(): Promise<void>;
}

/** The adapter's defaults (`src/adapters/zookeeper/`): entries kept, and how often (in log sequence numbers) a write checks. */
const HISTORY = 10_000;
const TRIM_EVERY = 64;

const zxid = (b: Buffer): number => Number(b.readBigUInt64BE(0));

function cb<T>(run: (done: (err: unknown, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => run((err, value) => (err ? reject(err as Error) : resolve(value))));
}

async function open(ctx: BenchContext): Promise<Sides> {
  const svc = ctx.services.zookeeper;
  if (!svc) ctx.skip('zookeeper unavailable');
  const tag = randomBytes(4).toString('hex');
  const store = createConfigStore(await openDriver(ctx, 'zookeeper', 'config', `${svc.url}/bench-${tag}`));
  const client = zookeeper.createClient(`${svc.host}:${svc.port}`);
  await new Promise<void>((resolve) => {
    client.once('connected', () => resolve());
    client.connect();
  });
  const root = `/bench-raw-${tag}`;
  for (const path of [`${root}/kv`, `${root}/log`, `${root}/rev`]) await cb<string>((done) => client.mkdirp(path, done));
  const keys = Array.from({ length: KEYS }, (_, i) => `app/setting-${i}`);
  for (let i = 0; i < KEYS; i++) {
    await store.put(keys[i] as string, valueOf(i));
    await cb<string>((done) => client.create(`${root}/kv/${encodeURIComponent(keys[i] as string)}`, Buffer.from(JSON.stringify(valueOf(i))), done));
  }
  return {
    store,
    client,
    keys,
    root,
    trimming: false,
    async close() {
      await store.close();
      client.close();
    },
  };
}

async function rawGet(s: Sides, key: string): Promise<unknown> {
  const [data, stat] = await new Promise<[Buffer, Stat]>((resolve, reject) =>
    s.client.getData(`${s.root}/kv/${encodeURIComponent(key)}`, (err, d, st) => (err ? reject(err) : resolve([d, st]))),
  );
  return { key, value: JSON.parse(data.toString('utf8')) as unknown, revision: zxid(stat.mzxid), createRevision: zxid(stat.czxid) };
}

async function rawPut(s: Sides, key: string, value: JsonValue): Promise<number> {
  const path = `${s.root}/kv/${encodeURIComponent(key)}`;
  const text = JSON.stringify(value);
  const stat = await cb<Stat>((done) => s.client.exists(path, done));
  const results = await cb<{ stat?: Stat }[]>((done) =>
    s.client
      .transaction()
      .setData(path, Buffer.from(text), stat.version)
      .create(`${s.root}/log/e-`, Buffer.from(`${JSON.stringify({ t: 'p', k: key, c: zxid(stat.czxid) })}\n${text}`), zookeeper.CreateMode.PERSISTENT_SEQUENTIAL)
      .setData(`${s.root}/rev`, null, -1)
      .commit(done),
  );
  const logPath = (results[1] as { path?: string }).path ?? '';
  if (Number(logPath.slice(logPath.lastIndexOf('-') + 1)) % TRIM_EVERY === 0 && !s.trimming) {
    s.trimming = true;
    void rawTrim(s).finally(() => (s.trimming = false));
  }
  return zxid(results.at(-1)!.stat!.mzxid);
}

/**
 * The adapter's trim policy by hand: once the log holds a quarter more than {@link HISTORY} entries, list it,
 * record the newest removed entry's zxid in the log znode's data (what a watch checks for COMPACTED), and remove
 * the oldest in transactions of 500.
 */
async function rawTrim(s: Sides): Promise<void> {
  const log = `${s.root}/log`;
  const stat = await cb<Stat>((done) => s.client.exists(log, done));
  if (stat.numChildren <= HISTORY + HISTORY / 4) return;
  const names = (await cb<string[]>((done) => s.client.getChildren(log, done))).sort();
  const drop = names.slice(0, names.length - HISTORY);
  const newest = await cb<Stat>((done) => s.client.exists(`${log}/${drop.at(-1)!}`, done));
  await cb<Stat>((done) => s.client.setData(log, Buffer.from(String(zxid(newest.czxid))), -1, done));
  for (let i = 0; i < drop.length; i += 500) {
    const tx = s.client.transaction();
    for (const name of drop.slice(i, i + 500)) tx.remove(`${log}/${name}`, -1);
    await cb((done) => tx.commit(done));
  }
}

async function pair(ctx: BenchContext, op: 'get' | 'put', concurrency: number): Promise<Pair> {
  const s = await open(ctx);
  // In flight, each of the 100 keys has one writer at a time on both sides, so neither retries on a version.
  const key = (i: number): string => s.keys[i % KEYS] as string;
  const stowageOp = op === 'get' ? (i: number) => s.store.get(key(i)) : (i: number) => s.store.put(key(i), valueOf(i));
  const rawOp = op === 'get' ? (i: number) => rawGet(s, key(i)) : (i: number) => rawPut(s, key(i), valueOf(i));
  return {
    stowage: { label: 'stowage zookeeper://', run: (n) => inFlight(n, concurrency, stowageOp) },
    baseline: { label: 'node-zookeeper-client', run: (n) => inFlight(n, concurrency, rawOp) },
    teardown: () => s.close(),
  };
}

const BAR = { ratio: 0.95, source: 'issue 21' } as const;
const GET_NOTE = 'Both sides read the key\'s znode (getData) and build the entry from its data and stat; Stowage also validates the key and checks the znode\'s owner (a lease).';
const PUT_NOTE =
  'Both sides: exists, then one multi-op transaction (setData at the znode\'s version, a sequential change-log entry, setData of the revision znode). ' +
  'Both keep their change log bounded the same way: one old entry removed per write (in transactions of 500, after listing the log, once it has grown a quarter past 10,000 entries, the adapter\'s default history). ' +
  'Until 2026-12-07 the raw side never removed its entries: then, with 100 in flight, the adapter measured 0.92× with its default trim and 1.01× with history=1000000 (nothing trimmed during the run); the removes cost node-zookeeper-client\'s encoding and decoding of jute records, on both sides now.';
const requires = ['zookeeper'] as const;

/** The ZooKeeper config benchmarks. */
export const benchmarks: Benchmark[] = [
  { kind: 'pair', name: 'zookeeper config get (1 at a time)', group: 'config', adapters: ['zookeeper'], unit: 'ops/s', requires, bar: BAR, note: GET_NOTE, setup: (ctx) => pair(ctx, 'get', 1) },
  { kind: 'pair', name: 'zookeeper config get (100 in flight)', group: 'config', adapters: ['zookeeper'], unit: 'ops/s', requires, bar: BAR, note: GET_NOTE, setup: (ctx) => pair(ctx, 'get', 100) },
  { kind: 'pair', name: 'zookeeper config put (1 at a time)', group: 'config', adapters: ['zookeeper'], unit: 'ops/s', requires, bar: BAR, note: PUT_NOTE, setup: (ctx) => pair(ctx, 'put', 1) },
  { kind: 'pair', name: 'zookeeper config put (100 in flight)', group: 'config', adapters: ['zookeeper'], unit: 'ops/s', requires, bar: BAR, note: PUT_NOTE, setup: (ctx) => pair(ctx, 'put', 100) },
];
