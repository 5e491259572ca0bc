/**
 * `file://` secrets: an encrypted keyring in one file.
 *
 * The file has three lines:
 * 1. a header (JSON): format, scrypt parameters with their random salt, a key-check record, and a SHA-256
 *    checksum of the header itself — so damage to the header is told apart from a wrong master key;
 * 2. the body (JSON): per secret, its versions' metadata and their values, each sealed with AES-256-GCM
 *    under a fresh random nonce, bound to `name NUL version` as associated data;
 * 3. an HMAC-SHA-256 of lines 1 and 2 under a key derived from the master key, so one flipped byte
 *    anywhere is CORRUPTED, never a silently different answer.
 *
 * Every change rewrites the file atomically (`writeFileAtomic`: temp file (0600) → fsync → rename → fsync of
 * the folder), under `<keyring>.lock` so that several processes sharing a keyring never lose each other's
 * versions (each reloads the file when another has replaced it). A full disk refuses the change
 * (RESOURCE_EXHAUSTED naming the file) and leaves the keyring as it was.
 * Names and version metadata are not secret (Vault shows them too); values never leave memory in clear.
 *
 * @module
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { fileSystemError, writeFileAtomic } from '../../driver/durable-file.js';
import { removeDeadProcessTemps } from '../../driver/pid-lock.js';
import { dirname, isAbsolute, join } from 'node:path';
import type { Logger, OpenContext, SchemeDefinition } from '../../driver/index.js';
import { withLockFile } from './lock-file.js';
import type { StowageUrl } from '../../driver/url.js';
import {
  checkKdfParams,
  checksum,
  deriveKeys,
  mac,
  macEquals,
  makeKeyCheck,
  newKdfParams,
  resolveMasterKey,
  seal,
  unseal,
  verifyKeyCheck,
  type KdfParams,
  type SealKeys,
} from '../../driver/seal.js';
import type { PingResult } from '../../ports/common.js';
import { StowageError } from '../../ports/errors.js';
import type { SecretRecord, SecretVersionInfo, SecretsCapability, SecretsDriver, SecretWriteResult } from '../../ports/secrets.js';
import { secretVersionConflict, type ErrorReason } from '../../driver/errors.js';

/** The keyring's file name in the data folder when the URL gives no path. */
export const DEFAULT_KEYRING_FILE = 'secrets.keyring';

const FORMAT = 'stowage-keyring';
const FORMAT_VERSION = 1;
/** How long opening a new keyring waits for another process creating it. */
const OPEN_LOCK_TIMEOUT_MS = 30_000;
const CAPABILITIES: ReadonlySet<SecretsCapability> = new Set(['softDelete', 'undelete', 'destroy']);

interface Header {
  readonly format: typeof FORMAT;
  readonly version: number;
  readonly kdf: KdfParams;
  readonly check: string;
}

interface StoredVersion {
  /** When written, ISO 8601. */
  readonly at: string;
  deleted: boolean;
  /** The sealed value (base64), or null once destroyed. */
  data: string | null;
}

/** The decoded body. A Map, not an object: a secret may be named `__proto__`, `constructor` or `toString`. */
type Body = { secrets: Map<string, StoredVersion[]> };

function aadOf(name: string, version: number): string {
  return `${name}\u0000${version}`;
}

/** Options of {@link KeyringSecretsDriver.open}. */
export interface KeyringOptions {
  /** The keyring file (absolute). */
  readonly path: string;
  /** `?masterKeyFile=`. */
  readonly masterKeyFile?: string;
  /** Where `STOWAGE_MASTER_KEY` is read from. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Told where a new key file was created, or that the keyring file is readable by others. */
  readonly logger: Logger;
  /**
   * scrypt cost of a new keyring (an existing one keeps the cost in its header). Lower it only in tests.
   *
   * @defaultValue `DEFAULT_KDF_COST` (N = 2^15, r = 8, p = 1)
   */
  readonly kdfCost?: {
    /** scrypt's CPU/memory cost (a power of two). */
    readonly N: number;
    /** scrypt's block size. */
    readonly r: number;
    /** scrypt's parallelisation. */
    readonly p: number;
  };
}

