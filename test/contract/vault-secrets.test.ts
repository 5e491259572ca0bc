import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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

/** A JWT in the shape of a Kubernetes service-account token (the stub TokenReview endpoint is what vouches for it). */
function serviceAccountJwt(namespace: string, name: string, uid: string): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const claims = {
    iss: 'kubernetes/serviceaccount',
    sub: `system:serviceaccount:${namespace}:${name}`,
    'kubernetes.io/serviceaccount/namespace': namespace,
    'kubernetes.io/serviceaccount/service-account.name': name,
    'kubernetes.io/serviceaccount/service-account.uid': uid,
  };
  return `${part({ alg: 'RS256', typ: 'JWT' })}.${part(claims)}.${Buffer.from('not-checked-locally').toString('base64url')}`;
}

/**
 * A stand-in for the Kubernetes API server's TokenReview endpoint — the one call Vault's Kubernetes auth makes
 * to Kubernetes: it vouches for the one token it was given and refuses every other.
 */
async function tokenReviewStub(jwt: string, namespace: string, name: string, uid: string): Promise<{ url: string; reviews: string[]; close(): Promise<void> }> {
  const reviews: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/apis/authentication.k8s.io/v1/tokenreviews') {
        res.writeHead(404).end();
        return;
      }
      const token = (JSON.parse(body) as { spec?: { token?: string } }).spec?.token ?? '';
      reviews.push(token);
      const status =
        token === jwt
          ? { authenticated: true, user: { username: `system:serviceaccount:${namespace}:${name}`, uid, groups: ['system:serviceaccounts'] } }
          : { authenticated: false, error: 'token not known to the stub' };
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', status }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, reviews, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

serviceSuite('vault', (svc) => {
  it('logs in with Kubernetes auth: the JWT goes to TokenReview and the token Vault gives works', async () => {
    const service = svc();
    const root = nodeVault({ endpoint: `http://${service.host}:${service.port}`, token: service.env.VAULT_TOKEN, debug: () => undefined });
    const uid = randomUUID();
    const name = `sa-${uid.slice(0, 8)}`;
    const jwt = serviceAccountJwt('default', name, uid);
    const stub = await tokenReviewStub(jwt, 'default', name, uid);
    const mount = `kubernetes-${uid.slice(0, 8)}`;
    try {
      await root.request({ method: 'POST', path: `/sys/auth/${mount}`, json: { type: 'kubernetes' } });
      // Vault wants a CA for the API server even over plain HTTP (it is not used: the stub speaks HTTP).
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=stub-ca', '-keyout', join(dataDir, `${name}.key`), '-out', join(dataDir, `${name}.crt`)], { stdio: 'ignore' });
      await root.request({
        method: 'POST',
        path: `/auth/${mount}/config`,
        json: { kubernetes_host: stub.url, kubernetes_ca_cert: readFileSync(join(dataDir, `${name}.crt`), 'utf8'), disable_local_ca_jwt: true },
      });
      await root.request({ method: 'POST', path: '/sys/policies/acl/stowage-test', json: { policy: 'path "secret/*" { capabilities = ["create","read","update","delete","list"] }' } });
      await root.request({
        method: 'POST',
        path: `/auth/${mount}/role/stowage`,
        json: { bound_service_account_names: [name], bound_service_account_namespaces: ['default'], token_policies: ['stowage-test'], token_ttl: '60s' },
      });
      writeFileSync(join(dataDir, `${name}.jwt`), jwt);
      const url = isolated(service, `auth=kubernetes&role=stowage&authMount=${mount}&tokenFile=${join(dataDir, `${name}.jwt`)}`);
      const store = createSecretStore(await registry.open('secrets', url, { dataDir, env: {}, logger }));
      try {
        expect(await store.put('k8s', 'from-a-pod')).toEqual({ version: 1 });
        expect((await store.get('k8s')).value.reveal()).toBe('from-a-pod');
      } finally {
        await store.close();
      }
      // Vault asked the stub about exactly the service-account token the adapter read from its file.
      expect(stub.reviews).toContain(jwt);

      // A token the stub does not vouch for gets no Vault token: PERMISSION_DENIED, not a hang.
      writeFileSync(join(dataDir, `${name}.forged`), serviceAccountJwt('default', name, randomUUID()));
      const forged = isolated(service, `auth=kubernetes&role=stowage&authMount=${mount}&tokenFile=${join(dataDir, `${name}.forged`)}`);
      const refused = createSecretStore(await registry.open('secrets', forged, { dataDir, env: {}, logger }));
      try {
        await expect(refused.put('k8s', 'x')).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
      } finally {
        await refused.close();
      }
    } finally {
      await stub.close();
    }
  }, 60_000);
}, { title: 'vault server: Kubernetes auth' });
