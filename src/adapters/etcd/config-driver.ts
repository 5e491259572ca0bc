/**
 * `etcd://` config with the `etcd3` client.
 *
 * - Revisions are etcd mod revisions (store-wide); create revisions are etcd create revisions.
 * - Compare-and-set is one transaction comparing the key's mod revision (0 = absent).
 * - Watches track the last revision received themselves and, on reconnection, resume from the one after it,
 *   dropping anything at or below it: etcd3's own resume point (`header.revision + 1` of the last response)
 *   can lie ahead of events not yet received, which would leave a gap. Compacted history gives COMPACTED.
 * - Leases are kept alive by this driver's own timer (`keepaliveOnce`, every TTL/3 or `leaseKeepAliveMs`),
 *   and `lost` fires when no keep-alive has succeeded for one TTL, measured from when the last successful
 *   one was sent; etcd3's own `lost` waits up to twice the TTL. A lost lease is revoked on a best-effort basis,
 *   so its keys do not outlive what its holder was told.
 * - A delete event's `reason` is `lease-expired` when the deleted key was bound to a lease (etcd does not
 *   say whether the lease ended or someone deleted the key), otherwise `deleted`.
 *
 * etcd3's request builders send nothing until awaited or `exec()`/`commit()`ed; this driver always calls
 * `exec()`/`commit()` explicitly (a transaction builder has a `then` method of its own and must never be
 * awaited or returned from an async function).
 *
 * @module
 */
import { Etcd3, EtcdLeaseInvalidError, Range, type IKeyValue, type Watcher } from 'etcd3';
import { StowageError } from '../../ports/errors.js';
import type { JsonValue, PingResult } from '../../ports/common.js';
import type {
  ConfigCapability,
  ConfigDeleteResult,
  ConfigDriver,
  ConfigEntry,
  ConfigEvent,
  ConfigSnapshot,
  ConfigWriteResult,
  Lease,
} from '../../ports/config.js';
import type { SchemeDefinition } from '../../driver/index.js';
import { EventQueue } from '../../driver/event-queue.js';
import { redact, revisionConflict, safeCause } from '../../driver/errors.js';
import { parseStoredJson, quote } from '../../driver/validate.js';
import { etcdOptionsFromUrl, ETCD_PARAMS, type EtcdConnection } from './connection.js';

/** `key` is the key as the port names it (without the store's prefix); `where` names the store in errors. */
function toEntry(kv: IKeyValue, where: string, key: string): ConfigEntry {
  const text = kv.value.toString('utf8');
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch {
    // The message is built only here: reads are the hot path.
    value = parseStoredJson(text, `${where}: key ${quote(key)}`);
  }
  const revision = Number(kv.mod_revision);
  const createRevision = Number(kv.create_revision);
  const lease = kv.lease;
  return lease === undefined || lease === '0' ? { key, value, revision, createRevision } : { key, value, revision, createRevision, lease: String(lease) };
}

function conflict(key: string, current: IKeyValue | undefined, expected: number): StowageError {
  const actual = current ? Number(current.mod_revision) : 0;
  return revisionConflict(key, actual, expected, 'config (etcd)');
}

/** The `etcd://` config driver. Open it with {@link EtcdConfigDriver.open}. */
export class EtcdConfigDriver implements ConfigDriver {
  readonly backend = 'etcd';
  readonly capabilities: ReadonlySet<ConfigCapability> = new Set<ConfigCapability>(['watch', 'leases', 'externalChanges']);
  /** etcd holds a value's JSON text, so core's `put` skips copying the value. */
  readonly storesJson = true;
  readonly #client: Etcd3;
  /** Prepended to every key. Done here rather than with etcd3's Namespace, whose extra layer costs throughput. */
  readonly #prefix: string;
  readonly #keepAliveMs: number | undefined;
  readonly #secrets: readonly string[];
  readonly #leases = new Set<() => void>();
  /** Names the store in messages: `config (etcd myapp/)`. */
  readonly #where: string;

