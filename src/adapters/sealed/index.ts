/**
 * Sealed secrets over a config backend: `etcd+sealed://`, `zookeeper+sealed://`, `postgres+sealed://`,
 * `file+sealed://`, `mem+sealed://`.
 *
 * The URL is the config backend's URL with `+sealed` added to its scheme, plus `?masterKeyFile=`; the
 * master key comes from that file or from `STOWAGE_MASTER_KEY`. Every other query parameter goes to the
 * config backend.
 *
 * @example
 * ```ts
 * // STOWAGE_MASTER_KEY=… in the environment of every node
 * const secrets = await createStowage({ secrets: 'etcd+sealed://10.0.0.1:2379,10.0.0.2:2379/myapp/secrets' });
 * ```
 *
 * @module
 */
import type { OpenContext, SchemeDefinition } from '../../driver/index.js';
import type { StowageUrl } from '../../driver/url.js';
import { resolveMasterKey } from '../../driver/seal.js';
import { SealedSecretsDriver } from './secrets-driver.js';
import { fileConfigPath } from '../file/config-driver.js';
import { ensurePrivateFile } from '../../driver/private-file.js';
import { isAbsolute, join } from 'node:path';

export { DEFAULT_ORPHAN_GRACE_MS, SealedSecretsDriver, type SealedSecretsOptions } from './secrets-driver.js';

/** How long opening may take (reading or creating the header) before it gives up. */
const OPEN_TIMEOUT_MS = 30_000;

/**
 * The query parameters of the config schemes that sealed secrets can wrap, passed through to them.
 * Kept here (not imported) so this adapter never loads another adapter's client library; a test checks
 * they match the config schemes' own lists.
 */
export const SEALED_INNER_PARAMS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  mem: ['historySize'],
  file: ['historySize', 'debounceMs', 'format', 'watch'],
  etcd: ['tls', 'caFile', 'certFile', 'keyFile', 'passwordFile', 'leaseKeepAliveMs'],
  zookeeper: ['sessionTimeoutMs', 'history'],
  postgres: ['sslmode', 'tls', 'caFile', 'certFile', 'keyFile', 'passwordFile', 'connectTimeoutMs', 'queryTimeoutMs', 'poolSize', 'tablePrefix', 'historyRevisions'],
  postgresql: ['sslmode', 'tls', 'caFile', 'certFile', 'keyFile', 'passwordFile', 'connectTimeoutMs', 'queryTimeoutMs', 'poolSize', 'tablePrefix', 'historyRevisions'],
});

function formatHost(host: string, port: number | undefined): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return port === undefined ? h : `${h}:${port}`;
}

/** The config backend's URL: the same URL without `+sealed` and without `masterKeyFile`. */
export function innerConfigUrl(url: StowageUrl, innerScheme: string): string {
  const user =
    url.username === undefined
      ? ''
      : `${encodeURIComponent(url.username)}${url.password === undefined ? '' : `:${encodeURIComponent(url.password)}`}@`;
  const hosts = url.hosts.map((h) => formatHost(h.host, h.port)).join(',');
  const path = url.path
    .split('/')
    .map((segment) => encodeURIComponent(segment))
    .join('/');
  const query = new URLSearchParams([...url.params].filter(([name]) => name !== 'masterKeyFile')).toString();
  return `${innerScheme}://${user}${hosts}${path}${query === '' ? '' : `?${query}`}`;
}

async function openSealed(url: StowageUrl, context: OpenContext, innerScheme: string): Promise<SealedSecretsDriver> {
  const masterKey = await resolveMasterKey({ masterKeyFile: url.params.get('masterKeyFile'), env: context.env, logger: context.logger, what: url.redacted });
  // The file holds the ciphertext of every secret: 0600, also when an earlier version wrote it wider (the
  // file:// config driver keeps a file's mode on every rewrite).
  if (innerScheme === 'file') {
    const path = url.path === '' || url.path === '/' ? join(context.dataDir, 'config.json') : url.path;
    // A relative path is refused by the file:// driver just after: nothing is created for it.
    if (isAbsolute(path)) await ensurePrivateFile(path, { tighten: true });
  }
  const inner = await context.openDriver('config', innerConfigUrl(url, innerScheme));
  return SealedSecretsDriver.open(url.scheme, inner, masterKey, AbortSignal.timeout(OPEN_TIMEOUT_MS));
}

function sealedScheme(innerScheme: string): SchemeDefinition<'secrets'> {
  return {
    port: 'secrets',
    scheme: `${innerScheme}+sealed`,
    params: ['masterKeyFile', ...(SEALED_INNER_PARAMS[innerScheme] ?? [])],
    // file+sealed:// keeps its ciphertext in a file:// config file, resolved as that scheme resolves it.
    ...(innerScheme === 'file' ? { localPath: (url: StowageUrl, dataDir: string) => fileConfigPath(url, dataDir) } : {}),
    open: (url, context) => openSealed(url, context, innerScheme),
  };
}

/** `etcd+sealed://host:2379[,host:2379]/prefix[?masterKeyFile=…]`: sealed secrets in etcd. */
export const etcdSealedSecretsScheme: SchemeDefinition<'secrets'> = sealedScheme('etcd');
/** `zookeeper+sealed://host:2181[,host:2181]/chroot[?masterKeyFile=…]`: sealed secrets in ZooKeeper. */
export const zookeeperSealedSecretsScheme: SchemeDefinition<'secrets'> = sealedScheme('zookeeper');
/**
 * `postgres+sealed://user@host:5432/database[?masterKeyFile=…&tablePrefix=…]`: sealed secrets in the
 * `postgres://` config store (its tables, under the prefix given).
 */
export const postgresSealedSecretsScheme: SchemeDefinition<'secrets'> = sealedScheme('postgres');
/** `postgresql+sealed://…`: the same as {@link postgresSealedSecretsScheme}. */
export const postgresqlSealedSecretsScheme: SchemeDefinition<'secrets'> = sealedScheme('postgresql');
/** `file+sealed:///path/config.json[?masterKeyFile=…]`: sealed secrets in a `file://` config file. */
export const fileSealedSecretsScheme: SchemeDefinition<'secrets'> = sealedScheme('file');
/** `mem+sealed://`: sealed secrets in a `mem://` config store (tests). */
export const memSealedSecretsScheme: SchemeDefinition<'secrets'> = sealedScheme('mem');
