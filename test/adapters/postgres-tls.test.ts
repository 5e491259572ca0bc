/**
 * Every `postgres://` port (documents, config, queue — the queue's listening connection too) speaks TLS with
 * the same URL parameters, against a real PostgreSQL started with `ssl=on` and certificates made here with
 * `openssl`. The server refuses every unencrypted TCP connection, so a port that forgot TLS fails.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openPostgresPool } from '../../src/adapters/postgres/connection.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';
import { createQueue } from '../../src/core/queue/queue.js';
import type { Logger } from '../../src/core/registry.js';
import { createDefaultRegistry } from '../../src/schemes.js';
import { serviceSuite, skipReason } from '../support/services.js';

const backend = 'test (postgres)';
const quiet: Logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };
const context = { dataDir: '/nonexistent', env: {}, logger: quiet };
const PASSWORD = 'hunter2-tls-secret';
/** The user who logs in with a client certificate (the `cert` method checks its common name). */
const CERT_USER = 'stowage_cert';

/**
 * A CA; a server certificate for the name `db.stowage.test` only (so connecting to 127.0.0.1 passes
 * verify-ca and fails verify-full); a client certificate for {@link CERT_USER}; all EC P-256, one day.
 */
function makeCertificates(dir: string): void {
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=stowage-test-ca');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:db.stowage.test\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [['server', 'db.stowage.test'], ['client', CERT_USER]] as const) {
    ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
  }
}

describe('postgres:// TLS parameters', () => {
  it.each([
    ['sslmode=prefer', /falls back to an unencrypted connection/],
    ['sslmode=allow', /falls back to an unencrypted connection/],
    ['sslmode=bogus', /sslmode/],
    ['tls=true&sslmode=require', /not both/],
    ['sslmode=disable&caFile=/x', /need tls=true/],
  ])('refuses %s as INVALID_ARGUMENT', async (query, message) => {
    await expect(openPostgresPool(`postgres://h/db?${query}`, { backend })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) });
  });

  it('the queue takes the connection parameters of every postgres URL, and not tablePrefix', async () => {
    const registry = createDefaultRegistry();
    await expect(registry.check('queue', 'postgres://h/db?sslmode=verify-ca&caFile=/x&queryTimeoutMs=100')).resolves.toBeDefined();
    await expect(registry.check('queue', 'postgres://h/db?tablePrefix=x')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/tablePrefix/) });
  });
});

