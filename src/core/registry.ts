/**
 * The scheme registry: which adapter opens which URL scheme for which port. Adapters are registered as
 * lazy loaders, so a client library is imported only when a URL names its scheme.
 *
 * @module
 */
import { StowageError } from '../ports/errors.js';
import type { PortName } from '../ports/common.js';
import type { CacheDriver } from '../ports/cache.js';
import type { ConfigDriver } from '../ports/config.js';
import type { DocumentsDriver } from '../ports/documents.js';
import type { QueueDriver } from '../ports/queue.js';
import type { SecretsDriver } from '../ports/secrets.js';
import { toStowageError, type ErrorReason } from '../driver/errors.js';
import { checkParams, parseUrl, type StowageUrl } from '../driver/url.js';

/** Where adapters send warnings and diagnostics. Never given secrets. */
export interface Logger {
  /** Something the operator should know (a key file created, a fallback taken). */
  warn(message: string): void;
  /** Routine information. */
  info(message: string): void;
  /** Details for debugging. */
  debug(message: string): void;
}

/** A logger that writes warnings to stderr and drops the rest. */
export const defaultLogger: Logger = {
  warn: (message) => process.stderr.write(`stowage: warning: ${message}\n`),
  info: () => undefined,
  debug: () => undefined,
};

/** What an adapter's `open` receives besides the URL. */
export interface OpenContext {
  /** The standalone data folder (absolute), for adapters that keep files. */
  readonly dataDir: string;
  /** The environment to read credentials from (`VAULT_TOKEN`, `STOWAGE_MASTER_KEY`, …). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Where to send warnings. */
  readonly logger: Logger;
  /**
   * Opens a driver of another port from a URL (used by wrappers such as `etcd+sealed://`, which
   * keeps secrets in a config driver, and `tiered://`).
   */
  openDriver<P extends PortName>(port: P, url: string): Promise<DriverOf<P>>;
}

/** The driver type of each port. */
export interface DriverMap {
  /** Config drivers. */
  config: ConfigDriver;
  /** Secrets drivers. */
  secrets: SecretsDriver;
  /** Queue drivers. */
  queue: QueueDriver;
  /** Cache drivers. */
  cache: CacheDriver;
  /** Documents drivers. */
  documents: DocumentsDriver;
}

/** The driver type of port `P`. */
export type DriverOf<P extends PortName> = DriverMap[P];

/** How an adapter opens one scheme for one port. */
export interface SchemeDefinition<P extends PortName = PortName> {
  /** The port. */
  readonly port: P;
  /** The scheme, lower-case, without `://`. */
  readonly scheme: string;
  /** The query parameters the scheme accepts; any other is INVALID_ARGUMENT before `open` runs. */
  readonly params: readonly string[];
  /** Opens a driver. Errors become StowageErrors with credentials removed. */
  open(url: StowageUrl, context: OpenContext): Promise<DriverOf<P>>;
  /**
   * Checks, touching nothing, that `open` can run here (a client library or a Node feature it needs), so that
   * a profile is refused before any of its ports creates files. Throws a StowageError when it cannot.
   */
  preflight?(url: StowageUrl): void;
  /**
   * For a scheme that keeps its data on the local disk: the file or folder `url` stores in, resolved exactly
   * as `open` resolves it (`dataDir` is the profile's data folder). When that lies inside the data folder, the
   * folder's lock is taken before the port opens. May throw for a URL `open` would refuse.
   */
  localPath?(url: StowageUrl, dataDir: string): string;
}

/** A registered scheme: its definition, loaded when first needed. */
export interface SchemeEntry<P extends PortName = PortName> {
  /** The port. */
  readonly port: P;
  /** The scheme. */
  readonly scheme: string;
  /** Loads the definition (typically a dynamic `import()` of the adapter). */
  readonly load: () => Promise<SchemeDefinition<P>>;
  /**
   * The npm packages the adapter imports, as `npm install` arguments (`ioredis@5`). When `load` fails because
   * one is missing, the error gives the one `npm install` line that installs them all.
   */
  readonly packages?: readonly string[];
}

/** The package a failed import names (`Cannot find package 'x'` / `Cannot find module 'x'`), if that is why it failed. */
function missingPackageOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return undefined;
  const name = /Cannot find (?:package|module) '([^']+)'/.exec(String((err as { message?: unknown }).message))?.[1];
  // A relative or absolute path is a file of the adapter itself gone missing, not a client to install.
  return name === undefined || name.startsWith('.') || name.startsWith('/') ? undefined : name.replace(/^((?:@[^/]+\/)?[^/]+).*$/, '$1');
}

