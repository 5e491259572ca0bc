/**
 * The service registry: who is alive in the cluster, built on any {@link ConfigStore} that has leases and
 * watch. Each live instance is one key bound to its own lease; when the process dies, keep-alive stops, the
 * lease expires and the key disappears, and every watcher sees the instance go down.
 *
 * Keys: `<prefix>/<name>/<id>` holding `{ id, meta, registeredAt }`.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { StowageError } from '../../ports/errors.js';
import type { JsonObject, JsonValue } from '../../ports/common.js';
import type { ConfigEntry, ConfigStore } from '../../ports/config.js';
import { validateKey, validateName, validatePositiveInt } from '../../driver/validate.js';
import { MIN_LEASE_TTL_MS } from './config-store.js';

/** Options of {@link createServiceRegistry}. */
export interface ServiceRegistryOptions {
  /**
   * The config key prefix under which instances are registered.
   *
   * @defaultValue `'stowage/registry'`
   */
  prefix?: string;
}

/** Options of {@link ServiceRegistry.register}. */
export interface RegisterOptions {
  /**
   * How long the instance stays listed after its process stops keeping it alive, in milliseconds (at least
   * 1000). Shorter means faster detection of dead instances and more keep-alive traffic.
   */
  ttlMs: number;
  /** What other instances should know about this one (address, version, zone…). Must be JSON. */
  meta?: JsonObject;
  /**
   * The instance id, unique within the service name (`[A-Za-z0-9_.-]`, at most 128 characters).
   *
   * @defaultValue a random UUID
   */
  id?: string;
}

/** One live instance of a service. */
export interface ServiceInstance {
  /** The instance id. */
  readonly id: string;
  /** The service name. */
  readonly name: string;
  /** What the instance published when it registered. */
  readonly meta: JsonObject;
  /** When it registered (ISO 8601, the registering process's clock). */
  readonly registeredAt: string;
}

/** What {@link ServiceRegistry.watch} delivers: an instance came up or went down. */
export interface ServiceEvent {
  /** `up` when an instance registered (or re-published its meta), `down` when it went away. */
  readonly type: 'up' | 'down';
  /** The instance; for `down`, as it was last seen. */
  readonly instance: ServiceInstance;
}

/** This process's registration, returned by {@link ServiceRegistry.register}. */
export interface Registration extends AsyncDisposable {
  /** The instance id. */
  readonly id: string;
  /** The service name. */
  readonly name: string;
  /**
   * Aborts when the registration is lost (keep-alive failed for longer than the TTL, the store closed, or
   * `deregister()` was called): other instances no longer see this one. Register again to reappear.
   */
  readonly lost: AbortSignal;
  /** Removes the instance now (other watchers see `down`). Idempotent. */
  deregister(): Promise<void>;
}

/** Options of {@link ServiceRegistry.watch}. */
export interface ServiceWatchOptions {
  /** Ends the watch: the iterator returns normally. */
  signal?: AbortSignal;
}

/** Registers this process under a service name and tells who else is alive. */
export interface ServiceRegistry {
  /**
   * Registers an instance of `name`, kept alive by a lease of `ttlMs`.
   *
   * @throws StowageError CONFLICT when an instance with the same id is already registered;
   *   UNSUPPORTED when the config store lacks leases.
   */
  register(name: string, options: RegisterOptions): Promise<Registration>;
  /** The live instances of `name`, sorted by id. */
  list(name: string): Promise<ServiceInstance[]>;
  /**
   * The instances of `name` as events: first an `up` for each instance alive now, then every later `up` and
   * `down`. If the store's history is compacted while watching, the registry resynchronises with `list` and
   * delivers the difference, so the view stays exact.
   *
   * @example
   * ```ts
   * const peers = new Map<string, ServiceInstance>();
   * for await (const { type, instance } of registry.watch('api')) {
   *   if (type === 'up') peers.set(instance.id, instance);
   *   else peers.delete(instance.id);
   * }
   * ```
   */
  watch(name: string, options?: ServiceWatchOptions): AsyncIterable<ServiceEvent>;
}

const ID_PATTERN = /^[A-Za-z0-9_.-]+$/;

function toInstance(name: string, entry: { key: string; value: JsonValue }): ServiceInstance | undefined {
  const value = entry.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const id = entry.key.slice(entry.key.lastIndexOf('/') + 1);
  const meta = value['meta'];
  return {
    id,
    name,
    meta: typeof meta === 'object' && meta !== null && !Array.isArray(meta) ? meta : {},
    registeredAt: typeof value['registeredAt'] === 'string' ? value['registeredAt'] : '',
  };
}