/**
 * The keys of the keyring's own key file (`<keyring>.key`), when STOWAGE_MASTER_KEY was tried first and did not
 * open it. A keyring made on the standalone defaults has its own key file; the environment key may belong to
 * another store opened by the same process — `stowage migrate` opens an `etcd+sealed://` target beside it — and
 * must not lock the keyring out. An explicit `?masterKeyFile=` is never second-guessed.
 */
async function ownKeyFileKeys(options: KeyringOptions, keyFile: string, kdf: KdfParams): Promise<SealKeys | undefined> {
  const fromEnv = options.env.STOWAGE_MASTER_KEY;
  if (options.masterKeyFile !== undefined || fromEnv === undefined || fromEnv === '') return undefined;
  const key = await resolveMasterKey({ env: {}, defaultKeyFile: { path: keyFile, create: false }, logger: options.logger, what: `keyring ${options.path}` }).catch(
    (err: unknown) => {
      // A missing or unreadable key file leaves the environment key's refusal as the answer.
      if (err instanceof StowageError) return undefined;
      throw err;
    },
  );
  return key === undefined ? undefined : deriveKeys(key, kdf);
}

/**
 * The encrypted keyring. It keeps the decoded body in memory, reloads it when another process (or
 * instance) has replaced the file, and writes one change at a time under the keyring's lock file.
 */
