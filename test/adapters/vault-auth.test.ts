import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { VaultAuth, type VaultAuthConfig, type VaultRequest } from '../../src/adapters/vault/auth.js';
import { StowageError } from '../../src/ports/errors.js';

// These tests cover the adapter's own token schedule (when it renews, when it logs in again) with a
// scripted request function and fake timers; talking to a real Vault is the contract suite's job.

const dir = mkdtempSync(join(tmpdir(), 'stowage-vault-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'role'), 'role-id-1');
writeFileSync(join(dir, 'secret'), 'secret-id-1');
const logger = { warn: vi.fn(), info: () => undefined, debug: () => undefined };

type Call = { method: string; path: string; json?: unknown; token?: string | null };

/** A request function that answers logins and renewals from a script and records every call. */
function scripted(renewTtls: number[], loginTtl = 30): { request: VaultRequest; calls: Call[] } {
  const calls: Call[] = [];
  let logins = 0;
  const request: VaultRequest = async (req) => {
    calls.push(req);
    if (req.path.endsWith('/login')) {
      logins++;
      return { auth: { client_token: `token-${logins}`, lease_duration: loginTtl, renewable: true } };
    }
    if (req.path === '/auth/token/renew-self') {
      const ttl = renewTtls.shift();
      if (ttl === undefined) throw new StowageError('PERMISSION_DENIED', 'renewal refused');
      return { auth: { client_token: req.token ?? '', lease_duration: ttl, renewable: true } };
    }
    if (req.path === '/auth/token/lookup-self') return { data: { ttl: 0, renewable: false } };
    throw new Error(`unexpected ${req.path}`);
  };
  return { request, calls };
}

/** Lets real I/O (credential files) finish: spins the event loop until `done()` or 5 s of real time. */
async function until(done: () => boolean): Promise<void> {
  const start = performance.now();
  while (!done() && performance.now() - start < 5_000) await new Promise((resolve) => setImmediate(resolve));
}

const approle: VaultAuthConfig = { method: 'approle', roleIdFile: join(dir, 'role'), secretIdFile: join(dir, 'secret'), env: {} };

describe('VaultAuth token schedule', () => {
  beforeEach(() => {
    // Only timeouts are faked: setImmediate and I/O stay real, so credential files can be read.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('logs in with the AppRole credentials from their files, once, on first use', async () => {
    const { request, calls } = scripted([]);
    const auth = new VaultAuth(approle, request, logger);
    expect(await auth.token()).toBe('token-1');
    expect(await auth.token()).toBe('token-1');
    expect(calls).toEqual([{ method: 'POST', path: '/auth/approle/login', json: { role_id: 'role-id-1', secret_id: 'secret-id-1' }, token: null }]);
    expect(auth.secrets).toEqual(expect.arrayContaining(['role-id-1', 'secret-id-1', 'token-1']));
    auth.close();
  });

  it('renews at two thirds of the TTL, asking for the same TTL again', async () => {
    const { request, calls } = scripted([30, 30]);
    const auth = new VaultAuth(approle, request, logger);
    await auth.token();
    await vi.advanceTimersByTimeAsync(19_000);
    expect(calls.filter((c) => c.path === '/auth/token/renew-self')).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(2_000);
    const renewals = calls.filter((c) => c.path === '/auth/token/renew-self');
    expect(renewals).toHaveLength(1);
    expect(renewals[0]).toMatchObject({ token: 'token-1', json: { increment: '30s' } });
    await vi.advanceTimersByTimeAsync(20_000);
    expect(calls.filter((c) => c.path === '/auth/token/renew-self')).toHaveLength(2);
    expect(await auth.token()).toBe('token-1');
    auth.close();
  });

  it('logs in again before the maximum TTL, once renewal stops giving the full TTL', async () => {
    const { request, calls } = scripted([9]);
    const auth = new VaultAuth(approle, request, logger);
    await auth.token();
    await vi.advanceTimersByTimeAsync(20_000); // renewal: only 9 s left before the maximum TTL
    expect(calls.filter((c) => c.path.endsWith('/login'))).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(6_000); // two thirds of 9 s
    await until(() => calls.filter((c) => c.path.endsWith('/login')).length === 2);
    expect(calls.filter((c) => c.path.endsWith('/login'))).toHaveLength(2);
    expect(await auth.token()).toBe('token-2');
    auth.close();
  });

  it('logs in again when a renewal fails', async () => {
    const { request, calls } = scripted([]);
    const auth = new VaultAuth(approle, request, logger);
    await auth.token();
    await vi.advanceTimersByTimeAsync(21_000);
    await until(() => calls.filter((c) => c.path.endsWith('/login')).length === 2);
    expect(calls.filter((c) => c.path.endsWith('/login'))).toHaveLength(2);
    expect(await auth.token()).toBe('token-2');
    auth.close();
  });

  it('reads a token file again when its token nears the end of its life', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'file-token-1\n');
    const calls: Call[] = [];
    const request: VaultRequest = async (req) => {
      calls.push(req);
      if (req.path === '/auth/token/lookup-self') return { data: { ttl: 30, renewable: false } };
      throw new Error(`unexpected ${req.path}`);
    };
    const auth = new VaultAuth({ method: 'token', tokenFile, env: {} }, request, logger);
    expect(await auth.token()).toBe('file-token-1');
    writeFileSync(tokenFile, 'file-token-2\n');
    await vi.advanceTimersByTimeAsync(21_000);
    await until(() => calls.length === 2);
    expect(await auth.token()).toBe('file-token-2');
    auth.close();
  });

  it('sets no timer for a token that never expires, and none after close', async () => {
    const { request, calls } = scripted([]);
    const auth = new VaultAuth({ method: 'token', env: { VAULT_TOKEN: 'root-token' } }, request, logger);
    expect(await auth.token()).toBe('root-token');
    expect(vi.getTimerCount()).toBe(0);
    auth.close();
    const other = new VaultAuth(approle, scripted([30]).request, logger);
    await other.token();
    other.close();
    expect(vi.getTimerCount()).toBe(0);
    await expect(other.token()).rejects.toMatchObject({ code: 'CLOSED' });
    expect(calls).toHaveLength(1);
  });

  it('logs in again on the next call after invalidate()', async () => {
    const { request } = scripted([]);
    const auth = new VaultAuth(approle, request, logger);
    expect(await auth.token()).toBe('token-1');
    auth.invalidate();
    expect(await auth.token()).toBe('token-2');
    auth.close();
  });

  it('does not keep a failed login: the next call tries again', async () => {
    let fail = true;
    const request: VaultRequest = async () => {
      if (fail) throw new StowageError('UNAVAILABLE', 'down');
      return { auth: { client_token: 'late-token', lease_duration: 0, renewable: false } };
    };
    const auth = new VaultAuth(approle, request, logger);
    await expect(auth.token()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    fail = false;
    expect(await auth.token()).toBe('late-token');
    auth.close();
  });

  it('refuses incomplete configurations', () => {
    const { request } = scripted([]);
    expect(() => new VaultAuth({ method: 'approle', roleIdFile: '/x', env: {} }, request, logger)).toThrow(/secretIdFile/);
    expect(() => new VaultAuth({ method: 'kubernetes', env: {} }, request, logger)).toThrow(/role=/);
    expect(() => new VaultAuth({ method: 'token', env: {} }, request, logger)).toThrow(/VAULT_TOKEN/);
  });
});
