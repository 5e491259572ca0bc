import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, it } from 'vitest';
import { EtcdConfigDriver } from '../../src/adapters/etcd/config-driver.js';
import { etcdOptionsFromUrl } from '../../src/adapters/etcd/connection.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { parseUrl } from '../../src/driver/url.js';
import type { ConfigEvent, ConfigStore } from '../../src/ports/config.js';
import { StowageError } from '../../src/ports/errors.js';
import { eventually, rejectsWith } from '../../src/testing/harness.js';
import { killedNodeLeavesRegistry, leaseLostWhenFrozen } from '../support/config-faults.js';
import { serviceSuite } from '../support/services.js';

const tmp = mkdtempSync(join(tmpdir(), 'stowage-etcd-url-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function openAt(url: string): Promise<ConfigStore> {
  return createConfigStore(await EtcdConfigDriver.open(await etcdOptionsFromUrl(parseUrl(url))), { defaultTimeoutMs: 5000 });
}

function collect(store: ConfigStore, prefix: string, afterRevision: number): { events: ConfigEvent[]; errors: unknown[]; stop: () => void } {
  const events: ConfigEvent[] = [];
  const errors: unknown[] = [];
  const controller = new AbortController();
  void (async () => {
    for await (const e of store.watch(prefix, { afterRevision, signal: controller.signal })) events.push(e);
  })().catch((err: unknown) => errors.push(err));
  return { events, errors, stop: () => controller.abort() };
}

describe('etcd:// URL options', () => {
  it('reads hosts, prefix, user and the password from passwordFile', async () => {
    const file = join(tmp, 'pw');
    writeFileSync(file, 's3cret-pw\n');
    const c = await etcdOptionsFromUrl(parseUrl(`etcd://app@10.0.0.1:2379,10.0.0.2/my/app/?passwordFile=${file}`));
    assert.deepEqual(c.options.hosts, ['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
    assert.deepEqual(c.options.auth, { username: 'app', password: 's3cret-pw' });
    assert.equal(c.prefix, 'my/app/');
  });

  it('tls=true with caFile, certFile and keyFile gives https hosts and credentials', async () => {
    for (const name of ['ca.pem', 'cert.pem', 'key.pem']) writeFileSync(join(tmp, name), `${name}-bytes`);
    const c = await etcdOptionsFromUrl(
      parseUrl(`etcd://h:2379/p?tls=true&caFile=${join(tmp, 'ca.pem')}&certFile=${join(tmp, 'cert.pem')}&keyFile=${join(tmp, 'key.pem')}`),
    );
    assert.deepEqual(c.options.hosts, ['https://h:2379']);
    assert.equal(c.options.credentials?.rootCertificate.toString(), 'ca.pem-bytes');
    assert.equal(c.options.credentials?.certChain?.toString(), 'cert.pem-bytes');
    assert.equal(c.options.credentials?.privateKey?.toString(), 'key.pem-bytes');
  });

  it('inconsistent TLS and auth options give INVALID_ARGUMENT without the password', async () => {
    await rejectsWith(etcdOptionsFromUrl(parseUrl('etcd://h:2379?caFile=/x')), 'INVALID_ARGUMENT');
    await rejectsWith(etcdOptionsFromUrl(parseUrl('etcd://h:2379?tls=true&certFile=/x')), 'INVALID_ARGUMENT');
    await rejectsWith(etcdOptionsFromUrl(parseUrl('etcd://user@h:2379')), 'INVALID_ARGUMENT');
    const err = await rejectsWith(etcdOptionsFromUrl(parseUrl(`etcd://u:hunter22@h:2379?passwordFile=${join(tmp, 'pw')}`)), 'INVALID_ARGUMENT');
    assert.ok(!inspect(err).includes('hunter22'));
  });
});

serviceSuite('etcd', (svc) => {
  const url = (): string => `${svc().url}/t-${randomUUID()}`;

  it('a store on the root of the keyspace (no prefix) reads, lists and watches its keys', async () => {
    const store = await openAt(svc().url);
    const base = `root-${randomUUID()}/`;
    const { revision } = await store.put(`${base}a`, 1);
    assert.equal((await store.get(`${base}a`))?.key, `${base}a`);
    assert.deepEqual((await store.list(base)).entries.map((e) => e.key), [`${base}a`]);
    assert.ok((await store.list('')).entries.some((e) => e.key === `${base}a`), 'list("") of the root covers every key');
    const all = collect(store, '', revision - 1);
    await eventually(() => all.events.some((e) => e.key === `${base}a`), 'watch("") of the root');
    all.stop();
    const watch = collect(store, base, revision - 1);
    await eventually(() => watch.events.length === 1, 'watch from the root');
    watch.stop();
    assert.equal(watch.events[0]?.key, `${base}a`);
    await store.close();
  });

  it('a store under a prefix watches and lists all its keys with the empty prefix, and nothing outside it', async () => {
    const base = url();
    const store = await openAt(base);
    const outside = await openAt(`${base}-sibling`);
    const { revision } = await store.put('a', 1);
    const watch = collect(store, '', revision - 1);
    await outside.put('b', 2);
    await store.put('c/d', 3);
    await eventually(() => watch.events.length === 2, 'two events under the prefix');
    watch.stop();
    assert.deepEqual(watch.events.map((e) => e.key), ['a', 'c/d']);
    assert.deepEqual((await store.list('')).entries.map((e) => e.key), ['a', 'c/d']);
    await outside.close();
    await store.close();
  });

  it('put stores the JSON text core validated, taken when put() is called, and returns the mod revision of the write', async () => {
    const base = url();
    const store = await openAt(base);
    const driver = await EtcdConfigDriver.open(await etcdOptionsFromUrl(parseUrl(svc().url)));
    // Core then passes the caller's value uncopied: the driver stores core's text, never the value.
    assert.equal(driver.storesJson, true);
    const admin = driver.native();
    const value = { name: 'é ✓ \u{1F600}', list: [1, 2.5, null, true], nested: { deep: 'x' } };
    const pending = store.put('k', value);
    value.name = 'changed after the call';
    const { revision } = await pending;
    const kv = (await admin.get(`${base.slice(base.lastIndexOf('/') + 1)}/k`).exec()).kvs[0];
    assert.ok(kv, 'the key is in etcd under the store prefix');
    assert.equal(kv.value.toString('utf8'), '{"name":"é ✓ \u{1F600}","list":[1,2.5,null,true],"nested":{"deep":"x"}}');
    assert.equal(Number(kv.mod_revision), revision);
    assert.deepEqual((await store.get('k'))?.value, { name: 'é ✓ \u{1F600}', list: [1, 2.5, null, true], nested: { deep: 'x' } });
    // A conditional put goes through the same text path and is rejected with the key's real revision.
    await rejectsWith(store.put('k', 1, { ifRevision: revision - 1 }), 'CONFLICT');
    assert.equal((await store.put('k', [1], { ifRevision: revision })).revision > revision, true);
    // Bad input changes nothing.
    await rejectsWith(store.put('k', { bad: Number.NaN }), 'INVALID_ARGUMENT');
    assert.deepEqual((await store.get('k'))?.value, [1]);
    // A value written around Stowage that is not JSON reads as CORRUPTED, naming the key.
    await admin.put(`${base.slice(base.lastIndexOf('/') + 1)}/broken`).value('{not json').exec();
    const err = await rejectsWith(store.get('broken'), 'CORRUPTED');
    assert.match(err.message, /broken/);
    admin.close();
    await store.close();
  });

  it('a watch from a revision that etcd compacted gives COMPACTED, telling to resync with list()', async () => {
    const store = await openAt(url());
    const first = await store.put('c/a', 1);
    await store.put('c/a', 2);
    const latest = await store.put('c/a', 3);
    const client = (await EtcdConfigDriver.open(await etcdOptionsFromUrl(parseUrl(svc().url)))).native();
    await client.kv.compact({ revision: String(latest.revision) });
    client.close();
    const iterator = store.watch('c/', { afterRevision: first.revision - 1 })[Symbol.asyncIterator]();
    const err = await rejectsWith(iterator.next(), 'COMPACTED');
    assert.match(err.message, /list\(\)/);
    await store.close();
  });

  it('a watch survives etcd stopping and starting mid-stream with no gap and no repeat', async () => {
    const base = url();
    const store = await openAt(base);
    const { revision } = await store.put('seed', 0);
    const watch = collect(store, 'r/', revision);
    const written: number[] = [];
    for (let i = 0; i < 20; i++) written.push((await store.put(`r/k${i % 3}`, i)).revision);
    await svc().stop();
    await svc().start();
    // Another client writes right after the restart, while the watch may still be reconnecting.
    const writer = await openAt(base);
    for (let i = 20; i < 40; i++) {
      await eventually(async () => {
        try {
          written.push((await writer.put(`r/k${i % 3}`, i)).revision);
          return true;
        } catch (err) {
          if (StowageError.is(err, 'UNAVAILABLE') || StowageError.is(err, 'TIMEOUT')) return false;
          throw err;
        }
      }, 'etcd answers again', 20_000, 100);
    }
    await writer.close();
    await eventually(() => watch.events.length >= 40, `40 events (have ${watch.events.length})`, 30_000, 50);
    watch.stop();
    assert.deepEqual(watch.errors, []);
    assert.deepEqual(watch.events.map((e) => e.revision), written);
    assert.deepEqual(watch.events.map((e) => (e.type === 'put' ? e.value : null)), Array.from({ length: 40 }, (_, i) => i));
    await store.close();
  }, 90_000);

  it('a watch catching up on a long history resumes exactly where it was after etcd restarts', async () => {
    const base = url();
    const store = await openAt(base);
    const { revision } = await store.put('seed', 0);
    const written: number[] = [];
    for (let batch = 0; batch < 5000; batch += 100) {
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => store.put(`h/k${(batch + i) % 50}`, batch + i)));
      written.push(...results.map((r) => r.revision));
    }
    // etcd replays old history in batches of up to 1,000 revisions; stopping it after the first event leaves
    // the watch mid-replay, where etcd3's own resume point (the store's head) would skip the rest.
    const watch = collect(store, 'h/', revision);
    await eventually(() => watch.events.length > 0, 'first replayed event', 10_000, 1);
    await svc().stop();
    await svc().start();
    await eventually(() => watch.events.length >= 5000, `5000 events (have ${watch.events.length})`, 30_000, 50);
    watch.stop();
    assert.deepEqual(watch.errors, []);
    assert.deepEqual(watch.events.map((e) => e.revision), [...written].sort((a, b) => a - b));
    await store.close();
  }, 90_000);

  it('a lease signals loss within one TTL of its last successful keep-alive when etcd stops answering', async () => {
    const store = await openAt(url());
    await leaseLostWhenFrozen(store, svc());
    await store.close();
  }, 60_000);

  it('a node killed with SIGKILL disappears from every other node\'s registry view within its TTL', async () => {
    // etcd expires a lease at most one TTL after its last keep-alive and checks expiry every 500 ms.
    await killedNodeLeavesRegistry(new URL('./fixtures/registry-child.ts', import.meta.url), url());
  }, 150_000);
});

serviceSuite(
  'etcd',
  (svc) => {
    it('with auth enabled, user and password from the URL work; a wrong password gives PERMISSION_DENIED that never shows it', async (context) => {
      // Enabling auth changes the server for good: only on a server this test started.
      if (!svc().managed) context.skip('STOWAGE_TEST_ETCD_URL names a shared server; auth is not enabled on it');
      const admin = (await EtcdConfigDriver.open(await etcdOptionsFromUrl(parseUrl(svc().url)))).native();
      await admin.role('root').create();
      await admin.user('root').create('r00t-pw');
      await admin.user('root').addRole('root');
      await admin.auth.authEnable();
      admin.close();

      const good = await openAt(`etcd://root:r00t-pw@${svc().host}:${svc().port}/auth-${randomUUID()}`);
      await good.put('k', 1);
      assert.equal((await good.get('k'))?.value, 1);
      await good.close();

      const bad = await openAt(`etcd://root:wr0ng-canary-pw@${svc().host}:${svc().port}/auth`);
      const err = await rejectsWith(bad.put('k', 2, { timeoutMs: 5000 }), 'PERMISSION_DENIED');
      assert.ok(!inspect(err, { depth: 10 }).includes('wr0ng-canary-pw'), inspect(err));
      await bad.close();
    }, 60_000);
  },
  { title: 'etcd server with auth' },
);
