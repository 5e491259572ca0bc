/**
 * The PostgreSQL connection of the queue: a `postgres://` URL turned into `pg` client settings, and `pg`'s
 * errors turned into {@link StowageError}s.
 *
 * Kept apart from the other PostgreSQL ports' connection code only until the two are merged; the queue
 * driver takes an open `pg.Pool` and a factory of dedicated clients, so it does not depend on this file.
 *
 * @module
 */
import type { ClientConfig, Pool, PoolClient, PoolConfig } from 'pg';
import { StowageError, type StowageErrorCode } from '../../ports/errors.js';
import { safeCause } from '../../driver/errors.js';
import { intParam, urlPassword, type StowageUrl } from '../../driver/url.js';

/** The query parameters the connection reads (each port adds its own). */
export const CONNECTION_PARAMS = ['passwordFile', 'poolSize', 'connectTimeoutMs'] as const;

/** The client settings a `postgres://` URL names: one host, a database, a user and a password. */
export async function postgresClientConfig(url: StowageUrl): Promise<{ pool: PoolConfig; client: ClientConfig; secrets: string[] }> {
  const host = url.hosts[0];
  if (host === undefined || url.hosts.length > 1) throw new StowageError('INVALID_ARGUMENT', `${url.redacted} must name exactly one host`);
  const database = url.path.replace(/^\//, '');
  if (!/^[A-Za-z0-9_$-]{1,63}$/.test(database)) {
    throw new StowageError('INVALID_ARGUMENT', `${url.redacted} must name a database in its path (letters, digits, "_", "$", "-")`);
  }
  const password = await urlPassword(url);
  const client: ClientConfig = {
    host: host.host,
    port: host.port ?? 5432,
    user: url.username,
    password,
    database,
    connectionTimeoutMillis: intParam(url, 'connectTimeoutMs', 5_000, { min: 1, max: 600_000 }),
    // A dead peer (a host that vanished, a frozen server) shows as a broken connection, not a silent one.
    keepAlive: true,
    application_name: 'stowage',
  };
  return {
    client,
    pool: { ...client, max: intParam(url, 'poolSize', 10, { min: 2, max: 1000 }), idleTimeoutMillis: 30_000 },
    secrets: password === undefined ? [] : [password],
  };
}

/** SQLSTATE classes (first two characters) and codes, and what they mean to a caller. */
const SQLSTATE: ReadonlyArray<[RegExp, StowageErrorCode]> = [
  // connection exception, operator intervention (shutdown, cannot connect now), serialization/deadlock
  [/^(08|57P0|40001|40P01)/, 'UNAVAILABLE'],
  [/^57014$/, 'TIMEOUT'],
  [/^(28|42501)/, 'PERMISSION_DENIED'],
  [/^53/, 'RESOURCE_EXHAUSTED'],
  [/^3D000$/, 'INVALID_ARGUMENT'],
  [/^(XX001|XX002)$/, 'CORRUPTED'],
];

/** What `pg` says when the socket went away or could not be opened; it gives these no `code`. */
const CONNECTION_LOST = /Connection terminated|not queryable|timeout exceeded when trying to connect|Connection ended|connection timeout|Client was closed/i;

/**
 * Classifies an error of `pg` (a server error with its SQLSTATE, or a client-side connection failure);
 * undefined lets core apply its generic mapping (errno codes → UNAVAILABLE, the rest → INTERNAL).
 *
 * @param secrets - values (the password) removed from the message wherever they appear
 */
export function mapPostgresError(err: unknown, secrets: readonly string[] = []): StowageError | undefined {
  if (StowageError.is(err)) return err;
  const raw = err as { code?: unknown; message?: unknown } | null;
  const cause = safeCause(err, secrets);
  const message = cause?.message ?? 'unknown error';
  if (typeof raw?.code === 'string' && /^[0-9A-Z]{5}$/.test(raw.code)) {
    const code = SQLSTATE.find(([re]) => re.test(raw.code as string))?.[1];
    if (code !== undefined) return new StowageError(code, `postgres: ${message} (SQLSTATE ${raw.code})`, { cause });
    return new StowageError('INTERNAL', `postgres: ${message} (SQLSTATE ${raw.code})`, { cause });
  }
  if (typeof raw?.message === 'string' && CONNECTION_LOST.test(raw.message)) {
    return new StowageError('UNAVAILABLE', `postgres: unavailable (${message})`, { cause });
  }
  return undefined;
}

/**
 * Runs `fn` in a transaction on a connection of the pool: COMMIT when it resolves, ROLLBACK when it throws.
 * While the connection is checked out, an error event of its socket (the server going away between two
 * statements) is taken here — the failing statement reports it — instead of crashing the process, as an
 * unheard `error` event would; a connection whose ROLLBACK failed is dropped by the pool, not reused.
 */
export async function inTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  const heard = (): void => undefined;
  client.on('error', heard);
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    });
    throw err;
  } finally {
    client.removeListener('error', heard);
    client.release(broken);
  }
}
