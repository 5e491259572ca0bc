import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';
import { ZookeeperConfigDriver } from '../../src/adapters/zookeeper/config-driver.js';
import { zookeeperOptionsFromUrl } from '../../src/adapters/zookeeper/connection.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { parseUrl } from '../../src/driver/url.js';
import type { ConfigEvent, ConfigStore } from '../../src/ports/config.js';
import { StowageError } from '../../src/ports/errors.js';
import { eventually } from '../../src/testing/harness.js';
import { serviceSuite } from '../support/services.js';

const DEADLINE_MS = 2000;

async function openAt(url: string, defaultTimeoutMs = 5000): Promise<ConfigStore> {
  return createConfigStore(await ZookeeperConfigDriver.open(zookeeperOptionsFromUrl(parseUrl(url))), { defaultTimeoutMs });
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

/** Retries `call` while the server is away (UNAVAILABLE or TIMEOUT), for up to 30 s. */
async function whenBack<T>(call: () => Promise<T>): Promise<T> {
  let result: T | undefined;
  await eventually(
    async () => {
      try {
        result = await call();
        return true;
      } catch (err) {
        if (StowageError.is(err, 'UNAVAILABLE') || StowageError.is(err, 'TIMEOUT')) return false;
        throw err;
      }
    },
    'ZooKeeper answers again',
    30_000,
    100,
  );
  return result as T;
}

describe('zookeeper:// URL options', () => {
  it('reads hosts, the chroot and the parameters; /stowage when no chroot is given', () => {
    const c = zookeeperOptionsFromUrl(parseUrl('zookeeper://10.0.0.1:2181,10.0.0.2/my/app/?sessionTimeoutMs=5000&history=500'));
    assert.equal(c.connectString, '10.0.0.1:2181,10.0.0.2:2181');
    assert.equal(c.root, '/my/app');
    assert.equal(c.sessionTimeoutMs, 5000);
    assert.equal(c.history, 500);
    assert.equal(zookeeperOptionsFromUrl(parseUrl('zookeeper://h')).root, '/stowage');
  });

  it('credentials and out-of-range parameters give INVALID_ARGUMENT without the password', () => {
    const err = (() => {
      try {
        zookeeperOptionsFromUrl(parseUrl('zookeeper://u:hunter22@h:2181/app'));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(StowageError.is(err, 'INVALID_ARGUMENT'), String(err));
    assert.ok(!String((err as Error).message).includes('hunter22'));
    assert.throws(() => zookeeperOptionsFromUrl(parseUrl('zookeeper://h/app?history=5')), (e: unknown) => StowageError.is(e, 'INVALID_ARGUMENT'));
  });
});

serviceSuite(
  'zookeeper',
  (svc) => {
    const url = (extra = ''): string => `${svc().url}/zk-${randomUUID()}${extra}`;

    it('a call to a frozen ZooKeeper is TIMEOUT or UNAVAILABLE within its deadline, and the store recovers', async () => {
      const store = await openAt(url(), DEADLINE_MS);
      try {
        const first = await store.put('k', 1);
        await svc().pause();
        const started = Date.now();
        try {
          const err = await store.put('k', 2).then(
            () => undefined,
            (e: unknown) => e,
          );
          assert.ok(StowageError.is(err), `expected a StowageError, got ${String(err)}`);
          assert.ok(['TIMEOUT', 'UNAVAILABLE'].includes(err.code), err.code);
          assert.ok(Date.now() - started < DEADLINE_MS + 1000, `failed after ${Date.now() - started} ms`);
        } finally {
          svc().resume();
        }
        // 1, or 2 if the thawed server took the timed-out put.
        const after = await whenBack(() => store.get('k'));
        assert.ok([1, 2].includes(after?.value as number));
        assert.ok((await store.put('k', 3)).revision > first.revision);
      } finally {
        await store.close();
      }
    }, 60_000);

    it('a server that takes the connection and never answers the handshake is left, and the store connects again', async () => {
      // What ZooKeeper 3.8 does to a client that connects while it starts (its worker thread throws before closing
      // the connection): here a proxy in front of the real server holds the first two connections open and silent.
      const target = new URL(svc().url.replace(/^zookeeper:/, 'http:'));
      const held: Socket[] = [];
      let dropped = 0;
      const proxy = createServer((socket) => {
        if (held.length < 2) {
          held.push(socket);
          socket.resume(); // read and discard the session request, so the client's close shows
          socket.once('end', () => dropped++);
          return;
        }
        const upstream = connect(Number(target.port), target.hostname);
        socket.pipe(upstream).pipe(socket);
        socket.on('error', () => upstream.destroy());
        upstream.on('error', () => socket.destroy());
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      const { port } = proxy.address() as AddressInfo;
      const store = await openAt(`zookeeper://127.0.0.1:${port}/zk-${randomUUID()}`, 1000);
      try {
        const { revision } = await whenBack(() => store.put('k', 1));
        assert.ok(revision > 0);
        assert.equal(held.length, 2, 'both silent connections were tried');
        assert.equal(dropped, 2, 'the client dropped each silent connection');
      } finally {
        await store.close();
        for (const socket of held) socket.destroy();
        proxy.close();
      }
    }, 60_000);

    it('a watch survives ZooKeeper stopping and starting mid-stream with no gap and no repeat, and nothing acknowledged is lost', async () => {
      const base = url();
      const store = await openAt(base);
      const { revision } = await store.put('seed', 0);
      const watch = collect(store, 'r/', revision);
      const written: number[] = [];
      for (let i = 0; i < 20; i++) written.push((await store.put(`r/k${i}`, i)).revision);
      await svc().stop();
      await svc().start();
      // Another client writes right after the restart, while the first may still be reconnecting.
      const writer = await openAt(base);
      for (let i = 20; i < 40; i++) written.push((await whenBack(() => writer.put(`r/k${i}`, i))).revision);
      await writer.close();
      await eventually(() => watch.events.length >= 40, `40 events (have ${watch.events.length}, errors ${watch.errors.map(String).join("; ")})`, 30_000, 50);
      watch.stop();
      assert.deepEqual(watch.errors, []);
      assert.deepEqual(watch.events.map((e) => e.revision), written);
      assert.deepEqual(watch.events.map((e) => (e.type === 'put' ? e.value : null)), Array.from({ length: 40 }, (_, i) => i));
      const { entries } = await store.list('r/');
      assert.equal(entries.length, 40, 'every acknowledged put is there after the restart');
      await store.close();
    }, 90_000);

    it('a write killed by a server restart mid-run is either there or reported failed: every acknowledged one survives', async () => {
      const base = url();
      const store = await openAt(base, 1000);
      const acked = new Map<string, number>();
      let stop = false;
      const writing = (async () => {
        for (let i = 0; !stop; i++) {
          try {
            await store.put(`w/${i}`, i);
            acked.set(`w/${i}`, i);
          } catch (err) {
            if (!StowageError.is(err, 'UNAVAILABLE') && !StowageError.is(err, 'TIMEOUT')) throw err;
          }
        }
      })();
      await eventually(() => acked.size >= 50, '50 acknowledged writes', 20_000, 10);
      await svc().kill();
      await svc().start();
      const before = acked.size;
      await eventually(() => acked.size >= before + 50, '50 more acknowledged writes after the restart', 30_000, 20);
      stop = true;
      await writing;
      const { entries } = await whenBack(() => store.list('w/'));
      const stored = new Map(entries.map((e) => [e.key, e.value]));
      for (const [key, value] of acked) assert.equal(stored.get(key), value, `acknowledged ${key}`);
      await store.close();
    }, 90_000);

    it('list under a steady stream of writes returns in time a snapshot that the watch from its revision completes exactly', async () => {
      const store = await openAt(url(), DEADLINE_MS);
      for (let round = 0; round < 5; round++) {
        let stop = false;
        let counter = 0;
        // Ten writers keep the store revision moving while the list reads 60 keys.
        const writing = Promise.all(
          Array.from({ length: 10 }, async () => {
            while (!stop) {
              const n = counter++;
              if (n % 7 === 0) await store.delete(`p/k${n % 60}`);
              else await store.put(`p/k${n % 60}`, n);
            }
          }),
        );
        await new Promise((r) => setTimeout(r, 100));
        const snapshot = await store.list('p/');
        const controller = new AbortController();
        const seen: ConfigEvent[] = [];
        const watching = (async () => {
          for await (const e of store.watch('p/', { afterRevision: snapshot.revision, signal: controller.signal })) seen.push(e);
        })();
        await new Promise((r) => setTimeout(r, 100));
        stop = true;
        await writing;
        const { revision: marker } = await store.put('p/marker', round);
        await eventually(() => seen.some((e) => e.revision === marker), 'the marker event', 10_000, 10);
        controller.abort();
        await watching;
        const state = new Map(snapshot.entries.map((e) => [e.key, e.value]));
        for (const e of seen) {
          assert.ok(e.revision > snapshot.revision, 'no event at or before the snapshot');
          if (e.type === 'put') state.set(e.key, e.value);
          else state.delete(e.key);
        }
        const truth = await store.list('p/');
        assert.deepEqual(state, new Map(truth.entries.map((e) => [e.key, e.value])), `round ${round}`);
        await store.delete('p/marker');
      }
      await store.close();
    }, 90_000);

    it('of concurrent compare-and-set updates of a key written once, exactly one wins', async () => {
      const store = await openAt(url());
      for (let round = 0; round < 10; round++) {
        // Written once: the znode's version is 0, which the client library's transactions read as "any".
        const { revision } = await store.put(`cas/k${round}`, 'first');
        const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => store.put(`cas/k${round}`, i, { ifRevision: revision })));
        const won = results.filter((r) => r.status === 'fulfilled');
        assert.equal(won.length, 1, `round ${round}: ${won.length} of 6 won`);
        for (const r of results) if (r.status === 'rejected') assert.ok(StowageError.is(r.reason, 'CONFLICT'), String(r.reason));
      }
      await store.close();
    }, 60_000);

    it('a watch from a revision older than the change log keeps gives COMPACTED', async () => {
      const store = await openAt(url('?history=100'));
      const { revision } = await store.put('c/first', 0);
      for (let batch = 0; batch < 300; batch += 50) await Promise.all(Array.from({ length: 50 }, (_, i) => store.put(`c/k${batch + i}`, i)));
      // Trimming runs in the background after every 64th log entry.
      await new Promise((r) => setTimeout(r, 500));
      const iterator = store.watch('c/', { afterRevision: revision })[Symbol.asyncIterator]();
      const err = await iterator.next().then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(StowageError.is(err, 'COMPACTED'), String(err));
      // From a recent snapshot the watch works.
      const snapshot = await store.list('c/');
      const fresh = collect(store, 'c/', snapshot.revision);
      const { revision: last } = await store.put('c/after', 1);
      await eventually(() => fresh.events.some((e) => e.revision === last), 'the change after the snapshot', 5000, 20);
      fresh.stop();
      assert.deepEqual(fresh.errors, []);
      await store.close();
    }, 60_000);

    it('a lease signals loss within one TTL of its last successful keep-alive when ZooKeeper stops answering', async () => {
      const store = await openAt(url());
      const ttlMs = 2000;
      const lease = await store.lease(ttlMs);
      await store.put('l/key', 1, { lease: lease.id });
      await new Promise((r) => setTimeout(r, 800));
      await svc().pause();
      try {
        await eventually(() => lease.lost.aborted, 'lease.lost aborted within one TTL', ttlMs + 250, 10);
        assert.ok(StowageError.is(lease.lost.reason, 'UNAVAILABLE'), String(lease.lost.reason));
      } finally {
        svc().resume();
      }
      await eventually(async () => (await store.get('l/key')) === undefined, 'leased key gone after loss', 15_000, 100);
      await store.close();
    }, 60_000);

    it('a key bound to a lease and then written without one is no longer bound to it', async () => {
      const store = await openAt(url());
      const lease = await store.lease(10_000);
      await store.put('b/key', 1, { lease: lease.id });
      await store.put('b/key', 2);
      assert.equal((await store.get('b/key'))?.lease, undefined);
      await lease.revoke();
      assert.equal((await store.get('b/key'))?.value, 2);
      await store.close();
    }, 30_000);

    it("a node killed with SIGKILL disappears from every other node's registry view within its TTL", async () => {
      const base = url();
      const name = 'api';
      const ttlMs = 2000;
      const child = fileURLToPath(new URL('./fixtures/zookeeper-registry-child.ts', import.meta.url));
      const views = new Map<string, string[]>();
      const procs = new Map<string, ChildProcess>();
      for (const id of ['n1', 'n2', 'n3']) {
        const proc = spawn(process.execPath, ['--import', 'tsx', child, base, name, id, String(ttlMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
        procs.set(id, proc);
        let buffer = '';
        proc.stdout?.on('data', (d: Buffer) => {
          buffer += d.toString();
          const lines = buffer.split('\n');
          buffer = lines.pop() ?? '';
          for (const line of lines) if (line.trim() !== '') views.set(id, JSON.parse(line) as string[]);
        });
      }
      try {
        await eventually(() => ['n1', 'n2', 'n3'].every((id) => views.get(id)?.join() === 'n1,n2,n3'), 'every node sees all three', 90_000, 50);
        procs.get('n3')?.kill('SIGKILL');
        // ZooKeeper expires the session one timeout after its last ping (checked every tick); the rest of the
        // allowance is for the reaper's log entry to reach two processes on a loaded machine.
        await eventually(() => ['n1', 'n2'].every((id) => views.get(id)?.join() === 'n1,n2'), 'n3 gone from n1 and n2', ttlMs + 2000, 20);
      } finally {
        for (const proc of procs.values()) proc.kill('SIGKILL');
      }
    }, 150_000);
  },
  { managed: true, title: 'zookeeper server (managed)' },
);