const hasOpenssl = spawnSync('which', ['openssl']).status === 0;
if (!hasOpenssl) {
  skipReason('postgres', 'openssl is not on PATH: no certificates for the TLS server');
} else {
  const dir = mkdtempSync(join(tmpdir(), 'stowage-postgres-tls-'));
  makeCertificates(dir);
  const file = (name: string): string => join(dir, name);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  serviceSuite(
    'postgres',
    (svc) => {
      /** The server's URL for `user` (a password that the server never asks for, to look for in errors). */
      const base = (user = 'postgres'): string => svc().url.replace('postgres://postgres@', `postgres://${user}:${PASSWORD}@`);
      const verified = `tls=true&caFile=${file('ca.crt')}`;
      const registry = createDefaultRegistry();

      /** The code of the first statement's error on a pool opened for `url`, and the error's whole text. */
      async function firstStatement(url: string): Promise<{ code: string | undefined; text: string }> {
        const conn = await openPostgresPool(url, { backend });
        try {
          await conn.pool.query('SELECT 1');
          return { code: undefined, text: '' };
        } catch (err) {
          const mapped = conn.mapError(err);
          return { code: mapped?.code, text: JSON.stringify({ m: mapped?.message, c: String(mapped?.cause) }) };
        } finally {
          await conn.end();
        }
      }

      it('the server refuses a URL without TLS, so every test below that connects did so over TLS', async () => {
        const { code, text } = await firstStatement(base());
        expect(code).toBe('PERMISSION_DENIED');
        expect(text).not.toContain(PASSWORD);
      });

      it('documents, config and the queue open, write and read with sslmode=verify-ca and caFile', async () => {
        const url = `${base()}?sslmode=verify-ca&caFile=${file('ca.crt')}`;
        const docs = createDocumentStore(await registry.open('documents', `${url}&tablePrefix=tls_`, context));
        const notes = await docs.collection('notes');
        const inserted = await notes.insert({ secure: true });
        expect((await notes.get(inserted.id))?.data).toEqual({ secure: true });
        await docs.close();

        const config = createConfigStore(await registry.open('config', `${url}&tablePrefix=tls_`, context));
        const { revision } = await config.put('k', { secure: true });
        expect((await config.get('k'))?.revision).toBe(revision);
        await config.close();

        // The consumer polls once a minute: the message reaches it within seconds only through the NOTIFY
        // heard on its listening connection, which must have connected over TLS as well.
        const publisher = createQueue(await registry.open('queue', `${url}&schema=tls_q`, context));
        const consumer = createQueue(await registry.open('queue', `${url}&schema=tls_q&pollMs=60000`, context));
        const deliveries = consumer.consume('jobs', 'workers')[Symbol.asyncIterator]();
        const first = deliveries.next();
        await new Promise((resolve) => setTimeout(resolve, 500));
        await publisher.publish('jobs', 'over tls');
        const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no delivery within 5 s')), 5_000).unref());
        const delivery = await Promise.race([first, timeout]);
        expect(delivery.done).toBe(false);
        expect(delivery.value?.text()).toBe('over tls');
        await delivery.value?.ack();
        await deliveries.return?.();
        await Promise.all([publisher.close(), consumer.close()]);
      }, 30_000);

      it('tls=true checks the host name: a certificate for another name is PERMISSION_DENIED, without the password', async () => {
        const { code, text } = await firstStatement(`${base()}?${verified}`);
        expect(code).toBe('PERMISSION_DENIED');
        expect(text).toMatch(/db\.stowage\.test|altname|Hostname/i);
        expect(text).not.toContain(PASSWORD);
        expect((await firstStatement(`${base()}?sslmode=verify-full&caFile=${file('ca.crt')}`)).code).toBe('PERMISSION_DENIED');
      });

      it('without caFile the self-signed chain is refused; sslmode=require encrypts without checking it', async () => {
        expect((await firstStatement(`${base()}?sslmode=verify-ca`)).code).toBe('PERMISSION_DENIED');
        expect((await firstStatement(`${base()}?sslmode=require`)).code).toBeUndefined();
        // As libpq: require with a CA file checks the chain, and this one is not the server's.
        expect((await firstStatement(`${base()}?sslmode=require&caFile=${file('client.crt')}`)).code).toBe('PERMISSION_DENIED');
      });

      it('the sessions are encrypted, as the server sees them', async () => {
        const conn = await openPostgresPool(`${base()}?sslmode=verify-ca&caFile=${file('ca.crt')}`, { backend });
        try {
          const r = await conn.pool.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
          expect(r.rows[0]?.ssl).toBe(true);
        } finally {
          await conn.end();
        }
      });

      it('certFile and keyFile log in as the certificate\'s user; without them that user is refused', async () => {
        const admin = await openPostgresPool(`${base()}?sslmode=require`, { backend });
        try {
          await admin.pool.query(`DROP ROLE IF EXISTS ${CERT_USER}`);
          await admin.pool.query(`CREATE ROLE ${CERT_USER} LOGIN`);
        } finally {
          await admin.end();
        }
        const url = `${base(CERT_USER).replace(`:${PASSWORD}@`, '@')}?sslmode=verify-ca&caFile=${file('ca.crt')}`;
        expect((await firstStatement(`${url}&certFile=${file('client.crt')}&keyFile=${file('client.key')}`)).code).toBeUndefined();
        const refused = await firstStatement(url);
        expect(refused.code).toBe('PERMISSION_DENIED');
        expect(refused.text).toMatch(/certificate/);
      });
    },
    {
      title: 'postgres server with TLS only',
      managed: true,
      postgresTls: { certFile: file('server.crt'), keyFile: file('server.key'), caFile: file('ca.crt'), clientCertUser: CERT_USER },
    },
  );
}
