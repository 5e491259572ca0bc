/**
 * `postgres://` URLs become `pg` pools with the same parameter conventions as the other adapters, and `pg`
 * errors become StowageErrors with stable codes and no password in them.
 */
import { describe, expect, it } from 'vitest';
import { mapPostgresError, openPostgresPool } from '../../src/adapters/postgres/connection.js';
import { parseUrl } from '../../src/driver/url.js';
import { createDefaultRegistry } from '../../src/schemes.js';
import { freePort, serviceSuite } from '../support/services.js';

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

serviceSuite('postgres', (svc) => {
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
