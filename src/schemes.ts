/**
 * Every built-in scheme, registered as a lazy loader: a client library is imported only when a URL names
 * its scheme, so `import 'stowage'` stays light.
 *
 * @module
 */
import { SchemeRegistry, type SchemeEntry } from './core/registry.js';

/** The built-in schemes of each port. */
export const BUILTIN_SCHEMES: readonly SchemeEntry[] = [
  { port: 'config', scheme: 'mem', load: async () => (await import('./adapters/memory/config-driver.js')).memConfigScheme },
  { port: 'secrets', scheme: 'mem', load: async () => (await import('./adapters/memory/secrets-driver.js')).memSecretsScheme },
  { port: 'queue', scheme: 'mem', load: async () => (await import('./adapters/memory/queue-driver.js')).memQueueScheme },
  { port: 'cache', scheme: 'mem', load: async () => (await import('./adapters/memory/cache-driver.js')).memCacheScheme },
  { port: 'documents', scheme: 'mem', load: async () => (await import('./adapters/memory/documents-driver.js')).memDocumentsScheme },
];

/** A new registry holding every built-in scheme (add your own adapters with `register`). */
export function createDefaultRegistry(): SchemeRegistry {
  const registry = new SchemeRegistry();
  for (const entry of BUILTIN_SCHEMES) registry.register(entry);
  return registry;
}