/**
 * Creates a service registry over a config store with the `leases` and `watch` capabilities.
 *
 * @example
 * ```ts
 * const registry = createServiceRegistry(config);
 * const me = await registry.register('api', { ttlMs: 5000, meta: { url: 'http://10.0.0.5:8080' } });
 * me.lost.addEventListener('abort', () => process.exit(1));
 * console.log(await registry.list('api'));
 * ```
 */
export function createServiceRegistry(config: ConfigStore, options: ServiceRegistryOptions = {}): ServiceRegistry {
  const prefix = validateKey(options.prefix ?? 'stowage/registry', 'registry prefix');
  const serviceName = (name: string): string => validateName(name, 'service name', ID_PATTERN);
  const dir = (name: string): string => `${prefix}/${serviceName(name)}/`;

  async function list(name: string): Promise<ServiceInstance[]> {
    const snapshot = await config.list(dir(name));
    return instancesOf(name, snapshot.entries);
  }

  function instancesOf(name: string, entries: readonly ConfigEntry[]): ServiceInstance[] {
    const out: ServiceInstance[] = [];
    for (const entry of entries) {
      // Keys deeper than <prefix>/<name>/<id> belong to someone else.
      if (entry.key.indexOf('/', dir(name).length) >= 0) continue;
      const instance = toInstance(name, entry);
      if (instance) out.push(instance);
    }
    return out;
  }

  async function register(name: string, opts: RegisterOptions): Promise<Registration> {
    const key = validateKey(`${dir(name)}${validateName(opts.id ?? randomUUID(), 'instance id', ID_PATTERN)}`, 'instance key');
    validatePositiveInt(opts.ttlMs, 'ttlMs', { min: MIN_LEASE_TTL_MS });
    const meta = opts.meta ?? {};
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
      throw new StowageError('INVALID_ARGUMENT', 'meta must be a JSON object');
    }
    const id = key.slice(key.lastIndexOf('/') + 1);
    const lease = await config.lease(opts.ttlMs);
    try {
      await config.put(key, { id, meta, registeredAt: new Date().toISOString() }, { lease: lease.id, ifRevision: 0 });
    } catch (err) {
      await lease.revoke().catch(() => undefined);
      if (StowageError.is(err, 'CONFLICT')) {
        throw new StowageError('CONFLICT', `service ${JSON.stringify(name)} already has a live instance with id ${JSON.stringify(id)}`, {
          cause: err,
          details: { name, id },
        });
      }
      throw err;
    }
    const deregister = (): Promise<void> => lease.revoke();
    return { id, name, lost: lease.lost, deregister, [Symbol.asyncDispose]: deregister };
  }

  async function* watch(name: string, opts: ServiceWatchOptions = {}): AsyncGenerator<ServiceEvent, void, undefined> {
    const base = dir(name);
    const known = new Map<string, ServiceInstance>();
    let snapshot = await config.list(base);
    for (const instance of instancesOf(name, snapshot.entries)) {
      known.set(instance.id, instance);
      yield { type: 'up', instance };
    }
    let from = snapshot.revision;
    while (!opts.signal?.aborted) {
      try {
        for await (const event of config.watch(base, { afterRevision: from, signal: opts.signal })) {
          from = event.revision;
          if (event.key.indexOf('/', base.length) >= 0) continue;
          const id = event.key.slice(base.length);
          if (event.type === 'put') {
            const instance = toInstance(name, event);
            if (!instance) continue;
            known.set(id, instance);
            yield { type: 'up', instance };
          } else {
            const instance = known.get(id);
            known.delete(id);
            if (instance) yield { type: 'down', instance };
          }
        }
        return;
      } catch (err) {
        if (!StowageError.is(err, 'COMPACTED')) throw err;
        // History is gone: rebuild the view from a snapshot and report only the difference.
        snapshot = await config.list(base);
        const now = new Map(instancesOf(name, snapshot.entries).map((i) => [i.id, i]));
        for (const [id, instance] of known) {
          if (!now.has(id)) {
            known.delete(id);
            yield { type: 'down', instance };
          }
        }
        for (const [id, instance] of now) {
          const before = known.get(id);
          known.set(id, instance);
          if (!before || JSON.stringify(before) !== JSON.stringify(instance)) yield { type: 'up', instance };
        }
        from = snapshot.revision;
      }
    }
  }

  return {
    register,
    list,
    watch: (name, opts) => {
      serviceName(name);
      return { [Symbol.asyncIterator]: () => watch(name, opts) };
    },
  };
}
