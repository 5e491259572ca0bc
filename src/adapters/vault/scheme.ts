/**
 * The `vault://` URL: `vault://host[:8200]/<mount>[/<prefix>…][?tls=&auth=token|approle|kubernetes&tokenFile=&roleIdFile=&secretIdFile=&role=&authMount=&namespace=]`.
 *
 * @module
 */
import { silenceVaultTransportDebug } from './quiet-transport.js';
import type { OpenContext, SchemeDefinition } from '../../driver/index.js';
import { boolParam, enumParam, type StowageUrl } from '../../driver/url.js';
import type { VaultAuthMethod } from './auth.js';
import { VaultSecretsDriver, type VaultDriverOptions } from './secrets-driver.js';
import { invalid } from '../../driver/errors.js';

/** Vault's default port. */
export const DEFAULT_VAULT_PORT = 8200;
/** The KV v2 mount used when the URL names none. */
export const DEFAULT_VAULT_MOUNT = 'secret';

/**
 * What a `vault://` URL says: endpoint, mount, name prefix, namespace and auth (credentials themselves
 * are read later, from files or `context.env`).
 *
 * @throws StowageError INVALID_ARGUMENT for credentials in the URL, not exactly one host, or a bad parameter.
 */
export function vaultOptionsFromUrl(url: StowageUrl, context: Pick<OpenContext, 'env' | 'logger'>): VaultDriverOptions {
  if (url.username !== undefined || url.password !== undefined) {
    throw invalid(`${url.redacted}: credentials do not go in a vault:// URL; use VAULT_TOKEN, ?tokenFile= or ?auth=approle`);
  }
  const [host, ...more] = url.hosts;
  if (host === undefined || more.length > 0) throw invalid(`${url.redacted}: a vault:// URL names exactly one host`);
  const tls = boolParam(url, 'tls', true);
  const [mount = DEFAULT_VAULT_MOUNT, ...rest] = url.path.split('/').filter((s) => s !== '');
  const hostText = host.host.includes(':') ? `[${host.host}]` : host.host;
  return {
    endpoint: `${tls ? 'https' : 'http'}://${hostText}:${host.port ?? DEFAULT_VAULT_PORT}`,
    mount,
    prefix: rest.length === 0 ? '' : `${rest.join('/')}/`,
    namespace: url.params.get('namespace'),
    logger: context.logger,
    auth: {
      method: enumParam<VaultAuthMethod>(url, 'auth', ['token', 'approle', 'kubernetes'], 'token'),
      tokenFile: url.params.get('tokenFile'),
      roleIdFile: url.params.get('roleIdFile'),
      secretIdFile: url.params.get('secretIdFile'),
      role: url.params.get('role'),
      authMount: authMountParam(url),
      env: context.env,
    },
  };
}

/** `?authMount=`: a path of plain segments (it becomes part of a request path). */
function authMountParam(url: StowageUrl): string | undefined {
  const value = url.params.get('authMount');
  if (value === undefined) return undefined;
  if (!/^[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_-]+)*$/.test(value)) {
    throw invalid(`${url.redacted}: ?authMount= must be a path of letters, digits, '_' and '-' segments (got ${JSON.stringify(value)})`);
  }
  return value;
}

async function openVault(url: StowageUrl, context: OpenContext): Promise<VaultSecretsDriver> {
  const options = vaultOptionsFromUrl(url, context);
  const { default: createClient } = await import('node-vault');
  silenceVaultTransportDebug();
  const client = createClient({
    endpoint: options.endpoint,
    apiVersion: 'v1',
    // node-vault's own debug output includes request payloads (secret values): send it nowhere.
    debug: () => undefined,
  });
  // node-vault falls back to VAULT_TOKEN, VAULT_NAMESPACE and VAULT_PREFIX from process.env; this adapter
  // takes credentials only from the OpenContext, and sets the token per request.
  Object.assign(client, { token: '', namespace: options.namespace ?? '', pathPrefix: '' });
  return new VaultSecretsDriver(client, options);
}

/**
 * The `vault://` scheme of the secrets port (KV v2). The first path segment is the mount (default
 * `secret`); further segments are a prefix for every name. TLS is on unless `?tls=false`. The token
 * comes from `VAULT_TOKEN` or `?tokenFile=` (`?auth=token`, the default), or from an AppRole login
 * (`?auth=approle&roleIdFile=…&secretIdFile=…`) or a Kubernetes login (`?auth=kubernetes&role=…`, JWT
 * from `?tokenFile=` or the service-account token); it is renewed before it expires and replaced by a new
 * login before its maximum TTL.
 *
 * @example
 * ```ts
 * // VAULT_TOKEN=… in the environment
 * const secrets = await createStowage({ secrets: 'vault://vault.internal:8200/secret/myapp' });
 * ```
 */
export const vaultSecretsScheme: SchemeDefinition<'secrets'> = {
  port: 'secrets',
  scheme: 'vault',
  params: ['tls', 'auth', 'tokenFile', 'roleIdFile', 'secretIdFile', 'role', 'authMount', 'namespace'],
  open: openVault,
};
