/**
 * postgres:// under faults, on a server this test manages: a frozen server (SIGSTOP) gives TIMEOUT or
 * UNAVAILABLE within the deadline and the stores recover; a lease's holder is told within one TTL; a server
 * restart in the middle of writes loses nothing acknowledged and a watch resumes without gaps; a node killed
 * with SIGKILL leaves every other node's service-registry view within its TTL.
 */
import { expect, it } from 'vitest';
import { postgresConfigScheme, postgresDocumentsScheme } from '../../src/adapters/postgres/index.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';
import { parseUrl } from '../../src/driver/url.js';
import type { ConfigEvent } from '../../src/ports/config.js';
import { StowageError } from '../../src/ports/errors.js';
import { eventually } from '../../src/testing/harness.js';
import { openContext as context } from '../support/adapters.js';
import { killedNodeLeavesRegistry, leaseLostWhenFrozen } from '../support/config-faults.js';
import { serviceSuite, type Service } from '../support/services.js';

const DEADLINE_MS = 2000;

/** Runs `call` against the frozen server: it must fail with TIMEOUT or UNAVAILABLE, in time. */
async function failsWhileFrozen(service: Service, what: string, call: () => Promise<unknown>): Promise<void> {
  await service.pause();
  const started = Date.now();
  try {
    const err = await call().then((r) => new Error(`answered ${JSON.stringify(r)}`), (e: unknown) => e);
    expect(StowageError.is(err), `${what}: expected a StowageError, got ${String(err)}`).toBe(true);
    expect(['TIMEOUT', 'UNAVAILABLE']).toContain((err as StowageError).code);
    expect(Date.now() - started).toBeLessThan(DEADLINE_MS + 1000);
  } finally {
    service.resume();
  }
}

serviceSuite(
  'postgres',
  (svc) => {
    let n = 0;
    const url = (extra = '') => `${svc().url}?tablePrefix=f${process.pid}_${n++}_${extra}`;

    it('a call to a frozen server is TIMEOUT or UNAVAILABLE within its deadline, and the stores recover', async () => {
      const docs = createDocumentStore(await postgresDocumentsScheme.open(parseUrl(url()), context), { defaultTimeoutMs: DEADLINE_MS });
      const config = createConfigStore(await postgresConfigScheme.open(parseUrl(url()), context), { defaultTimeoutMs: DEADLINE_MS });
      try {
        const col = await docs.collection('frozen');
        await col.insert({ a: 1 }, { id: 'x' });
        await config.put('k', 1);
        await failsWhileFrozen(svc(), 'get', () => col.get('x'));
        await failsWhileFrozen(svc(), 'put', () => config.put('k', 2));
        await failsWhileFrozen(svc(), 'health', async () => {
          const health = await docs.health();
          if (!health.ok) throw health.error;
          return health;
        });
        expect((await col.get('x'))?.data).toEqual({ a: 1 });
        // 1, or 2 if the thawed server took the timed-out put.
        expect([1, 2]).toContain((await config.get('k'))?.value);
        expect((await config.put('k', 3)).revision).toBeGreaterThan(0);
      } finally {
        await Promise.all([docs.close(), config.close()]);
      }
    }, 60_000);

    it('a lease whose server freezes is signalled lost within one TTL', async () => {
      const config = createConfigStore(await postgresConfigScheme.open(parseUrl(url()), context));
      await leaseLostWhenFrozen(config, svc());
      await config.close();
    }, 60_000);

    it('a server restart mid-run loses no acknowledged write, and a watch resumes without gaps or repeats', async () => {
      const prefix = url();
      const writer = createConfigStore(await postgresConfigScheme.open(parseUrl(prefix), context), { defaultTimeoutMs: 3000 });
      const reader = createConfigStore(await postgresConfigScheme.open(parseUrl(prefix), context));
      const docs = createDocumentStore(await postgresDocumentsScheme.open(parseUrl(prefix), context), { defaultTimeoutMs: 3000 });
      const col = await docs.collection('restart');
      const { revision } = await reader.list('');
      const controller = new AbortController();
      const seen: ConfigEvent[] = [];
      const watching = (async () => {
        for await (const ev of reader.watch('w/', { afterRevision: revision, signal: controller.signal })) seen.push(ev);
      })();
      const acked: number[] = [];
      const docsAcked: number[] = [];
      let stop = false;
      const writing = (async () => {
        for (let i = 0; !stop; i++) {
          try {
            await writer.put(`w/${i}`, i);
            acked.push(i);
          } catch {
            await new Promise((r) => setTimeout(r, 50));
          }
          try {
            await col.insert({ i }, { id: `d${i}` });
            docsAcked.push(i);
          } catch {
            // Unknown outcome: checked only for what was acknowledged.
          }
        }
      })();
      await eventually(() => acked.length >= 50, '50 writes before the restart', 30_000, 20);
      await svc().stop();
      await new Promise((r) => setTimeout(r, 500));
      await svc().start();
      const after = acked.length;
      await eventually(() => acked.length >= after + 50, '50 writes after the restart', 60_000, 50);
      stop = true;
      await writing;
      for (const i of acked) expect((await writer.get(`w/${i}`))?.value, `w/${i}`).toBe(i);
      expect(await col.count({ i: { $in: docsAcked } })).toBe(docsAcked.length);
      const { entries } = await reader.list('w/');
      await eventually(() => seen.length >= entries.length, 'the watch caught up', 30_000, 50);
      controller.abort();
      await watching;
      const revisions = seen.map((e) => e.revision);
      expect(revisions).toEqual([...new Set(revisions)].sort((a, b) => a - b));
      expect(seen.map((e) => e.key).sort()).toEqual(entries.map((e) => e.key).sort());
      await Promise.all([writer.close(), reader.close(), docs.close()]);
    }, 120_000);

    it('a node killed with SIGKILL disappears from every other node\'s registry view within its TTL', async () => {
      // The lease expires one TTL after its last keep-alive, and the sweep runs every 500 ms.
      await killedNodeLeavesRegistry(new URL('./fixtures/registry-child.ts', import.meta.url), url());
    }, 150_000);
  },
  { managed: true, title: 'postgres server (managed: frozen, restarted)' },
);
