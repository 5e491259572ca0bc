/**
 * Stowage: one set of storage ports — config, secrets, queue, cache, documents — with the backend behind
 * each chosen by a URL.
 *
 * @example
 * ```ts
 * import { createStowage } from 'stowage';
 *
 * await using stowage = await createStowage();          // standalone: everything under ./.stowage
 * await stowage.config.put('app/greeting', 'hello');
 * const { seq } = await stowage.queue.publish('jobs', JSON.stringify({ n: 1 }));
 * ```
 *
 * @module
 */
import { openStowage, type Stowage, type StowageOptions } from './core/stowage.js';
import type { Profile } from './core/profile.js';
import { createDefaultRegistry } from './schemes.js';

export * from './ports/index.js';
export { createConfigStore, type ConfigStoreOptions } from './core/config/config-store.js';
export {
  createServiceRegistry,
  type ServiceRegistry,
  type ServiceRegistryOptions,
  type RegisterOptions,
  type Registration,
  type ServiceInstance,
  type ServiceEvent,
  type ServiceWatchOptions,
} from './core/config/service-registry.js';
export { createSecretStore, type SecretStoreOptions } from './core/secrets/secret-store.js';
export { createQueue, type QueueOptions } from './core/queue/queue.js';
export { deliveryContext, HEADER_TRACEPARENT, HEADER_TRACESTATE, HEADER_BAGGAGE } from './core/queue/trace-context.js';
export { createCache, DEFAULT_CACHE_MAX_VALUE_BYTES, type CacheOptions } from './core/cache/cache.js';
export { createDocumentStore, type DocumentStoreOptions } from './core/documents/document-store.js';
export { matchesFilter, validateFilter, MAX_FILTER_DEPTH, MAX_FILTER_TERMS } from './core/documents/filter.js';
export { uuidv7 } from './core/documents/uuidv7.js';
export { DEFAULT_TIMEOUT_MS, type RuntimeOptions } from './core/runtime.js';
export { SchemeRegistry, defaultLogger, type CheckedUrl, type SchemeDefinition, type SchemeEntry, type OpenContext, type Logger, type DriverOf, type DriverMap } from './core/registry.js';
export { parseUrl, redactUrlText, type StowageUrl, type UrlHost } from './driver/url.js';
export { resolveProfile, standaloneUrls, envNameOf, PORTS, type Profile, type ResolvedProfile, type ProfileSource } from './core/profile.js';
export { TOKENS, stowageContainerModule } from './core/inversify.js';
export type { Stowage, StowageOptions } from './core/stowage.js';
export { BUILTIN_SCHEMES, createDefaultRegistry } from './schemes.js';

/** The registry `createStowage` uses: every built-in scheme. Register third-party adapters here. */
export const defaultRegistry = createDefaultRegistry();

/**
 * Opens all five ports from a profile (code, then environment, then `stowage.yaml`/`stowage.json`, then the
 * standalone defaults: see {@link resolveProfile}).
 *
 * @param profile - URLs per port and shared settings; anything left out comes from the environment, a
 *   profile file or the standalone defaults
 * @param options - which ports to open, logger, environment
 */
export function createStowage(profile: Profile = {}, options: StowageOptions & { registry?: typeof defaultRegistry } = {}): Promise<Stowage> {
  return openStowage(options.registry ?? defaultRegistry, profile, options);
}
