/**
 * `postgres://` URLs become `pg` pools with the same parameter conventions as the other adapters, and `pg`
 * errors become StowageErrors with stable codes and no password in them.
 */
import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { mapPostgresError, openPostgresPool, StatementCache } from '../../src/adapters/postgres/connection.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';
import type { DocumentsDriver } from '../../src/ports/documents.js';
import { parseUrl } from '../../src/driver/url.js';
import { createDefaultRegistry } from '../../src/schemes.js';
import { freePort, serviceSuite } from '../support/services.js';
import { expectLocksOutsideThePool } from '../support/lock-pools.js';

const backend = 'test (postgres)';

describe('postgres:// URLs', () => {
  it.each([
    ['postgres://a:5432,b:5432/db', /exactly one host/],
    ['postgres://h/db?tablePrefix=Bad-Prefix', /tablePrefix/],
    ['postgres://h/db?caFile=/x', /need tls=true/],
    ['postgres://h/db?tls=true&certFile=/x', /go together/],
    ['postgres://h/db?poolSize=0', /poolSize/],
    ['postgres://h/bad%20name', /database/],
  ])('refuses %s as INVALID_ARGUMENT', async (url, message) => {
    await expect(openPostgresPool(url, { backend })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) });
  });

  it('reads the password from passwordFile and refuses it in both places', async () => {
    await expect(openPostgresPool('postgres://u:pw@h/db?passwordFile=/nonexistent', { backend })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(openPostgresPool('postgres://u@h/db?passwordFile=/nonexistent/pw', { backend })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });

  it('an unreachable server is UNAVAILABLE, and the password is in no message', async () => {
    const port = await freePort();
    const conn = await openPostgresPool(parseUrl(`postgres://u:hunter2secret@127.0.0.1:${port}/db`), { backend });
    try {
      const err = await conn.pool.query('SELECT 1').then(() => undefined, (e: unknown) => conn.mapError(e));
      expect(err?.code).toBe('UNAVAILABLE');
      expect(JSON.stringify({ m: err?.message, c: String(err?.cause) })).not.toContain('hunter2secret');
    } finally {
      await conn.end();
    }
  });

  it('maps SQLSTATEs and pg\'s own errors to stable codes', () => {
    const codeOf = (raw: object) => mapPostgresError(Object.assign(new Error('x'), raw), { backend, operation: 'op' })?.code;
    expect(codeOf({ code: '23505' })).toBe('CONFLICT');
    expect(codeOf({ code: '57014' })).toBe('TIMEOUT');
    expect(codeOf({ code: '08006' })).toBe('UNAVAILABLE');
    expect(codeOf({ code: '57P01' })).toBe('UNAVAILABLE');
    expect(codeOf({ code: '28P01' })).toBe('PERMISSION_DENIED');
    expect(codeOf({ code: '53100' })).toBe('RESOURCE_EXHAUSTED');
    expect(codeOf({ code: 'ECONNRESET' })).toBe('UNAVAILABLE');
    expect(mapPostgresError(new Error('Connection terminated unexpectedly'), { backend, operation: 'op' })?.code).toBe('UNAVAILABLE');
    expect(mapPostgresError(new Error('Query read timeout'), { backend, operation: 'op' })?.code).toBe('TIMEOUT');
    expect(mapPostgresError(new Error('Cannot use a pool after calling end on the pool'), { backend, operation: 'op' })?.code).toBe('CLOSED');
    const scrubbed = mapPostgresError(Object.assign(new Error('auth failed for hunter2secret'), { code: '28P01' }), { backend, operation: 'op', secrets: ['hunter2secret'] });
    expect(scrubbed?.code).toBe('PERMISSION_DENIED');
    expect(scrubbed?.message).not.toContain('hunter2secret');
    expect(mapPostgresError(new Error('not from pg'), { backend })).toBeUndefined();
  });

  it('maps corruption, an untrusted server certificate and contention as the port asks', () => {
    const codeOf = (raw: object, contention?: 'CONFLICT' | 'UNAVAILABLE') =>
      mapPostgresError(Object.assign(new Error('x'), raw), { backend, ...(contention ? { contention } : {}) })?.code;
    expect(codeOf({ code: 'XX001' })).toBe('CORRUPTED');
    expect(codeOf({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' })).toBe('PERMISSION_DENIED');
    expect(codeOf({ code: 'SELF_SIGNED_CERT_IN_CHAIN' })).toBe('PERMISSION_DENIED');
    expect(codeOf({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })).toBe('PERMISSION_DENIED');
    expect(codeOf({ code: '40P01' })).toBe('CONFLICT');
    expect(codeOf({ code: '40001' }, 'UNAVAILABLE')).toBe('UNAVAILABLE');
    expect(mapPostgresError(new Error('The server does not support SSL connections'), { backend })?.code).toBe('UNAVAILABLE');
  });
});

describe('StatementCache', () => {
  it('names a text the second time it runs, up to its bound, and never a text over its length limit', () => {
    const made: string[] = [];
    const cache = new StatementCache(
      (key) => {
        made.push(key);
        return key.toUpperCase();
      },
      { max: 2, maxText: 10 },
    );
    expect(cache.of('select a')).toEqual({ text: 'SELECT A' });
    const named = cache.of('select a');
    expect(named).toMatchObject({ name: expect.stringMatching(/^stowage_[0-9a-f]{24}$/), text: 'SELECT A' });
    // Named once: the same statement, not made again.
    expect(cache.of('select a')).toBe(named);
    expect(made).toEqual(['select a', 'select a']);
    expect(cache.of('select b').name).toBeUndefined();
    expect(cache.of('select b').name).toMatch(/^stowage_/);
    // Full: a third text runs unnamed however often it comes.
    for (let i = 0; i < 3; i++) expect(cache.of('select c').name).toBeUndefined();
    expect(cache.size).toBe(2);
    const long = new StatementCache((key) => key, { maxText: 10 });
    for (let i = 0; i < 3; i++) expect(long.of('select 1234567890').name).toBeUndefined();
    expect(long.size).toBe(0);
  });
});

serviceSuite('postgres', (svc) => {
  it('locks hold no pooled connection: a pool of 2 builds 4 collections\' indexes at once, a pool of 1 migrates', async () => {
    // Each build held an advisory lock on a pooled connection and took a second one from the pool for its
    // statements, so as many concurrent builds (or migrations) as connections waited on each other until the
    // connect timeout.
    const registry = createDefaultRegistry();
    const context = { dataDir: '/nonexistent', env: {}, logger: { warn: () => undefined, info: () => undefined, debug: () => undefined } };
    let single: DocumentsDriver | undefined;
    const one = await expectLocksOutsideThePool(async (size) => {
      const driver = await registry.open('documents', `${svc().url}?tablePrefix=${size === 2 ? 'ix' : 'mg'}${process.pid}_&poolSize=${size}&connectTimeoutMs=3000`, context);
      if (size === 1) single = driver;
      return createDocumentStore(driver);
    });
    try {
      expect(await single?.migrationVersion('jobs', AbortSignal.timeout(5000))).toBe(1);
    } finally {
      await one.close();
    }
  });

  it('a find of a shape run twice is prepared once on its connection, and finds the same documents named or not', async () => {
    const registry = createDefaultRegistry();
    const context = { dataDir: '/nonexistent', env: {}, logger: { warn: () => undefined, info: () => undefined, debug: () => undefined } };
    const driver = await registry.open('documents', `${svc().url}?tablePrefix=sc${process.pid}_&poolSize=1`, context);
    const store = createDocumentStore(driver);
    try {
      const users = await store.collection('users', { indexes: [{ fields: ['team'] }] });
      await users.insertMany(Array.from({ length: 30 }, (_, i) => ({ team: `t${i % 3}`, n: i })));
      const runs = await Promise.all(['t0', 't1', 't2'].map((team) => users.find({ team }, { sort: { n: 1 }, limit: 5 })));
      expect(runs.map((page) => page.items.map((d) => d.data.n))).toEqual([
        [0, 3, 6, 9, 12],
        [1, 4, 7, 10, 13],
        [2, 5, 8, 11, 14],
      ]);
      // A one-off shape is not kept.
      expect(await users.count({ n: { $gte: 25 } })).toBe(5);
      // One connection: the pool's session is the one that ran the finds.
      const { rows } = await (driver.native?.() as pg.Pool).query<{ statement: string }>('SELECT statement FROM pg_prepared_statements');
      const finds = rows.filter((r) => r.statement.startsWith('SELECT id, version, data FROM') && r.statement.includes('ORDER BY'));
      expect(finds).toHaveLength(1);
      expect(rows.filter((r) => r.statement.startsWith('SELECT COUNT(*)'))).toHaveLength(0);
    } finally {
      await store.close();
    }
  });

  it('the default registry opens postgres:// and postgresql:// for config, documents and sealed secrets', async () => {
    const registry = createDefaultRegistry();
    const context = { dataDir: '/nonexistent', env: { STOWAGE_MASTER_KEY: 'a-master-key-for-this-test-0123456789' }, logger: { warn: () => undefined, info: () => undefined, debug: () => undefined } };
    for (const scheme of ['postgres', 'postgresql']) {
      const url = svc().url.replace(/^postgres:/, `${scheme}:`);
      const drivers = [
        await registry.open('documents', `${url}?tablePrefix=reg_`, context),
        await registry.open('config', `${url}?tablePrefix=reg_`, context),
        await registry.open('secrets', `${url.replace(/^(\w+):/, '$1+sealed:')}?tablePrefix=reg_s_`, context),
      ];
      for (const driver of drivers) {
        expect((await driver.ping(AbortSignal.timeout(5000))).serverVersion).toMatch(/PostgreSQL/);
        await driver.close();
      }
    }
  });

  it('a unique violation is CONFLICT and a statement past queryTimeoutMs is TIMEOUT', async () => {
    const conn = await openPostgresPool(`${svc().url}?queryTimeoutMs=300`, { backend });
    try {
      await conn.pool.query('CREATE TEMP TABLE IF NOT EXISTS t (k int primary key)');
      const client = await conn.pool.connect();
      try {
        await client.query('CREATE TEMP TABLE u (k int primary key)');
        await client.query('INSERT INTO u VALUES (1)');
        const dup = await client.query('INSERT INTO u VALUES (1)').then(() => undefined, (e: unknown) => conn.mapError(e));
        expect(dup?.code).toBe('CONFLICT');
      } finally {
        client.release();
      }
      const slow = await conn.pool.query('SELECT pg_sleep(5)').then(() => undefined, (e: unknown) => conn.mapError(e));
      expect(slow?.code).toBe('TIMEOUT');
      expect((await conn.pool.query<{ n: number }>('SELECT 1 AS n')).rows[0]?.n).toBe(1);
    } finally {
      await conn.end();
    }
  });

  it('tls=true against a server without TLS is UNAVAILABLE, saying so', async () => {
    const conn = await openPostgresPool(`${svc().url}?tls=true`, { backend });
    try {
      const err = await conn.pool.query('SELECT 1').then(() => undefined, (e: unknown) => conn.mapError(e));
      expect(err?.code).toBe('UNAVAILABLE');
      expect(err?.message).toMatch(/does not support SSL/);
    } finally {
      await conn.end();
    }
  });

  it('a database that does not exist is INVALID_ARGUMENT', async () => {
    const conn = await openPostgresPool(svc().url.replace(/\/postgres$/, '/no_such_db'), { backend });
    try {
      const err = await conn.pool.query('SELECT 1').then(() => undefined, (e: unknown) => conn.mapError(e));
      expect(err?.code).toBe('INVALID_ARGUMENT');
    } finally {
      await conn.end();
    }
  });

  it('an idle connection the server ends does not crash the process, and the pool goes on', async () => {
    const conn = await openPostgresPool(svc().url, { backend });
    const admin = await openPostgresPool(svc().url, { backend });
    try {
      const pid = (await conn.pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      await admin.pool.query('SELECT pg_terminate_backend($1)', [pid]);
      await new Promise((r) => setTimeout(r, 100));
      expect((await conn.pool.query<{ n: number }>('SELECT 2 AS n')).rows[0]?.n).toBe(2);
    } finally {
      await Promise.all([conn.end(), admin.end()]);
    }
  });
});
