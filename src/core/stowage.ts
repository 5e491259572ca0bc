/**
 * Opening all five ports from a profile.
 *
 * @module
 */
import { relative, isAbsolute } from 'node:path';
import { StowageError } from '../ports/errors.js';
import type { PortName } from '../ports/common.js';
import type { Cache } from '../ports/cache.js';
import type { ConfigStore } from '../ports/config.js';
import type { DocumentStore } from '../ports/documents.js';
import type { Queue } from '../ports/queue.js';
import type { SecretStore } from '../ports/secrets.js';
import { createCache } from './cache/cache.js';
import { createConfigStore } from './config/config-store.js';
import { lockDataDir, type DataDirLock } from './data-dir-lock.js';
import { createDocumentStore } from './documents/document-store.js';
import { PORTS, resolveProfile, type Profile, type ResolvedProfile } from './profile.js';
import { createQueue } from './queue/queue.js';
import { defaultLogger, type Logger, type SchemeRegistry } from './registry.js';
import { createSecretStore } from './secrets/secret-store.js';
import { redact } from './errors.js';
import { parseUrl, redactUrlText } from './url.js';

/** The five ports, opened from one profile. */
export interface Stowage extends AsyncDisposable {
  /** The config port. */
  readonly config: ConfigStore;
  /** The secrets port. */
  readonly secrets: SecretStore;
  /** The queue port. */
  readonly queue: Queue;
  /** The cache port. */
  readonly cache: Cache;
  /** The documents port. */
  readonly documents: DocumentStore;
  /** The profile the ports were opened from (URLs without passwords). */
  readonly profile: ResolvedProfile;
  /** Closes every opened port, then releases the data folder lock. Idempotent. */
  close(): Promise<void>;
}

/** Options of `createStowage`. */
export interface StowageOptions {
  /** Open only these ports; touching another one throws INVALID_ARGUMENT (default: all five). */
  ports?: readonly PortName[];
  /** Where adapters send warnings (default: stderr). */
  logger?: Logger;
  /** The environment to read (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /** The folder for relative paths and `./stowage.yaml` (default `process.cwd()`). */
  cwd?: string;
}

type PortObjects = { config: ConfigStore; secrets: SecretStore; queue: Queue; cache: Cache; documents: DocumentStore };

/** Whether a port's URL keeps its data inside the data folder (and so needs the folder's lock). */
function usesDataDir(url: string, dataDir: string): boolean {
  const parsed = parseUrl(url);
  if (!['file', 'disk', 'sqlite'].includes(parsed.scheme)) return false;
  if (parsed.path === '' || !isAbsolute(parsed.path)) return true;
  const rel = relative(dataDir, parsed.path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** A port's failure to open, naming the port and its URL (without password); the adapter's details are kept. */
function openFailure(port: PortName, url: string, err: unknown): StowageError {
  const error = StowageError.is(err) ? err : new StowageError('INTERNAL', String(err));
  // redact() as well: a URL refused for carrying a secret in its query (`?token=`) must not echo it here.
  return new StowageError(error.code, `cannot open the ${port} port (${redact(redactUrlText(url))}): ${error.message}`, {
    cause: error,
    retryable: error.retryable,
    details: { ...error.details, port },
  });
}

/**
 * Opens the ports of `profile` with the adapters of `registry`. On any failure, everything opened so far is
 * closed again and the error names the port and its URL (without password).
 */
export async function openStowage(registry: SchemeRegistry, profile: Profile = {}, options: StowageOptions = {}): Promise<Stowage> {
  const env = options.env ?? process.env;
  const resolved = await resolveProfile(profile, { env, cwd: options.cwd });
  const wanted = new Set(options.ports ?? PORTS);
  const logger = options.logger ?? defaultLogger;
  const runtime = { defaultTimeoutMs: resolved.timeoutMs };

  // Every port's scheme is checked first (a client library missing, a bad parameter), so a profile that cannot
  // open leaves nothing behind: no keyring, no queue folder, no lock file.
  for (const port of PORTS) {
    if (wanted.has(port)) await registry.check(port, resolved.urls[port]).catch((err: unknown) => Promise.reject(openFailure(port, resolved.urls[port], err)));
  }
  let lock: DataDirLock | undefined;
  if ([...wanted].some((port) => usesDataDir(resolved.urls[port], resolved.dataDir))) {
    lock = await lockDataDir(resolved.dataDir);
  }
  const opened: Partial<PortObjects> = {};
  const context = { dataDir: resolved.dataDir, env, logger };
  const closeAll = async (): Promise<void> => {
    const results = await Promise.allSettled(Object.values(opened).map((port) => port.close()));
    await lock?.release();
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  try {
    for (const port of PORTS) {
      if (!wanted.has(port)) continue;
      const url = resolved.urls[port];
      try {
        switch (port) {
          case 'config':
            opened.config = createConfigStore(await registry.open('config', url, context), runtime);
            break;
          case 'secrets':
            opened.secrets = createSecretStore(await registry.open('secrets', url, context), runtime);
            break;
          case 'queue':
            opened.queue = createQueue(await registry.open('queue', url, context), runtime);
            break;
          case 'cache':
            opened.cache = createCache(await registry.open('cache', url, context), runtime);
            break;
          case 'documents':
            opened.documents = createDocumentStore(await registry.open('documents', url, context), runtime);
            break;
        }
      } catch (err) {
        throw openFailure(port, url, err);
      }
    }
  } catch (err) {
    await closeAll().catch(() => undefined);
    throw err;
  }

  const portOf = <P extends PortName>(port: P): PortObjects[P] => {
    const value = opened[port];
    if (value === undefined) {
      throw new StowageError('INVALID_ARGUMENT', `the ${port} port was not opened (options.ports: ${[...wanted].join(', ')})`);
    }
    return value as PortObjects[P];
  };
  let closing: Promise<void> | undefined;
  const redactedUrls = Object.fromEntries(PORTS.map((p) => [p, redactUrlText(resolved.urls[p])])) as Record<PortName, string>;
  return {
    get config() {
      return portOf('config');
    },
    get secrets() {
      return portOf('secrets');
    },
    get queue() {
      return portOf('queue');
    },
    get cache() {
      return portOf('cache');
    },
    get documents() {
      return portOf('documents');
    },
    profile: { ...resolved, urls: redactedUrls },
    close() {
      closing ??= closeAll();
      return closing;
    },
    [Symbol.asyncDispose]() {
      closing ??= closeAll();
      return closing;
    },
  };
}
