import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import nodeVault from 'node-vault';
import { vaultSecretsScheme } from '../../src/adapters/vault/index.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { sleep } from '../../src/testing/harness.js';
import { secretsContract } from '../../src/testing/secrets.js';
import { serviceSuite, type Service } from '../support/services.js';

const registry = new SchemeRegistry().register(vaultSecretsScheme);
const dataDir = mkdtempSync(join(tmpdir(), 'stowage-vault-'));
const logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };

/** The service's URL with a fresh name prefix after the mount, so every test starts empty. */
function isolated(service: Service, extraQuery = ''): string {
  const [base = '', query = ''] = service.url.split('?');
  const withMount = /^vault:\/\/[^/]+\/[^/]/.test(base) ? base.replace(/\/$/, '') : `${base.replace(/\/$/, '')}/secret`;
  const params = [query, extraQuery].filter((q) => q !== '').join('&');
  return `${withMount}/t-${randomUUID()}${params === '' ? '' : `?${params}`}`;
}

serviceSuite('vault', (svc) => {
  secretsContract({
    test: { describe, it },
    name: 'vault://',
    factory: async () => createSecretStore(await registry.open('secrets', isolated(svc()), { dataDir, env: svc().env, logger })),
  });

  it('keeps working across token renewals and a new AppRole login at the maximum TTL', async () => {
    const service = svc();
    const tls = service.url.includes('tls=false') ? 'http' : 'https';
    const root = nodeVault({ endpoint: `${tls}://${service.host}:${service.port}`, token: service.env.VAULT_TOKEN, debug: () => undefined });
    const auths = (await root.request({ method: 'GET', path: '/sys/auth' })) as Record<string, unknown>;
    if (!('approle/' in auths) && !('approle/' in ((auths.data as Record<string, unknown> | undefined) ?? {}))) {
      await root.request({ method: 'POST', path: '/sys/auth/approle', json: { type: 'approle' } });
    }
    await root.request({ method: 'POST', path: '/sys/policies/acl/stowage-test', json: { policy: 'path "secret/*" { capabilities = ["create","read","update","delete","list"] }' } });
    const role = `stowage-${randomUUID().slice(0, 8)}`;
    await root.request({ method: 'POST', path: `/auth/approle/role/${role}`, json: { token_ttl: '3s', token_max_ttl: '6s', token_policies: ['stowage-test'] } });
    const roleId = ((await root.request({ method: 'GET', path: `/auth/approle/role/${role}/role-id` })) as { data: { role_id: string } }).data.role_id;
    const secretId = ((await root.request({ method: 'POST', path: `/auth/approle/role/${role}/secret-id` })) as { data: { secret_id: string } }).data.secret_id;
    writeFileSync(join(dataDir, `${role}.role`), roleId);
    writeFileSync(join(dataDir, `${role}.secret`), secretId);
    const url = isolated(service, `auth=approle&roleIdFile=${join(dataDir, `${role}.role`)}&secretIdFile=${join(dataDir, `${role}.secret`)}`);
    const store = createSecretStore(await registry.open('secrets', url, { dataDir, env: {}, logger }));
    try {
      // 10 s spans several renewals (every 2 s) and at least one new login (max TTL 6 s).
      for (let i = 1; i <= 10; i++) {
        expect(await store.put('renewal', `v${i}`)).toEqual({ version: i });
        await sleep(1000);
      }
      expect((await store.get('renewal')).value.reveal()).toBe('v10');
    } finally {
      await store.close();
    }
  }, 60_000);
});
