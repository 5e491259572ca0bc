import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vaultSecretsScheme } from '../../src/adapters/vault/index.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { StowageError } from '../../src/ports/errors.js';
import type { SecretStore } from '../../src/ports/secrets.js';

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Every way an error could reach a log. */
function shown(err: unknown): string {
  const e = err as Error & { cause?: unknown };
  return [inspect(err, { depth: Infinity, showHidden: true }), String(err), e.stack ?? '', JSON.stringify(err), JSON.stringify(e.cause ?? null), inspect(e.cause, { depth: Infinity, showHidden: true })].join('\n');
}

async function errorsOfEveryCall(store: SecretStore, value: string): Promise<unknown[]> {
  const calls: Promise<unknown>[] = [
    store.get('app/db'),
    store.get('app/db', { version: 2 }),
    store.put('app/db', value),
    store.put('app/db', value, { ifVersion: 0 }),
    store.delete('app/db'),
    store.undelete('app/db', { versions: [1] }),
    store.destroy('app/db', { versions: [1] }),
    store.destroy('app/db'),
    store.list('app/'),
    store.versions('app/db'),
  ];
  const errors: unknown[] = [];
  for (const call of calls) {
    try {
      await call;
      errors.push(new Error('call unexpectedly succeeded'));
    } catch (err) {
      errors.push(err);
    }
  }
  const health = await store.health();
  errors.push(health.error);
  return errors;
}

describe('vault:// with Vault unreachable', () => {
  let port: number;
  let dir: string;
  const token = `hvs.canary-token-${randomUUID()}`;
  const roleId = `canary-role-id-${randomUUID()}`;
  const secretId = `canary-secret-id-${randomUUID()}`;
  const jwt = `canary.jwt.${randomUUID()}`;
  const value = `canary-value-${randomUUID()}`;
  const debugLines: string[] = [];
  const logger = { warn: (m: string) => debugLines.push(m), info: (m: string) => debugLines.push(m), debug: (m: string) => debugLines.push(m) };
  const registry = new SchemeRegistry().register(vaultSecretsScheme);

  const stderr: string[] = [];
  let restoreStderr: () => void = () => undefined;

  beforeAll(async () => {
    // node-vault traces payloads through the `debug` package when DEBUG names it: turn that on, and
    // collect everything written to stderr, to show the adapter keeps those traces from running.
    process.env.DEBUG = 'node-vault,*';
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      stderr.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stderr.write;
    restoreStderr = () => {
      process.stderr.write = write;
      delete process.env.DEBUG;
    };
    port = await closedPort();
    dir = mkdtempSync(join(tmpdir(), 'stowage-vault-leak-'));
    writeFileSync(join(dir, 'token'), `${token}\n`);
    writeFileSync(join(dir, 'role-id'), roleId);
    writeFileSync(join(dir, 'secret-id'), secretId);
    writeFileSync(join(dir, 'jwt'), jwt);
  });
  afterAll(() => {
    restoreStderr();
    rmSync(dir, { recursive: true, force: true });
  });

  const cases: [string, () => string, Record<string, string>][] = [
    ['a token from VAULT_TOKEN', () => `vault://127.0.0.1:${port}/secret?tls=false`, { VAULT_TOKEN: token }],
    ['a token from ?tokenFile=', () => `vault://127.0.0.1:${port}/secret/app?tls=false&tokenFile=${join(dir, 'token')}`, {}],
    [
      'an AppRole login',
      () => `vault://127.0.0.1:${port}/secret?tls=false&auth=approle&roleIdFile=${join(dir, 'role-id')}&secretIdFile=${join(dir, 'secret-id')}`,
      {},
    ],
    ['a Kubernetes login', () => `vault://127.0.0.1:${port}/secret?tls=false&auth=kubernetes&role=app&tokenFile=${join(dir, 'jwt')}`, {}],
    ['TLS', () => `vault://127.0.0.1:${port}/secret?tls=true`, { VAULT_TOKEN: token }],
  ];

  for (const [what, url, env] of cases) {
    it(`keeps the token, credentials and value out of every error with ${what}`, async () => {
      const store = createSecretStore(await registry.open('secrets', url(), { dataDir: dir, env, logger }), { defaultTimeoutMs: 5_000 });
      const errors = await errorsOfEveryCall(store, value);
      await store.close();
      expect(errors).toHaveLength(11);
      for (const err of errors) {
        expect(StowageError.is(err), String(err)).toBe(true);
        expect(['UNAVAILABLE', 'TIMEOUT'], (err as Error).message).toContain((err as StowageError).code);
        const text = shown(err);
        for (const canary of [token, roleId, secretId, jwt, value]) expect(text).not.toContain(canary);
      }
      for (const line of [...debugLines, ...stderr]) for (const canary of [token, roleId, secretId, jwt, value]) expect(line).not.toContain(canary);
    }, 60_000);
  }

  it('keeps the token and value out of errors thrown by the driver itself, before core sees them', async () => {
    const driver = await registry.open('secrets', `vault://127.0.0.1:${port}/secret?tls=false`, { dataDir: dir, env: { VAULT_TOKEN: token }, logger });
    const signal = AbortSignal.timeout(5_000);
    const value = new TextEncoder().encode(`driver-${token}`);
    const errors = await Promise.all([
      driver.put('a', value, undefined, signal).catch((e: unknown) => e),
      driver.get('a', undefined, signal).catch((e: unknown) => e),
      driver.list('', signal).catch((e: unknown) => e),
      driver.ping(signal).catch((e: unknown) => e),
    ]);
    await driver.close();
    for (const err of errors) {
      expect(StowageError.is(err, 'UNAVAILABLE'), String(err)).toBe(true);
      expect(shown(err)).not.toContain(token);
    }
  });

  it('names the endpoint, never the token, when Vault cannot be reached', async () => {
    const store = createSecretStore(await registry.open('secrets', `vault://127.0.0.1:${port}/secret?tls=false`, { dataDir: dir, env: { VAULT_TOKEN: token }, logger }));
    const err = (await store.get('x').catch((e: unknown) => e)) as StowageError;
    await store.close();
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).not.toContain(token);
  });

  it('refuses credentials in the URL and missing auth parameters', async () => {
    const ctx = { dataDir: dir, env: {}, logger };
    for (const url of [
      `vault://user:pw@127.0.0.1:${port}/secret`,
      `vault://127.0.0.1:${port}/secret?auth=approle`,
      `vault://127.0.0.1:${port}/secret?auth=kubernetes`,
      `vault://127.0.0.1:${port}/secret?auth=ldap`,
      `vault://127.0.0.1:${port}/secret?token=${token}`,
    ]) {
      const err = await registry.open('secrets', url, ctx).catch((e: unknown) => e);
      expect(StowageError.is(err, 'INVALID_ARGUMENT'), `${url}: ${String(err)}`).toBe(true);
      expect(shown(err)).not.toContain(token);
      expect(shown(err)).not.toContain(':pw@');
    }
    const noToken = await registry.open('secrets', `vault://127.0.0.1:${port}/secret`, ctx).catch((e: unknown) => e);
    expect(StowageError.is(noToken, 'PERMISSION_DENIED')).toBe(true);
  });
});
