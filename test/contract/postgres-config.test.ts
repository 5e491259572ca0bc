/**
 * The config contract and the postgres:// specifics against a PostgreSQL server: each store gets a table
 * prefix of its own.
 */
import { describe, expect, it } from 'vitest';
import { postgresConfigScheme } from '../../src/adapters/postgres/index.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { parseUrl } from '../../src/driver/url.js';
import { configContract } from '../../src/testing/config.js';
import type { ConfigEvent, ConfigStore } from '../../src/ports/config.js';
import { serviceSuite } from '../support/services.js';

const context = {
  dataDir: '/nonexistent',
  env: {},
  logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
  openDriver: () => Promise.reject(new Error('not used')),
};

serviceSuite('postgres', (svc) => {
  const run = Date.now().toString(36).slice(-5);
  let n = 0;
  const freshPrefix = () => `c${run}_${n++}_`;
  async function storeOn(prefix: string, extra = ''): Promise<ConfigStore> {
    return createConfigStore(await postgresConfigScheme.open(parseUrl(`${svc().url}?tablePrefix=${prefix}${extra}`), context));
  }

  configContract({ test: { describe, it }, name: 'postgres://', factory: () => storeOn(freshPrefix()) });

  describe('postgres:// config specifics', () => {
    it('a watch in another process sees every write of concurrent writers in revision order, without gaps', async () => {
      const prefix = freshPrefix();
      const [reader, a, b] = await Promise.all([storeOn(prefix), storeOn(prefix), storeOn(prefix)]);
      const { revision } = await reader.list('');
      // A gap would leave the watch waiting for an event it skipped: it is given 15 s.
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 15_000);
      const seen: ConfigEvent[] = [];
      const done = (async () => {
        for await (const ev of reader.watch('k/', { afterRevision: revision, signal: controller.signal })) {
          seen.push(ev);
          if (seen.length === 400) controller.abort();
        }
      })();
      await Promise.all([a, b].map((s, w) => Promise.all(Array.from({ length: 200 }, (_, i) => s.put(`k/${w}/${i}`, i)))));
      await done;
      clearTimeout(timer);
      const revisions = seen.map((e) => e.revision);
      expect(revisions).toEqual([...revisions].sort((x, y) => x - y));
      expect(seen).toHaveLength(400);
      expect(new Set(seen.map((e) => e.key)).size).toBe(400);
      await Promise.all([reader.close(), a.close(), b.close()]);
    }, 60_000);

    it('a watch that needs pruned history gets COMPACTED', async () => {
      const prefix = freshPrefix();
      const store = await storeOn(prefix, '&historyRevisions=10');
      const first = await store.put('h/0', 0);
      for (let i = 1; i < 40; i++) await store.put(`h/${i}`, i);
      // The sweep prunes within a second.
      await new Promise((r) => setTimeout(r, 1500));
      const iterator = store.watch('h/', { afterRevision: first.revision })[Symbol.asyncIterator]();
      await expect(iterator.next()).rejects.toMatchObject({ code: 'COMPACTED' });
      const { revision } = await store.list('h/');
      const resumed = store.watch('h/', { afterRevision: revision })[Symbol.asyncIterator]();
      const next = resumed.next();
      const write = await store.put('h/new', 1);
      expect((await next).value).toMatchObject({ key: 'h/new', revision: write.revision });
      await resumed.return?.();
      await store.close();
    }, 30_000);
  });
});
