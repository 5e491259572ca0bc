import { describe, expect, it } from 'vitest';
import { vaultOptionsFromUrl } from '../../src/adapters/vault/index.js';
import { parseUrl } from '../../src/driver/url.js';
import { rejectsWith } from '../../src/testing/harness.js';

const context = { env: {}, logger: { warn: () => undefined, info: () => undefined, debug: () => undefined } };
const options = (url: string) => vaultOptionsFromUrl(parseUrl(url), context);

describe('vault:// URLs', () => {
  it('uses TLS, port 8200 and the `secret` mount unless told otherwise', () => {
    const o = options('vault://vault.internal');
    expect(o.endpoint).toBe('https://vault.internal:8200');
    expect(o.mount).toBe('secret');
    expect(o.prefix).toBe('');
    expect(o.auth.method).toBe('token');
  });

  it('takes the first path segment as the mount and the rest as a name prefix', () => {
    const o = options('vault://127.0.0.1:8300/kv/team/app?tls=false&namespace=ns1');
    expect(o.endpoint).toBe('http://127.0.0.1:8300');
    expect(o.mount).toBe('kv');
    expect(o.prefix).toBe('team/app/');
    expect(o.namespace).toBe('ns1');
  });

  it('brackets an IPv6 host', () => {
    expect(options('vault://[::1]:8200/secret').endpoint).toBe('https://[::1]:8200');
  });

  it('reads the auth method and the files that hold credentials', () => {
    const o = options('vault://v/secret?auth=approle&roleIdFile=/run/role&secretIdFile=/run/secret');
    expect(o.auth).toMatchObject({ method: 'approle', roleIdFile: '/run/role', secretIdFile: '/run/secret' });
    expect(options('vault://v/secret?auth=kubernetes&role=app').auth).toMatchObject({ method: 'kubernetes', role: 'app' });
    expect(options('vault://v/secret?auth=kubernetes&role=app&authMount=k8s/prod-eu').auth.authMount).toBe('k8s/prod-eu');
  });

  it('refuses credentials in the URL, several hosts, an unknown auth method and a bad tls flag', async () => {
    for (const url of ['vault://u:p@v/secret', 'vault://a:8200,b:8200/secret', 'vault://v/secret?auth=ldap', 'vault://v/secret?tls=maybe', 'vault://v/secret?auth=kubernetes&role=a&authMount=../sys']) {
      await rejectsWith(Promise.resolve().then(() => options(url)), 'INVALID_ARGUMENT');
    }
  });
});