export class KeyringSecretsDriver implements SecretsDriver {
  /** Always `file`. */
  readonly backend = 'file';
  /** Soft delete, undelete and destroy. */
  readonly capabilities = CAPABILITIES;
  readonly #path: string;
  readonly #keys: SealKeys;
  readonly #headerLine: string;
  #body: Body;
  /** The file as last read or written by this process: a different inode, size or time means another writer. */
  #stamp: FileStamp | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(path: string, keys: SealKeys, headerLine: string, body: Body) {
    this.#path = path;
    this.#keys = keys;
    this.#headerLine = headerLine;
    this.#body = body;
  }

  /**
   * Opens the keyring at `options.path`, creating it (0600) and, without a master key, a key file beside
   * it (`<keyring>.key`, 0600) on first run.
   *
   * @throws StowageError CORRUPTED naming the file when any byte of it is damaged; PERMISSION_DENIED when the
   *   master key does not open it (nothing else is said).
   */
  static async open(options: KeyringOptions): Promise<KeyringSecretsDriver> {
    const { path, logger } = options;
    const what = `keyring ${path}`;
    // Temporary files of writers that died (they hold only sealed data).
    await removeDeadProcessTemps(path);
    let text = await readText(path);
    const defaultKeyFile = { path: `${path}.key`, create: text === undefined };
    const master = await resolveMasterKey({ masterKeyFile: options.masterKeyFile, env: options.env, defaultKeyFile, logger, what });
    if (text === undefined) {
      // 0700: whoever can write the keyring's folder can swap in a keyring of their own.
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      // Under the lock, so two processes opening a new keyring at once agree on one header and salt.
      const created = await withLockFile(`${path}.lock`, AbortSignal.timeout(OPEN_LOCK_TIMEOUT_MS), async () => {
        text = await readText(path);
        if (text !== undefined) return undefined;
        const kdf = newKdfParams(options.kdfCost);
        const keys = await deriveKeys(master, kdf);
        const headerLine = encodeHeader({ format: FORMAT, version: FORMAT_VERSION, kdf, check: makeKeyCheck(keys) });
        const driver = new KeyringSecretsDriver(path, keys, headerLine, { secrets: new Map() });
        await driver.#write(driver.#body);
        return driver;
      });
      if (created !== undefined) return created;
    }
    const mode = (await stat(path)).mode;
    if ((mode & 0o077) !== 0) logger.warn(`${what} is readable by other users (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
    const [headerLine, bodyLine, macLine] = splitLines(text as string, path);
    const header = decodeHeader(headerLine, path);
    let keys = await deriveKeys(master, header.kdf);
    if (!verifyKeyCheck(keys, header.check)) {
      const own = await ownKeyFileKeys(options, defaultKeyFile.path, header.kdf);
      if (own === undefined || !verifyKeyCheck(own, header.check)) {
        throw new StowageError('PERMISSION_DENIED', `the master key does not open ${what}`, { details: { path, reason: 'wrong-master-key' satisfies ErrorReason } });
      }
      keys = own;
    }
    const driver = new KeyringSecretsDriver(path, keys, headerLine, { secrets: new Map() });
    driver.#body = driver.#decode(headerLine, bodyLine, macLine);
    return driver;
  }

  /** Reads and decrypts a version. */
  async get(name: string, version: number | undefined): Promise<SecretRecord | undefined> {
    await this.#refresh();
    const versions = this.#body.secrets.get(name);
    if (versions === undefined) return undefined;
    const number = version ?? versions.length;
    const stored = versions[number - 1];
    if (stored === undefined || stored.deleted || stored.data === null) return undefined;
    const value = unseal(this.#keys, Buffer.from(stored.data, 'base64'), aadOf(name, number));
    if (value === undefined) throw damaged(this.#path, `secret ${JSON.stringify(name)} version ${number} fails authentication`);
    return { version: number, value: new Uint8Array(value.buffer, value.byteOffset, value.byteLength), createdAt: new Date(stored.at) };
  }

  /** Seals the value as the next version and rewrites the file. */
  put(name: string, value: Uint8Array, ifVersion: number | undefined, signal: AbortSignal): Promise<SecretWriteResult> {
    return this.#change(signal, (body) => {
      const versions = body.secrets.get(name) ?? [];
      body.secrets.set(name, versions);
      if (ifVersion !== undefined && ifVersion !== versions.length) {
        throw secretVersionConflict(name, ifVersion, versions.length);
      }
      const version = versions.length + 1;
      versions.push({ at: new Date().toISOString(), deleted: false, data: seal(this.#keys, value, aadOf(name, version)).toString('base64') });
      return { version };
    });
  }

  /** Marks versions deleted. */
  delete(name: string, versions: readonly number[] | undefined, signal: AbortSignal): Promise<void> {
    return this.#change(signal, (body) => {
      const stored = existing(body, name);
      for (const v of versions ?? [stored.length]) {
        const s = stored[v - 1];
        if (s !== undefined && s.data !== null) s.deleted = true;
      }
    });
  }

  /** Clears the deleted mark. */
  undelete(name: string, versions: readonly number[], signal: AbortSignal): Promise<void> {
    return this.#change(signal, (body) => {
      const stored = existing(body, name);
      for (const v of versions) {
        const s = stored[v - 1];
        if (s !== undefined) s.deleted = false;
      }
    });
  }

  /** Removes the ciphertext of versions (or the whole secret) from the file. */
  destroy(name: string, versions: readonly number[] | undefined, signal: AbortSignal): Promise<void> {
    return this.#change(signal, (body) => {
      if (versions === undefined) {
        body.secrets.delete(name);
        return;
      }
      const stored = existing(body, name);
      for (const v of versions) {
        const s = stored[v - 1];
        if (s !== undefined) {
          s.data = null;
          s.deleted = false;
        }
      }
    });
  }

  /** Names under `prefix` with a version not destroyed. */
  async list(prefix: string): Promise<string[]> {
    await this.#refresh();
    return [...this.#body.secrets]
      .filter(([name, versions]) => name.startsWith(prefix) && versions.some((v) => v.data !== null))
      .map(([name]) => name)
      .sort();
  }

  /** Version metadata, oldest first. */
  async versions(name: string): Promise<SecretVersionInfo[] | undefined> {
    await this.#refresh();
    return this.#body.secrets.get(name)?.map((s, i) => ({
      version: i + 1,
      createdAt: new Date(s.at),
      deleted: s.deleted,
      destroyed: s.data === null,
    }));
  }

  /** Checks that the keyring file is still there. */
  async ping(): Promise<PingResult> {
    await stat(this.#path);
    return {};
  }

  /** Waits for the last write. */
  async close(): Promise<void> {
    await this.#queue.catch(() => undefined);
  }

  /** The keyring file's path. */
  native(): {
    /** The keyring file. */
    path: string;
  } {
    return { path: this.#path };
  }

  /**
   * Applies `mutate` to a copy of the latest body, writes it, and only then makes it current, so a failed
   * write leaves memory and file as they were. Writes run one at a time in this process and under
   * `<keyring>.lock` across processes, each starting from what the last writer left.
   */
  #change<T>(signal: AbortSignal, mutate: (body: Body) => T): Promise<T> {
    const next = this.#queue.then(() =>
      withLockFile(`${this.#path}.lock`, signal, async () => {
        signal.throwIfAborted();
        await this.#refresh();
        const body = structuredClone(this.#body);
        const result = mutate(body);
        await this.#write(body);
        this.#body = body;
        return result;
      }),
    );
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** Reloads the file when another process replaced it since this one last read or wrote it. */
  async #refresh(): Promise<void> {
    const before = await stat(this.#path);
    if (this.#stamp !== undefined && sameFile(before, this.#stamp)) return;
    const text = await readText(this.#path);
    if (text === undefined) throw new StowageError('NOT_FOUND', `keyring ${this.#path} was removed`, { details: { path: this.#path } });
    const [headerLine, bodyLine, macLine] = splitLines(text, this.#path);
    this.#body = this.#decode(headerLine, bodyLine, macLine);
    // The stat taken before the read: if the file changed in between, the next call reads it again.
    this.#stamp = before;
  }

  /** Checks a file's lines against this keyring's header and key, and decodes the body. */
  #decode(headerLine: string, bodyLine: string, macLine: string): Body {
    if (headerLine !== this.#headerLine) {
      decodeHeader(headerLine, this.#path);
      throw damaged(this.#path, 'its header changed (another keyring replaced it)');
    }
    if (!macEquals(mac(this.#keys, `${headerLine}\n${bodyLine}`), macLine)) throw damaged(this.#path, 'its integrity check failed');
    return decodeBody(bodyLine, this.#path);
  }

  async #write(body: Body): Promise<void> {
    const bodyLine = JSON.stringify({ secrets: Object.fromEntries(body.secrets) });
    const text = `${this.#headerLine}\n${bodyLine}\n${mac(this.#keys, `${this.#headerLine}\n${bodyLine}`)}\n`;
    try {
      // Always 0600, whatever mode the file had: it holds every secret (sealed).
      await writeFileAtomic(this.#path, text, { mode: 0o600, keepMode: false });
    } catch (err) {
      // The keyring is as it was and the body in memory unchanged (see #change): the next write, once space is
      // back, goes through.
      throw fileSystemError(err, 'replace the keyring', this.#path);
    }
    this.#stamp = await stat(this.#path);
  }
}

interface FileStamp {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

function sameFile(a: FileStamp, b: FileStamp): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

async function readText(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch((err: { code?: unknown }) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

function splitLines(text: string, path: string): [string, string, string] {
  const lines = text.split('\n');
  if (lines.length !== 4 || lines[3] !== '') throw damaged(path, 'it does not have the three lines of a keyring');
  return lines.slice(0, 3) as [string, string, string];
}

function damaged(path: string, why: string): StowageError {
  return new StowageError('CORRUPTED', `keyring ${path} is damaged: ${why}`, { details: { path } });
}

function existing(body: Body, name: string): StoredVersion[] {
  const stored = body.secrets.get(name);
  if (stored === undefined) throw new StowageError('NOT_FOUND', `secret ${JSON.stringify(name)} does not exist`, { details: { name } });
  return stored;
}

function encodeHeader(header: Header): string {
  const content = JSON.stringify(header);
  return JSON.stringify({ ...header, sum: checksum(content) });
}

function decodeHeader(line: string, path: string): Header {
  let parsed: Partial<Header> & { sum?: unknown };
  try {
    parsed = JSON.parse(line) as Partial<Header> & { sum?: unknown };
  } catch {
    throw damaged(path, 'its header is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null) throw damaged(path, 'its header is not an object');
  const { sum, ...rest } = parsed;
  if (typeof sum !== 'string' || checksum(JSON.stringify(rest)) !== sum) throw damaged(path, 'its header checksum does not match');
  if (rest.format !== FORMAT) throw damaged(path, 'it is not a Stowage keyring');
  if (rest.version !== FORMAT_VERSION) {
    throw new StowageError('UNSUPPORTED', `keyring ${path} has format version ${String(rest.version)}; this Stowage reads version ${FORMAT_VERSION}`);
  }
  if (typeof rest.check !== 'string') throw damaged(path, 'its key check is missing');
  return { format: FORMAT, version: FORMAT_VERSION, kdf: checkKdfParams(rest.kdf, `keyring ${path}`), check: rest.check };
}

function decodeBody(line: string, path: string): Body {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw damaged(path, 'its body is not valid JSON');
  }
  const secrets = (parsed as { secrets?: unknown } | null)?.secrets;
  if (typeof secrets !== 'object' || secrets === null || Array.isArray(secrets)) throw damaged(path, 'its body has no secrets table');
  for (const [name, versions] of Object.entries(secrets)) {
    const ok =
      Array.isArray(versions) &&
      versions.every(
        (v: Partial<StoredVersion> | null) =>
          typeof v === 'object' &&
          v !== null &&
          typeof v.at === 'string' &&
          !Number.isNaN(Date.parse(v.at)) &&
          typeof v.deleted === 'boolean' &&
          (v.data === null || typeof v.data === 'string'),
      );
    if (!ok) throw damaged(path, `the versions of secret ${JSON.stringify(name)} are malformed`);
  }
  // JSON.parse makes `__proto__` an own key; Object.entries reads it like any other name.
  return { secrets: new Map(Object.entries(secrets as Record<string, StoredVersion[]>)) };
}

function keyringPath(url: StowageUrl, context: Pick<OpenContext, 'dataDir'>): string {
  if (url.hosts.length > 0) {
    throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: a file:// keyring URL takes no host (use file:///absolute/path)`);
  }
  if (url.path === '' || url.path === '/') return join(context.dataDir, DEFAULT_KEYRING_FILE);
  if (!isAbsolute(url.path)) throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: the keyring path must be absolute`);
  return url.path;
}

/**
 * The `file://` scheme of the secrets port: `file:///var/lib/app/secrets.keyring[?masterKeyFile=/path]`
 * (`file://` alone puts `secrets.keyring` in the data folder). The master key comes from `?masterKeyFile=`,
 * else `STOWAGE_MASTER_KEY`, else `<keyring>.key`, created with mode 0600 on first run (with a warning). A
 * keyring that STOWAGE_MASTER_KEY does not open is tried with its own `<keyring>.key` when that file exists.
 */
export const fileSecretsScheme: SchemeDefinition<'secrets'> = {
  port: 'secrets',
  scheme: 'file',
  params: ['masterKeyFile'],
  localPath: (url, dataDir) => keyringPath(url, { dataDir }),
  open: (url, context) =>
    KeyringSecretsDriver.open({
      path: keyringPath(url, context),
      masterKeyFile: url.params.get('masterKeyFile'),
      env: context.env,
      logger: context.logger,
    }),
};