  private constructor(connection: EtcdConnection) {
    this.#client = new Etcd3(connection.options);
    this.#prefix = connection.prefix;
    this.#where = `config (etcd${connection.prefix === '' ? '' : ` ${connection.prefix}`})`;
    this.#keepAliveMs = connection.keepAliveMs;
    this.#secrets = connection.secrets;
  }

  /** Creates the client (it connects lazily, on the first call). */
  static async open(connection: EtcdConnection): Promise<EtcdConfigDriver> {
    return new EtcdConfigDriver(connection);
  }

  /** The etcd key of a port key. */
  #full(key: string): string {
    return this.#prefix + key;
  }

  /** The port key of an etcd key. */
  #short(kv: IKeyValue): string {
    return kv.key.toString('utf8').slice(this.#prefix.length);
  }

  /** The key range of everything under a port prefix (all keys when both prefixes are empty). */
  #range(prefix: string): Range {
    const full = this.#full(prefix);
    // etcd refuses an empty key; "\0" to "\0" is its spelling of "every key".
    return full === '' ? new Range('\0', '\0') : Range.prefix(full);
  }

  mapError(err: unknown): StowageError | undefined {
    if (StowageError.is(err)) return err;
    const cause = safeCause(err, this.#secrets);
    const message = redact(cause?.message ?? String(err), this.#secrets);
    const name = (err as { name?: unknown } | null)?.name;
    if (err instanceof EtcdLeaseInvalidError || /requested lease not found/.test(message)) {
      return new StowageError('NOT_FOUND', `${this.#where}: the lease does not exist or has ended`, { cause });
    }
    if (/compacted/i.test(message)) {
      return new StowageError('COMPACTED', `${this.#where}: the history needed was compacted by etcd; resync with list() and watch from its revision`, { cause });
    }
    if (/authentication failed|invalid auth token|Unauthenticated/i.test(message) || name === 'EtcdAuthenticationFailedError') {
      return new StowageError('PERMISSION_DENIED', `${this.#where}: etcd refused the credentials`, { cause });
    }
    if (/bad certificate|certificate required|certificate verify failed|unknown ca/i.test(message)) {
      return new StowageError('PERMISSION_DENIED', `${this.#where}: the TLS handshake was refused (check caFile, certFile and keyFile): ${message}`, { cause });
    }
    if (/permission denied/i.test(message)) return new StowageError('PERMISSION_DENIED', `${this.#where}: ${message}`, { cause });
    if (/GRPCUnavailable|GRPCConnectFailed|GRPCDeadlineExceeded|No connection established|ECONNREFUSED|UNAVAILABLE|failed to connect/i.test(`${String(name)} ${message}`)) {
      return new StowageError('UNAVAILABLE', `${this.#where}: etcd unreachable: ${message}`, { cause });
    }
    if (/request is too large|too many operations/i.test(message)) return new StowageError('RESOURCE_EXHAUSTED', `${this.#where}: ${message}`, { cause });
    return undefined;
  }

  // get and the plain put call etcd3's KV client (`client.kv`, its documented raw RPC interface) rather than
  // its request builders, whose exec adds async layers and objects per call to the same request.
  get(key: string, _signal?: AbortSignal): Promise<ConfigEntry | undefined> {
    return this.#client.kv.range({ key: Buffer.from(this.#full(key)), limit: 1 }).then((res) => {
      const kv = res.kvs[0];
      return kv ? toEntry(kv, this.#where, key) : undefined;
    });
  }

  async list(prefix: string, limit: number | undefined, _signal?: AbortSignal): Promise<ConfigSnapshot> {
    let range = this.#client.getAll().inRange(this.#range(prefix)).sort('Key', 'Ascend');
    if (limit !== undefined) range = range.limit(limit);
    const res = await range.exec();
    return { entries: res.kvs.map((kv) => toEntry(kv, this.#where, this.#short(kv))), revision: Number(res.header.revision) };
  }

  /**
   * Writes the JSON text core validated (`json`) as the key's value: one Put, or with `ifRevision` one Txn
   * comparing the key's mod revision (reading the key when the comparison fails, to report its revision).
   * The revision returned is the response header's: for a write, the revision the write created.
   */
  async put(key: string, value: JsonValue, options: { ifRevision?: number; lease?: string }, _signal?: AbortSignal, json?: string): Promise<ConfigWriteResult> {
    const full = this.#full(key);
    if (options.ifRevision === undefined && options.lease === undefined) {
      const res = await this.#client.kv.put({ key: Buffer.from(full), value: Buffer.from(json ?? JSON.stringify(value)) });
      return { revision: Number(res.header.revision) };
    }
    const put = this.#client.put(full).value(json ?? JSON.stringify(value));
    if (options.lease !== undefined) put.lease(options.lease);
    if (options.ifRevision === undefined) {
      const res = await put.exec();
      return { revision: Number(res.header.revision) };
    }
    const res = await this.#client.if(full, 'Mod', '==', options.ifRevision).then(put).else(this.#client.get(full)).commit();
    if (!res.succeeded) throw conflict(key, res.responses[0]?.response_range?.kvs[0], options.ifRevision);
    return { revision: Number(res.header.revision) };
  }

  async delete(key: string, options: { ifRevision?: number }, _signal?: AbortSignal): Promise<ConfigDeleteResult> {
    if (options.ifRevision === undefined) {
      const res = await this.#client.delete().key(this.#full(key)).exec();
      return { deleted: Number(res.deleted) > 0, revision: Number(res.header.revision) };
    }
    const full = this.#full(key);
    const res = await this.#client.if(full, 'Mod', '==', options.ifRevision).then(this.#client.delete().key(full)).else(this.#client.get(full)).commit();
    if (!res.succeeded) throw conflict(key, res.responses[0]?.response_range?.kvs[0], options.ifRevision);
    const deleted = Number(res.responses[0]?.response_delete_range?.deleted ?? 0) > 0;
    return { deleted, revision: Number(res.header.revision) };
  }

  async *watch(prefix: string, afterRevision: number | undefined, signal: AbortSignal): AsyncGenerator<ConfigEvent, void, undefined> {
    // The highest revision received; everything at or below it has been queued.
    let last = afterRevision ?? Number((await this.#client.getAll().inRange(this.#range(prefix)).limit(1).exec()).header.revision);
    const queue = new EventQueue<ConfigEvent>();
    const watcher: Watcher = this.#client.watch().inRange(this.#range(prefix)).withPreviousKV().startRevision(String(last + 1)).watcher();
    watcher.on('data', (res) => {
      let top = last;
      for (const ev of res.events) {
        const revision = Number(ev.kv.mod_revision);
        if (revision <= last) continue; // already delivered before a reconnection
        top = Math.max(top, revision);
        const key = this.#short(ev.kv);
        if (ev.type === 'Put') {
          try {
            queue.push({ type: 'put', ...toEntry(ev.kv, this.#where, key) });
          } catch (err) {
            queue.fail(err);
          }
        } else {
          const lease = ev.prev_kv?.lease;
          queue.push({ type: 'delete', key, revision, reason: lease !== undefined && lease !== '0' ? 'lease-expired' : 'deleted' });
        }
      }
      // etcd sends every event of one revision in the same response, so the whole batch is now received.
      last = top;
    });
    watcher.on('disconnected', () => {
      // Resume exactly after what was received, whatever etcd3 computed from the last header.
      watcher.request.start_revision = String(last + 1);
    });
    watcher.on('error', (err) => {
      // etcd3 drops the compact_revision of a cancelled watch (the reason is often empty), so ask etcd
      // whether the revision the watch needs is still readable.
      const needed = last + 1;
      void this.#isCompacted(prefix, needed).then((compacted) => {
        queue.fail(
          compacted
            ? new StowageError(
                'COMPACTED',
                `${this.#where}: watch of ${quote(prefix)} needs history from revision ${needed}, which etcd has compacted; resync with list() and watch from its revision`,
                { cause: safeCause(err, this.#secrets), details: { afterRevision: last } },
              )
            : err,
        );
      });
    });
    try {
      yield* queue.read(signal);
    } finally {
      void watcher.cancel().catch(() => undefined);
    }
  }

  async #isCompacted(prefix: string, revision: number): Promise<boolean> {
    try {
      await this.#client.getAll().inRange(this.#range(prefix)).limit(1).revision(revision).exec();
      return false;
    } catch (err) {
      return /compacted/i.test(String((err as Error).message));
    }
  }

  async lease(ttlMs: number, keepAlive: boolean, _signal?: AbortSignal): Promise<Lease> {
    const sentAt = Date.now();
    const raw = this.#client.lease(Math.max(1, Math.ceil(ttlMs / 1000)), { autoKeepAlive: false });
    raw.on('lost', () => undefined); // etcd3 emits it on its own schedule; this driver decides loss itself
    const id = String(await raw.grant());
    const lost = new AbortController();
    // When the last keep-alive known to have succeeded was sent: the server's TTL restarted no earlier.
    let lastOk = sentAt;
    const interval = this.#keepAliveMs ?? Math.max(100, Math.floor(ttlMs / 3));
    const checkEvery = Math.max(20, Math.min(250, Math.floor(ttlMs / 20)));
    const end = (reason: StowageError): void => {
      if (lost.signal.aborted) return;
      clearInterval(keepTimer);
      clearInterval(checkTimer);
      this.#leases.delete(stop);
      lost.abort(reason);
    };
    const stop = (): void => end(new StowageError('CLOSED', `lease ${id} ended: the store was closed`));
    const keepTimer = keepAlive
      ? setInterval(() => {
          // Each keep-alive may take up to the TTL; a slow one does not hold back the next.
          const sent = Date.now();
          raw
            .keepaliveOnce({ deadline: sent + ttlMs })
            .then(() => {
              lastOk = Math.max(lastOk, sent);
            })
            .catch((err: unknown) => {
              if (err instanceof EtcdLeaseInvalidError) {
                end(new StowageError('UNAVAILABLE', `lease ${id} expired at the server`, { cause: safeCause(err, this.#secrets) }));
              }
            });
        }, interval)
      : undefined;
    keepTimer?.unref();
    // Signal loss before the server can have dropped the keys: one TTL after the last good keep-alive.
    const checkTimer = setInterval(() => {
      if (Date.now() - lastOk < ttlMs - checkEvery) return;
      end(
        new StowageError('UNAVAILABLE', keepAlive ? `lease ${id}: no successful keep-alive for ${ttlMs} ms` : `lease ${id} expired after ${ttlMs} ms`),
      );
      // Whoever still sees the keys must not outlive what the holder was told.
      raw.revoke().catch(() => undefined);
    }, checkEvery);
    checkTimer.unref();
    this.#leases.add(stop);
    const revoke = async (): Promise<void> => {
      if (lost.signal.aborted) return;
      end(new StowageError('CANCELLED', `lease ${id} was revoked`));
      await raw.revoke();
    };
    return { id, ttlMs, lost: lost.signal, revoke, [Symbol.asyncDispose]: revoke };
  }

  async ping(_signal?: AbortSignal): Promise<PingResult> {
    const status = await this.#client.maintenance.status();
    return { serverVersion: status.version };
  }

  async close(): Promise<void> {
    for (const stop of [...this.#leases]) stop();
    this.#client.close();
  }

  /** The `etcd3` client (keys carry the URL's prefix), for what the port does not cover. */
  native(): Etcd3 {
    return this.#client;
  }
}

/**
 * `etcd://[user[:password]@]host:port[,host:port…]/prefix` for the config port. Parameters: `tls`,
 * `caFile`, `certFile`, `keyFile`, `passwordFile`, `leaseKeepAliveMs`.
 */
export const etcdConfigScheme: SchemeDefinition<'config'> = {
  port: 'config',
  scheme: 'etcd',
  params: ETCD_PARAMS,
  open: async (url) => EtcdConfigDriver.open(await etcdOptionsFromUrl(url)),
};
