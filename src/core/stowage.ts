/**
 * Opening all five ports from a profile.
 *
 * @module
 */
import { constants } from 'node:os';
import { isAbsolute, relative, sep } from 'node:path';
import { StowageError } from '../ports/errors.js';
import type { PortName } from '../ports/common.js';
import type { Cache } from '../ports/cache.js';
import type { ConfigStore } from '../ports/config.js';
import type { DocumentStore } from '../ports/documents.js';
import type { Queue } from '../ports/queue.js';
import type { SecretStore } from '../ports/secrets.js';
import { createCache } from './cache/cache.js';
import { createConfigStore } from './config/config-store.js';
import { lockDataDir, type DataDirLock } from '../driver/data-dir-lock.js';
import { createDocumentStore } from './documents/document-store.js';
import { PORTS, resolveProfile, type Profile, type ResolvedProfile } from './profile.js';
import { createQueue } from './queue/queue.js';
import { defaultLogger, type CheckedUrl, type Logger, type SchemeRegistry } from './registry.js';
import { createSecretStore } from './secrets/secret-store.js';
import { redact } from '../driver/errors.js';
import { redactUrlText } from '../driver/url.js';

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
  /**
   * Aborts as soon as {@link Stowage.close} starts (by a call or on a shutdown signal, see
   * {@link Stowage.closeOnSignals}). Pass it as the `signal` of config watches and of the application's own
   * loops so that they end quietly when the service stops, rather than with CLOSED.
   *
   * @example
   * ```ts
   * for await (const ev of stowage.config.watch('app/', { signal: stowage.closing })) apply(ev);
   * // reached after SIGTERM: the loop ended without an error
   * ```
   */
  readonly closing: AbortSignal;
  /**
   * Closes every opened port, then releases the data folder lock. Idempotent.
   *
   * The queue closes first: its consumers stop taking messages at once, and the handlers already running
   * finish and settle (ack, nak) while the other ports are still open for them to use — for at most the
   * drain time (5 s). Then the other ports close.
   */
  close(): Promise<void>;
  /**
   * Closes the ports gracefully when the process receives one of `signals` — what a Kubernetes pod or a
   * systemd unit needs to stop on SIGTERM without losing or repeating work.
   *
   * On the first signal, {@link Stowage.closing} aborts and {@link Stowage.close} runs: consumers and
   * processors stop taking messages, running handlers finish and settle, watches given `closing` end,
   * ports close. Once
   * nothing else holds it (an HTTP server the application listens with, for instance: close it on
   * {@link Stowage.closing}), the process exits with status 0 — 1 if closing failed, after the failure is
   * logged. A second signal while closing exits at once with status 128 + the signal's number, as an
   * impatient Ctrl-C expects. The listeners are removed once the close a signal started is done, or by
   * calling the returned function.
   *
   * @param signals - the signals that stop the service. @defaultValue `['SIGTERM', 'SIGINT']`
   * @returns a function that removes the listeners again
   *
   * @example
   * ```ts
   * const stowage = await createStowage();
   * stowage.closeOnSignals();
   * const worker = stowage.queue.process('jobs', 'workers', handle);
   * await worker.done; // resolves after SIGTERM, once the running handlers have settled
   * ```
   */
  closeOnSignals(signals?: readonly NodeJS.Signals[]): () => void;
}

/** The signals {@link Stowage.closeOnSignals} listens to by default. */
const DEFAULT_SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] = Object.freeze(['SIGTERM', 'SIGINT']);

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

/**
 * Whether a port's URL keeps its data inside the data folder (and so needs the folder's lock): its scheme says
 * where it stores (`SchemeDefinition.localPath`). A URL the adapter will refuse takes the lock too,
 * harmlessly.
 */
function usesDataDir({ definition, parsed }: CheckedUrl<PortName>, dataDir: string): boolean {
  if (definition.localPath === undefined) return false;
  let path: string;
  try {
    path = definition.localPath(parsed, dataDir);
  } catch {
    return true;
  }
  if (!isAbsolute(path)) return true;
  const rel = relative(dataDir, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
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
  const checked: CheckedUrl<PortName>[] = [];
  for (const port of PORTS) {
    if (wanted.has(port)) checked.push(await registry.check(port, resolved.urls[port]).catch((err: unknown) => Promise.reject(openFailure(port, resolved.urls[port], err))));
  }
  let lock: DataDirLock | undefined;
  if (checked.some((c) => usesDataDir(c, resolved.dataDir))) {
    lock = await lockDataDir(resolved.dataDir);
  }
  const opened: Partial<PortObjects> = {};
  const context = { dataDir: resolved.dataDir, env, logger };
  const closeAll = async (): Promise<void> => {
    // The queue first: the handlers it lets finish may still read config, write documents, use the cache.
    const { queue, ...others } = opened;
    const results = [
      ...(await Promise.allSettled(queue === undefined ? [] : [queue.close()])),
      ...(await Promise.allSettled(Object.values(others).map((port) => port.close()))),
    ];
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
            opened.queue = createQueue(await registry.open('queue', url, context), { ...runtime, logger, config: opened.config });
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
  const closingController = new AbortController();
  const close = (): Promise<void> => {
    if (closing === undefined) {
      closingController.abort(new StowageError('CLOSED', 'stowage is closing'));
      closing = closeAll();
    }
    return closing;
  };
  const closeOnSignals = (signals: readonly NodeJS.Signals[] = DEFAULT_SHUTDOWN_SIGNALS): (() => void) => {
    if (!Array.isArray(signals) || signals.some((s) => typeof s !== 'string' || !(s in constants.signals))) {
      throw new StowageError('INVALID_ARGUMENT', `signals must be an array of signal names such as "SIGTERM", got ${JSON.stringify(signals)}`);
    }
    const remove = (): void => {
      for (const signal of signals) process.off(signal, onSignal);
    };
    let received = false;
    function onSignal(signal: NodeJS.Signals): void {
      if (received) {
        // Listening stops Node's default exit; a second signal means "now".
        process.exit(128 + constants.signals[signal]);
      }
      received = true;
      logger.info(`${signal} received: closing`);
      close().then(remove, (err: unknown) => {
        remove();
        logger.warn(`closing after ${signal} failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exitCode = 1;
      });
    }
    for (const signal of signals) process.on(signal, onSignal);
    return remove;
  };
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
    closing: closingController.signal,
    close,
    closeOnSignals,
    [Symbol.asyncDispose]: close,
  };
}
