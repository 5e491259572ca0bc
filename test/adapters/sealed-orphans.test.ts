/**
 * Sealed values that no version points to (left by a crash between a value's write and its version's) are
 * swept once older than the grace, and a sweep never takes the value of a writer still in flight. Run over
 * each config driver the sealed schemes wrap: mem://, file:// and etcd://.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdConfigDriver } from '../../src/adapters/etcd/config-driver.js';
import { etcdOptionsFromUrl } from '../../src/adapters/etcd/connection.js';
import { FileConfigDriver } from '../../src/adapters/file/config-driver.js';
import { MemoryConfigDriver } from '../../src/adapters/memory/config-driver.js';
import { DEFAULT_ORPHAN_GRACE_MS, SealedSecretsDriver, type SealedSecretsOptions } from '../../src/adapters/sealed/index.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { parseUrl } from '../../src/driver/url.js';
import type { JsonValue } from '../../src/ports/common.js';
import type { ConfigDriver } from '../../src/ports/config.js';
import type { SecretStore } from '../../src/ports/secrets.js';
import { rejectsWith } from '../../src/testing/harness.js';
import { serviceSuite } from '../support/services.js';

const GRACE = DEFAULT_ORPHAN_GRACE_MS;
const cheap = { N: 1024, r: 8, p: 1 };
const MASTER = Buffer.from('sealed-orphans-master-key-0123456789');
const signal = (): AbortSignal => AbortSignal.timeout(10_000);

/** A clock the test moves by hand. */
class Clock {
  now = Date.parse('2030-01-01T00:00:00Z');
  readonly read = (): number => this.now;
}

async function open(inner: ConfigDriver, options: SealedSecretsOptions): Promise<SecretStore> {
  return createSecretStore(await SealedSecretsDriver.open('x+sealed', inner, MASTER, signal(), cheap, options));
}

interface Hooks {
  beforePut?: (key: string) => Promise<void> | void;
  afterPut?: (key: string) => Promise<void> | void;
  beforeDelete?: (key: string) => void;
  beforeList?: (prefix: string) => Promise<void> | void;
  afterList?: (prefix: string) => Promise<void> | void;
}

