/**
 * A frozen Vault or MongoDB-protocol server (SIGSTOP, as the cluster test freezes etcd, NATS, Redis and
 * MariaDB): a call fails with TIMEOUT or UNAVAILABLE within its deadline, and the same store works again once
 * the server runs (SIGCONT). A write that timed out has an unknown outcome (the thawed server may still read
 * it), so only its bounds are checked. The servers are the ones the harness builds (Vault 1.14.2, FerretDB
 * 1.24.2), managed so they can be paused.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { mongoDocumentsScheme } from '../../src/adapters/mongo/index.js';
import { vaultSecretsScheme } from '../../src/adapters/vault/index.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';
import { SchemeRegistry, type OpenContext } from '../../src/core/registry.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { parseUrl } from '../../src/driver/url.js';
import { StowageError } from '../../src/ports/errors.js';
import { serviceSuite, type Service } from '../support/services.js';

const logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };
const dataDir = mkdtempSync(join(tmpdir(), 'stowage-frozen-'));
const registry = new SchemeRegistry().register(vaultSecretsScheme);
const context: OpenContext = { dataDir, env: {}, logger, openDriver: () => Promise.reject(new Error('not used')) };
const DEADLINE_MS = 2000;

/** Runs `call` against the frozen server: it must fail with TIMEOUT or UNAVAILABLE, in time. */
async function failsWhileFrozen(service: Service, call: () => Promise<unknown>): Promise<void> {
  await service.pause();
  const started = Date.now();
  try {
    const err = await call().then(
      () => undefined,
      (e: unknown) => e,
    );
    const elapsed = Date.now() - started;
    expect(StowageError.is(err), `expected a StowageError, got ${String(err)}`).toBe(true);
    expect(['TIMEOUT', 'UNAVAILABLE']).toContain((err as StowageError).code);
    expect(elapsed).toBeLessThan(DEADLINE_MS + 1000);
  } finally {
    service.resume();
  }
}

serviceSuite(
  'vault',
  (svc) => {
    it('a call to a frozen Vault is TIMEOUT or UNAVAILABLE within its deadline, and the store recovers', async () => {
      const url = svc().url.replace('/secret?', `/secret/frozen-${randomUUID()}?`);
      const store = createSecretStore(await registry.open('secrets', url, { dataDir, env: svc().env, logger }), { defaultTimeoutMs: DEADLINE_MS });
      try {
        await store.put('k', 'v1');
        await failsWhileFrozen(svc(), () => store.put('k', 'v2'));
        // Version 1, or 2 if the thawed server took the timed-out put.
        expect([1, 2]).toContain((await store.get('k')).version);
        expect((await store.put('k', 'v3')).version).toBeGreaterThanOrEqual(2);
      } finally {
        await store.close();
      }
    }, 60_000);
  },
  { managed: true, title: 'vault server (managed)' },
);

serviceSuite(
  'mongodb',
  (svc) => {
    it('a call to a frozen MongoDB-protocol server is TIMEOUT or UNAVAILABLE within its deadline, and the store recovers', async () => {
      const parsed = new URL(svc().url);
      parsed.pathname = `/frozen_${randomUUID().slice(0, 8)}`;
      const store = createDocumentStore(await mongoDocumentsScheme.open(parseUrl(parsed.toString()), context), { defaultTimeoutMs: DEADLINE_MS });
      try {
        const col = await store.collection('items');
        await col.put('a', { n: 1 });
        await failsWhileFrozen(svc(), () => col.get('a'));
        expect((await col.get('a'))?.data).toEqual({ n: 1 });
        expect((await col.put('a', { n: 2 })).version).toBe(2);
      } finally {
        await store.close();
      }
    }, 60_000);

    it('a find abandoned at its deadline drops its connection, so the server stops the query', async () => {
      const parsed = new URL(svc().url);
      parsed.pathname = `/abandoned_${randomUUID().slice(0, 8)}`;
      const driver = await mongoDocumentsScheme.open(parseUrl(parsed.toString()), context);
      const store = createDocumentStore(driver, { defaultTimeoutMs: DEADLINE_MS });
      const closed: string[] = [];
      (driver as unknown as { native(): import('mongodb').MongoClient }).native().on('connectionClosed', (event) => closed.push(event.reason));
      try {
        const col = await store.collection('items');
        await col.put('a', { n: 1 });
        await svc().pause();
        try {
          await expect(col.find({ n: 1 }, { timeoutMs: 300 })).rejects.toMatchObject({ code: 'TIMEOUT' });
          // Without the signal the driver would wait on the socket until the server answered, and a real server
          // would run the query to its end for nobody.
          await expect.poll(() => closed.length, { timeout: 2000 }).toBeGreaterThan(0);
        } finally {
          svc().resume();
        }
        expect((await col.find({ n: 1 })).items.map((d) => d.id)).toEqual(['a']);
      } finally {
        await store.close();
      }
    }, 60_000);
  },
  { managed: true, title: 'mongodb server (managed)' },
);