/**
 * UNSUPPORTED for a scheme whose client library is not installed: the installation, not the backend, lacks
 * it, so retrying (UNAVAILABLE) cannot help and the URL is not wrong (INVALID_ARGUMENT). The message and
 * `details.install` hold one `npm install` line with every package the scheme needs.
 */
export function missingClientError(scheme: string, missing: string, packages: readonly string[] | undefined): StowageError {
  const wanted = packages !== undefined && packages.length > 0 ? packages : [missing];
  const install = `npm install ${wanted.join(' ')}`;
  return new StowageError('UNSUPPORTED', `${scheme}:// needs the ${wanted.length > 1 ? 'packages' : 'package'} ${wanted.map((p) => p.replace(/(.)@[^@/]*$/, '$1')).join(', ')} (${missing} is not installed): ${install}`, {
    retryable: false,
    details: { scheme, missing, packages: wanted, install, reason: 'missing-client' satisfies ErrorReason },
  });
}

/** A URL that {@link SchemeRegistry.check} accepted. */
export interface CheckedUrl<P extends PortName> {
  /** Its scheme's definition, loaded. */
  readonly definition: SchemeDefinition<P>;
  /** The URL, parsed. */
  readonly parsed: StowageUrl;
}

/**
 * Maps `(port, scheme)` to adapters. The package's default registry knows every built-in scheme; a
 * third-party adapter calls {@link SchemeRegistry.register}.
 */
export class SchemeRegistry {
  readonly #entries = new Map<string, SchemeEntry>();

  /** Registers (or replaces) a scheme for a port: a definition, or a loader of one. */
  register<P extends PortName>(entry: SchemeDefinition<P> | SchemeEntry<P>): this {
    const normalised: SchemeEntry<P> =
      'load' in entry ? entry : { port: entry.port, scheme: entry.scheme, load: () => Promise.resolve(entry) };
    this.#entries.set(`${entry.port}:${entry.scheme.toLowerCase()}`, normalised as unknown as SchemeEntry);
    return this;
  }

  /** The schemes registered for a port, sorted. */
  schemes(port: PortName): string[] {
    return [...this.#entries.values()]
      .filter((e) => e.port === port)
      .map((e) => e.scheme)
      .sort();
  }

  /**
   * Parses `url`, finds and loads its scheme for `port`, refuses unknown query parameters and runs the
   * scheme's preflight: everything {@link SchemeRegistry.open} checks before it opens anything.
   *
   * @throws StowageError INVALID_ARGUMENT for an unknown scheme (naming the known ones) or an unknown
   *   parameter (naming it); UNSUPPORTED when the scheme's client library is not installed.
   */
  async check<P extends PortName>(port: P, url: string): Promise<CheckedUrl<P>> {
    const parsed = parseUrl(url);
    const entry = this.#entries.get(`${port}:${parsed.scheme}`) as SchemeEntry<P> | undefined;
    if (!entry) {
      throw new StowageError(
        'INVALID_ARGUMENT',
        `unknown ${port} scheme "${parsed.scheme}://" in ${parsed.redacted} (known: ${this.schemes(port)
          .map((s) => `${s}://`)
          .join(', ')})`,
      );
    }
    const definition = await entry.load().catch((err: unknown) => {
      const missing = missingPackageOf(err);
      throw missing === undefined ? err : missingClientError(parsed.scheme, missing, entry.packages);
    });
    checkParams(parsed, definition.params);
    definition.preflight?.(parsed);
    return { definition, parsed };
  }

  /**
   * Checks `url` (see {@link SchemeRegistry.check}) and opens the driver.
   *
   * @throws StowageError INVALID_ARGUMENT for an unknown scheme (naming the known ones) or an unknown
   *   parameter (naming it).
   */
  async open<P extends PortName>(port: P, url: string, context: Omit<OpenContext, 'openDriver'>): Promise<DriverOf<P>> {
    const { definition, parsed } = await this.check(port, url);
    const full: OpenContext = { ...context, openDriver: (p, u) => this.open(p, u, context) };
    try {
      return await definition.open(parsed, full);
    } catch (err) {
      if (StowageError.is(err)) throw err;
      throw toStowageError(err, { operation: `open ${parsed.redacted}`, backend: parsed.scheme });
    }
  }
}