/** `inner` with calls to run around its puts, deletes and lists; its `close` does nothing, so nodes can share it. */
function hooked(inner: ConfigDriver, hooks: Hooks): ConfigDriver {
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'close') return async () => undefined;
      if (prop === 'put') {
        return async (key: string, ...rest: unknown[]) => {
          await hooks.beforePut?.(key);
          const result = await (target.put as (...a: unknown[]) => Promise<unknown>).call(target, key, ...rest);
          await hooks.afterPut?.(key);
          return result;
        };
      }
      if (prop === 'delete') {
        return (key: string, ...rest: unknown[]) => {
          hooks.beforeDelete?.(key);
          return (target.delete as (...a: unknown[]) => Promise<unknown>).call(target, key, ...rest);
        };
      }
      if (prop === 'list') {
        return async (prefix: string, ...rest: unknown[]) => {
          await hooks.beforeList?.(prefix);
          const result = await (target.list as (...a: unknown[]) => Promise<unknown>).call(target, prefix, ...rest);
          await hooks.afterList?.(prefix);
          return result;
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** A hook that runs `fn` the first time it is called with `key`. */
function onceAt(key: string, fn: () => Promise<void> | void): (seen: string) => Promise<void> {
  let done = false;
  return async (seen) => {
    if (seen !== key || done) return;
    done = true;
    await fn();
  };
}

/** The keys of the sealed values stored for `name` (not for names below it). */
async function valueKeys(inner: ConfigDriver, name: string): Promise<string[]> {
  const { entries } = await inner.list(`d/${name}/`, undefined, signal());
  return entries.map((e) => e.key).filter((k) => !k.slice(`d/${name}/`.length).includes('/'));
}

/** The keys of the sealed values that `name`'s versions point to. */
async function referencedKeys(inner: ConfigDriver, name: string): Promise<string[]> {
  const meta = await inner.get(`m/${name}`, signal());
  const versions = (meta?.value as { versions: { id: string | null }[] } | undefined)?.versions ?? [];
  return versions.flatMap((v) => (v.id === null ? [] : [`d/${name}/${v.id}`]));
}

/** Stores a sealed-value record for `name` that no version points to, as a crashed writer leaves it. */
async function plantOrphan(inner: ConfigDriver, name: string, record: JsonValue): Promise<string> {
  const key = `d/${name}/${randomUUID()}`;
  await inner.put(key, record, { ifRevision: 0 }, signal());
  return key;
}

/** What a scenario gets: the config store, the shared clock, and sealed nodes over the store. */
interface Scenario {
  /** The config store underneath, for planting and inspecting sealed-value records. */
  readonly raw: ConfigDriver;
  readonly clock: Clock;
  /** Opens one more sealed node over `raw` on `clock`, with hooks around its config calls. */
  node(hooks?: Hooks): Promise<SecretStore>;
}

/** Runs `body` over a fresh config store from `openInner`, closing every node and the store after it. */
async function scenario(openInner: () => Promise<ConfigDriver>, body: (s: Scenario) => Promise<void>): Promise<void> {
  const raw = await openInner();
  const clock = new Clock();
  const nodes: SecretStore[] = [];
  const node = async (hooks: Hooks = {}): Promise<SecretStore> => {
    const store = await open(hooked(raw, hooks), { now: clock.read });
    nodes.push(store);
    return store;
  };
  try {
    await body({ raw, clock, node });
  } finally {
    for (const store of nodes) await store.close();
    await raw.close();
  }
}

function orphanSpecs(openInner: () => Promise<ConfigDriver>): void {
  const given = (body: (s: Scenario) => Promise<void>) => () => scenario(openInner, body);

  it(
    'deletes an unreferenced value written more than the grace ago at the next put of its name, keeping every version',
    given(async ({ raw, clock, node }) => {
      const store = await node();
      await store.put('s', 'one');
      const orphan = await plantOrphan(raw, 's', { s: 'AAAA', t: clock.now - GRACE - 1 });
      // A process sweeps a name at most once per quarter grace.
      clock.now += GRACE / 4;
      await store.put('s', 'two');
      expect(await valueKeys(raw, 's')).not.toContain(orphan);
      expect((await valueKeys(raw, 's')).sort()).toEqual((await referencedKeys(raw, 's')).sort());
      expect([(await store.get('s', { version: 1 })).value.reveal(), (await store.get('s')).value.reveal()]).toEqual(['one', 'two']);
    }),
  );

  it(
    'deletes unreferenced values past the grace when the whole secret is destroyed, also when it has no version',
    given(async ({ raw, clock, node }) => {
      const store = await node();
      await store.put('kept', 'v');
      await plantOrphan(raw, 'kept', { s: 'AAAA', t: clock.now - GRACE - 1 });
      // A crash in the very first put of a name leaves a value and no metadata at all.
      await plantOrphan(raw, 'never', { s: 'AAAA', t: clock.now - GRACE - 1 });
      await store.destroy('kept');
      await store.destroy('never');
      expect([...(await valueKeys(raw, 'kept')), ...(await valueKeys(raw, 'never'))]).toEqual([]);
    }),
  );

  it(
    'keeps an unreferenced value younger than the grace, and deletes it once the grace has passed',
    given(async ({ raw, clock, node }) => {
      const store = await node();
      const young = await plantOrphan(raw, 's', { s: 'AAAA', t: clock.now - GRACE + 1000 });
      await store.put('s', 'one');
      expect(await valueKeys(raw, 's')).toContain(young);
      clock.now += GRACE / 4;
      await store.put('s', 'two');
      expect(await valueKeys(raw, 's')).not.toContain(young);
    }),
  );

  it(
    'sweeps a name at most once per quarter grace in a process: a put sooner leaves an old orphan for a later one',
    given(async ({ raw, clock, node }) => {
      const store = await node();
      await store.put('s', 'one');
      const orphan = await plantOrphan(raw, 's', { s: 'AAAA', t: clock.now - GRACE - 1 });
      clock.now += GRACE / 4 - 1;
      await store.put('s', 'two');
      expect(await valueKeys(raw, 's')).toContain(orphan);
      // The quarter grace is per name: another name's first put sweeps it at once.
      const other = await plantOrphan(raw, 'other', { s: 'AAAA', t: clock.now - GRACE - 1 });
      await store.put('other', 'x');
      expect(await valueKeys(raw, 'other')).not.toContain(other);
      clock.now += 1;
      await store.put('s', 'three');
      expect(await valueKeys(raw, 's')).not.toContain(orphan);
    }),
  );

  it(
    'never sweeps the values of a name below the one written (a put of "a" leaves "a/b" alone)',
    given(async ({ clock, node }) => {
      const store = await node();
      await store.put('a/b', 'below');
      clock.now += 2 * GRACE;
      await store.put('a', 'above');
      await store.destroy('a');
      expect((await store.get('a/b')).value.reveal()).toBe('below');
    }),
  );

  it(
    'stamps an unreferenced value written without a time (older releases) and deletes it one grace later',
    given(async ({ raw, clock, node }) => {
      const store = await node();
      const legacy = await plantOrphan(raw, 's', { s: 'AAAA' });
      await store.put('s', 'one');
      expect((await raw.get(legacy, signal()))?.value).toEqual({ s: 'AAAA', t: clock.now });
      clock.now += GRACE + 1;
      await store.put('s', 'two');
      expect(await valueKeys(raw, 's')).not.toContain(legacy);
    }),
  );

  it(
    'reads a version whose sealed value was written without a time (older releases)',
    given(async ({ raw, node }) => {
      const store = await node();
      await store.put('s', 'old-format');
      const [key] = await valueKeys(raw, 's');
      const entry = await raw.get(key as string, signal());
      await raw.put(key as string, { s: (entry?.value as { s: string }).s }, {}, signal());
      expect((await store.get('s')).value.reveal()).toBe('old-format');
    }),
  );

  it(
    'replaces a value that aged past half the grace before its version was written with a fresh one',
    given(async ({ raw, clock, node }) => {
      const rival = await node();
      const written: string[] = [];
      // Another node appends a version first, and the retry comes more than half a grace later.
      const race = onceAt('m/s', async () => {
        await rival.put('s', 'rival');
        clock.now += GRACE / 2 + 1;
      });
      const store = await node({
        beforePut: async (key) => {
          if (key.startsWith('d/s/')) written.push(key);
          await race(key);
        },
      });
      expect((await store.put('s', 'mine')).version).toBe(2);
      expect(written).toHaveLength(2);
      const keys = await valueKeys(raw, 's');
      expect([keys.includes(written[0] as string), keys.includes(written[1] as string)]).toEqual([false, true]);
      expect((await store.get('s')).value.reveal()).toBe('mine');
    }),
  );

  it(
    'writes its value again when its version went in more than half the grace after its value (a paused writer)',
    given(async ({ clock, node }) => {
      const rival = await node();
      // The writer, which found no metadata, is paused past the grace before its create-only
      // compare-and-set. Meanwhile another node creates the secret and destroys it whole, and their sweeps
      // take the writer's value for an orphan; the metadata is absent again, so the writer's compare-and-set
      // succeeds.
      const store = await node({
        beforePut: onceAt('m/s', async () => {
          clock.now += GRACE + 1;
          await rival.put('s', 'rival');
          await rival.destroy('s');
        }),
      });
      expect((await store.put('s', 'paused')).version).toBe(1);
      expect((await store.get('s')).value.reveal()).toBe('paused');
    }),
  );

  it(
    'keeps a value published while a sweep stalled after its metadata read, however old it looks by then',
    given(async ({ clock, node }) => {
      const other = await node();
      // Between this node's metadata write and its sweep's list, another node publishes a version, and
      // then the sweeping process stalls past the grace.
      const store = await node({
        beforeList: onceAt('d/s/', async () => {
          await other.put('s', 'published');
          clock.now += GRACE + 1;
        }),
      });
      await store.put('s', 'first');
      expect((await other.get('s')).value.reveal()).toBe('published');
    }),
  );

  it(
    'does not let a sweep delete a value that its writer wrote again after the sweep listed it',
    given(async ({ clock, node }) => {
      let listed: () => void = () => undefined;
      const sweepListed = new Promise<void>((resolve) => {
        listed = resolve;
      });
      let resume: () => void = () => undefined;
      const writerDone = new Promise<void>((resolve) => {
        resume = resolve;
      });
      const sweeper = await node({
        afterList: async (prefix) => {
          if (prefix !== 'd/s/') return;
          listed();
          await writerDone;
        },
      });
      let destroy: Promise<void> | undefined;
      // The writer, which found no metadata, stalls past the grace before its compare-and-set; a destroy's
      // sweep lists its value as an old orphan and stalls in turn until the writer has written it again.
      const store = await node({
        beforePut: onceAt('m/s', async () => {
          clock.now += GRACE + 1;
          destroy = sweeper.destroy('s');
          await sweepListed;
        }),
      });
      await store.put('s', 'mine');
      resume();
      await destroy;
      expect((await store.get('s')).value.reveal()).toBe('mine');
    }),
  );

  /** Hooks that move the shared clock a quarter of the grace at every write of `m/hot`, won or lost. */
  const ageing = (clock: Clock): Hooks => ({
    beforePut: (key) => {
      if (key === 'm/hot') clock.now += GRACE / 4;
    },
    beforeDelete: (key) => {
      if (key === 'm/hot') clock.now += GRACE / 4;
    },
  });

  it(
    'keeps every version of 20 concurrent puts from 4 nodes readable while their sweeps run, and leaves no garbage',
    given(async ({ raw, clock, node }) => {
      // Under this contention values age past the grace, so they are replaced, written again and swept
      // during the burst, however fast or slow the machine is.
      let sweeps = 0;
      const hooks: Hooks = {
        ...ageing(clock),
        beforeList: (prefix) => {
          if (prefix === 'd/hot/') sweeps++;
        },
      };
      const nodes = await Promise.all(Array.from({ length: 4 }, () => node(hooks)));
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => nodes[i % 4]?.put('hot', `value-${i}`)));
      const versions = results.map((r) => r?.version);
      expect([...versions].sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      const read = await Promise.all(versions.map(async (version) => (await nodes[0]?.get('hot', { version }))?.value.reveal()));
      expect(read).toEqual(Array.from({ length: 20 }, (_, i) => `value-${i}`));
      // Every node sweeps at its first put. Later puts sweep when a quarter grace passed since their node's
      // last sweep, which the ageing writes usually, not always, bring about: two puts of one node that
      // finish their compare-and-set with no write of m/hot between share one sweep (CI saw 19 of 20).
      expect(sweeps).toBeGreaterThanOrEqual(4);
      clock.now += 2 * GRACE;
      await nodes[1]?.put('hot', 'last');
      expect((await valueKeys(raw, 'hot')).sort()).toEqual((await referencedKeys(raw, 'hot')).sort());
    }),
  );

  it(
    'leaves no version without its value when puts from 4 nodes race whole destroys of the name',
    given(async ({ clock, node }) => {
      // Destroys take the metadata away, so a writer may find it absent, lose the race to another put and
      // a destroy, and still win its create-only compare-and-set.
      const nodes = await Promise.all(Array.from({ length: 4 }, () => node(ageing(clock))));
      const writes = Array.from({ length: 20 }, (_, i) => nodes[i % 4]?.put('hot', `value-${i}`));
      const destroys = Array.from({ length: 5 }, (_, i) => nodes[i % 4]?.destroy('hot'));
      await Promise.all([...writes, ...destroys]);
      await nodes[0]?.put('hot', 'last');
      const live = (await nodes[0]?.versions('hot'))?.filter((v) => !v.destroyed) ?? [];
      const read = await Promise.all(live.map(async ({ version }) => (await nodes[1]?.get('hot', { version }))?.value.reveal()));
      expect(read.every((value) => typeof value === 'string')).toBe(true);
      expect(read.at(-1)).toBe('last');
    }),
  );
}

describe('sealed secrets over mem://: unreferenced values', () => {
  orphanSpecs(async () => new MemoryConfigDriver());

  it('refuses an orphan grace that is not a positive integer of milliseconds', async () => {
    for (const orphanGraceMs of [0, -1, 1.5, Number.NaN]) {
      await rejectsWith(open(new MemoryConfigDriver(), { orphanGraceMs }), 'INVALID_ARGUMENT');
    }
  });
});

describe('sealed secrets over file://: unreferenced values', () => {
  let root = '';
  let n = 0;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-sealed-orphans-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  orphanSpecs(() => FileConfigDriver.open(join(root, `store-${++n}`, 'config.json')));
});

serviceSuite(
  'etcd',
  (svc) => {
    orphanSpecs(async () => EtcdConfigDriver.open(await etcdOptionsFromUrl(parseUrl(`${svc().url}/sealed-orphans-${randomUUID()}`))));
  },
  { title: 'sealed secrets over etcd://: unreferenced values' },
);
