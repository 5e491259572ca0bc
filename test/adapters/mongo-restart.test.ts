/**
 * `mongodb://` across a server killed with SIGKILL and started again on the same port: the store's calls fail
 * with a StowageError while it is down and work again once it is back, with every acknowledged write kept.
 */
import { expect, it } from 'vitest';
import { mongoDocumentsScheme } from '../../src/adapters/mongo/index.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';
import { parseUrl } from '../../src/driver/url.js';
import { StowageError } from '../../src/ports/errors.js';
import { serviceSuite } from '../support/services.js';

const context = {
  dataDir: '/nonexistent',
  env: {},
  logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
  openDriver: () => Promise.reject(new Error('not used')),
};

serviceSuite(
  'mongodb',
  (svc) => {
    it('writes again after the server is killed and restarted, and keeps every acknowledged write', async () => {
      const url = new URL(svc().url);
      url.pathname = `/stowage_restart_${process.pid}`;
      const store = createDocumentStore(await mongoDocumentsScheme.open(parseUrl(url.toString()), context), { defaultTimeoutMs: 2000 });
      try {
        const things = await store.collection<{ n: number }>('things', { indexes: [{ name: 'by_n', fields: ['n'] }] });
        for (let n = 0; n < 50; n++) await things.put(`d${n}`, { n });
        await svc().kill();
        const down = await things.get('d1').catch((err: unknown) => err);
        expect(StowageError.is(down) && ['UNAVAILABLE', 'TIMEOUT'].includes(down.code), `got ${String(down)}`).toBe(true);
        await svc().start();
        const started = Date.now();
        let written = false;
        while (!written && Date.now() - started < 30_000) {
          written = await things.put('after', { n: 50 }).then(
            () => true,
            () => false,
          );
          if (!written) await new Promise((r) => setTimeout(r, 250));
        }
        expect(written).toBe(true);
        // A collection declared again (an index call) and a filtered count work on the restarted server too.
        const again = await store.collection<{ n: number }>('things', { indexes: [{ name: 'by_n', fields: ['n'] }] });
        expect(await again.count({ n: { $gte: 0 } })).toBe(51);
      } finally {
        await store.close();
      }
    }, 90_000);
  },
  { managed: true, title: 'mongodb server (managed): restart' },
);
