/**
 * Listing for config drivers that hold their entries in process memory (`mem://`, `file://`).
 *
 * @module
 */
import type { ConfigEntry, ConfigSnapshot } from '../ports/config.js';
import { compareCodePoints } from '../core/documents/filter.js';

/**
 * The entries under `prefix`, sorted by key in code-point order (the order etcd gives, by UTF-8 bytes), at
 * most `limit`, with the revision they reflect.
 */
export function configSnapshot(entries: Iterable<ConfigEntry>, prefix: string, limit: number | undefined, revision: number): ConfigSnapshot {
  const found: ConfigEntry[] = [];
  for (const entry of entries) if (entry.key.startsWith(prefix)) found.push(entry);
  found.sort((a, b) => compareCodePoints(a.key, b.key));
  return { entries: limit === undefined ? found : found.slice(0, limit), revision };
}
