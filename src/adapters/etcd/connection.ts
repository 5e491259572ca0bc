/**
 * Turning an `etcd://` URL into `etcd3` client options: hosts, TLS files, user and password.
 *
 * `etcd://[user[:password]@]host:port[,host:port…]/prefix?tls=true&caFile=&certFile=&keyFile=&passwordFile=&leaseKeepAliveMs=`
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import type { IOptions } from 'etcd3';
import { StowageError } from '../../ports/errors.js';
import { boolParam, intParam, type StowageUrl } from '../../driver/url.js';

/** The query parameters an `etcd://` config URL accepts. */
export const ETCD_PARAMS: readonly string[] = ['tls', 'caFile', 'certFile', 'keyFile', 'passwordFile', 'leaseKeepAliveMs'];

/** What {@link etcdOptionsFromUrl} produces. */
export interface EtcdConnection {
  /** Options for `new Etcd3(…)`. */
  readonly options: IOptions;
  /** The key prefix every key is stored under (`myapp/` for `etcd://h/myapp`), `''` for none. */
  readonly prefix: string;
  /** The lease keep-alive interval, when the URL sets one. */
  readonly keepAliveMs: number | undefined;
  /** Strings that must never appear in an error (the password). */
  readonly secrets: readonly string[];
}

async function readSecretFile(path: string, what: string, url: StowageUrl): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: cannot read ${what} ${JSON.stringify(path)} (${(err as { code?: string }).code ?? 'error'})`);
  }
}

/** Reads the URL (and the files it names) into etcd3 client options. */
export async function etcdOptionsFromUrl(url: StowageUrl): Promise<EtcdConnection> {
  if (url.hosts.length === 0) throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: an etcd URL needs at least one host:port`);
  const tls = boolParam(url, 'tls', false);
  const caFile = url.params.get('caFile');
  const certFile = url.params.get('certFile');
  const keyFile = url.params.get('keyFile');
  if (!tls && (caFile || certFile || keyFile)) {
    throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: caFile, certFile and keyFile need tls=true`);
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: certFile and keyFile go together (client certificate authentication)`);
  }
  const hosts = url.hosts.map(({ host, port }) => {
    const h = host.includes(':') ? `[${host}]` : host;
    return `${tls ? 'https' : 'http'}://${h}:${port ?? 2379}`;
  });
  // No dial timeout: etcd3 accepts a `dialTimeout` option but never uses it, and grpc-js has no connect
  // timeout of its own; every call is bounded by the port's deadline instead.
  const options: IOptions = { hosts };
  if (tls && caFile) {
    options.credentials = {
      rootCertificate: await readSecretFile(caFile, 'caFile', url),
      ...(certFile ? { certChain: await readSecretFile(certFile, 'certFile', url) } : {}),
      ...(keyFile ? { privateKey: await readSecretFile(keyFile, 'keyFile', url) } : {}),
    };
  } else if (tls && certFile) {
    throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: a client certificate needs caFile too`);
  }
  const secrets: string[] = [];
  const passwordFile = url.params.get('passwordFile');
  if (url.username !== undefined) {
    let password = url.password;
    if (passwordFile !== undefined) {
      if (password !== undefined) throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: give the password in the URL or in passwordFile, not both`);
      password = (await readSecretFile(passwordFile, 'passwordFile', url)).toString('utf8').replace(/\r?\n$/, '');
    }
    if (password === undefined) throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: user ${JSON.stringify(url.username)} needs a password (in the URL or passwordFile)`);
    options.auth = { username: url.username, password };
    secrets.push(password);
  } else if (passwordFile !== undefined) {
    throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: passwordFile needs a user name in the URL (etcd://user@host:2379)`);
  }
  const trimmed = url.path.replace(/^\/+|\/+$/g, '');
  const keepAlive = url.params.has('leaseKeepAliveMs') ? intParam(url, 'leaseKeepAliveMs', 0, { min: 50, max: 600_000 }) : undefined;
  return { options, prefix: trimmed === '' ? '' : `${trimmed}/`, keepAliveMs: keepAlive, secrets };
}
