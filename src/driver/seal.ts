/**
 * Encryption at rest shared by the file keyring and sealed secrets: a master key stretched by scrypt
 * with a random salt into an AES-256-GCM key and an HMAC-SHA-256 key; every sealed value gets a fresh
 * random 12-byte nonce and is bound to associated data (the secret's name), so records cannot be swapped.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../core/registry.js';
import { createFileExclusive, fileSystemError } from './durable-file.js';
import { StowageError } from '../ports/errors.js';

/** scrypt cost parameters, stored with the salt so they can be raised later without breaking old data. */
export interface KdfParams {
  /** Always `scrypt`. */
  readonly name: 'scrypt';
  /** CPU/memory cost (a power of two). */
  readonly N: number;
  /** Block size. */
  readonly r: number;
  /** Parallelism. */
  readonly p: number;
  /** The random salt, base64. */
  readonly salt: string;
}

/** The keys derived from a master key: one for AES-256-GCM, one for HMAC-SHA-256. */
export interface SealKeys {
  /** AES-256-GCM key. */
  readonly enc: Buffer;
  /** HMAC-SHA-256 key, for integrity of data kept beside the sealed values. */
  readonly mac: Buffer;
}

/** The scrypt cost of new keyrings: N = 2^15, r = 8, p = 1 (about 32 MiB and 100 ms per derivation). */
export const DEFAULT_KDF_COST: Readonly<KdfCost> = Object.freeze({ N: 2 ** 15, r: 8, p: 1 });

/** scrypt's cost parameters. */
export interface KdfCost {
  /** CPU/memory cost, a power of two. */
  readonly N: number;
  /** Block size. */
  readonly r: number;
  /** Parallelism. */
  readonly p: number;
}
/** The shortest master key accepted, in bytes. */
export const MIN_MASTER_KEY_BYTES = 16;

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_CHECK_PLAINTEXT = Buffer.from('stowage key check v1');
const KEY_CHECK_AAD = Buffer.from('stowage:key-check');

/** New KDF parameters with a fresh 16-byte salt. */
export function newKdfParams(cost: KdfCost = DEFAULT_KDF_COST): KdfParams {
  return { name: 'scrypt', N: cost.N, r: cost.r, p: cost.p, salt: randomBytes(16).toString('base64') };
}

/** Checks KDF parameters read from storage; anything odd means the stored header is damaged. */
export function checkKdfParams(value: unknown, where: string): KdfParams {
  const k = value as Partial<KdfParams> | null;
  const powerOfTwo = (n: unknown): boolean => typeof n === 'number' && Number.isInteger(n) && n >= 2 && n <= 2 ** 20 && (n & (n - 1)) === 0;
  const small = (n: unknown): boolean => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 16;
  if (
    typeof k !== 'object' ||
    k === null ||
    k.name !== 'scrypt' ||
    !powerOfTwo(k.N) ||
    !small(k.r) ||
    !small(k.p) ||
    typeof k.salt !== 'string' ||
    Buffer.from(k.salt, 'base64').byteLength < 16
  ) {
    throw new StowageError('CORRUPTED', `${where}: key-derivation parameters are damaged`, { details: { where } });
  }
  return { name: 'scrypt', N: k.N as number, r: k.r as number, p: k.p as number, salt: k.salt };
}

/** Stretches the master key with scrypt (on libuv's thread pool) into the sealing keys. */
export function deriveKeys(masterKey: Uint8Array, params: KdfParams): Promise<SealKeys> {
  return new Promise((resolve, reject) => {
    const maxmem = 128 * params.N * params.r * 2 + 1024 * 1024;
    scrypt(masterKey, Buffer.from(params.salt, 'base64'), 64, { N: params.N, r: params.r, p: params.p, maxmem }, (err, out) => {
      if (err) reject(new StowageError('INTERNAL', `key derivation failed: ${err.message}`));
      else resolve({ enc: out.subarray(0, 32), mac: out.subarray(32, 64) });
    });
  });
}

/** Encrypts `plaintext` bound to `aad`: nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes). */
export function seal(keys: SealKeys, plaintext: Uint8Array, aad: string | Uint8Array): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keys.enc, nonce);
  cipher.setAAD(typeof aad === 'string' ? Buffer.from(aad, 'utf8') : aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

/** Decrypts what {@link seal} made with the same `aad`; undefined when authentication fails. */
export function unseal(keys: SealKeys, sealed: Uint8Array, aad: string | Uint8Array): Buffer | undefined {
  if (sealed.byteLength < NONCE_BYTES + TAG_BYTES) return undefined;
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  try {
    const decipher = createDecipheriv('aes-256-gcm', keys.enc, buf.subarray(0, NONCE_BYTES));
    decipher.setAAD(typeof aad === 'string' ? Buffer.from(aad, 'utf8') : aad);
    decipher.setAuthTag(buf.subarray(buf.byteLength - TAG_BYTES));
    return Buffer.concat([decipher.update(buf.subarray(NONCE_BYTES, buf.byteLength - TAG_BYTES)), decipher.final()]);
  } catch {
    return undefined;
  }
}

/** A key-check record: a known plaintext sealed under the keys, so a wrong master key is told apart from damage. */
export function makeKeyCheck(keys: SealKeys): string {
  return seal(keys, KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD).toString('base64');
}

/** Whether `check` (from {@link makeKeyCheck}) opens under `keys`. */
export function verifyKeyCheck(keys: SealKeys, check: string): boolean {
  const plain = unseal(keys, Buffer.from(check, 'base64'), KEY_CHECK_AAD);
  return plain !== undefined && plain.equals(KEY_CHECK_PLAINTEXT);
}

/** HMAC-SHA-256 of `data`, hex. */
export function mac(keys: SealKeys, data: string | Uint8Array): string {
  return createHmac('sha256', keys.mac).update(data).digest('hex');
}

/** Constant-time comparison of two hex MACs. */
export function macEquals(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.byteLength === y.byteLength && x.byteLength > 0 && timingSafeEqual(x, y);
}

/** SHA-256 of `data`, hex: an unkeyed checksum for headers that must be checked before a key exists. */
export function checksum(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Where a master key comes from, in order of precedence. */
export interface MasterKeySources {
  /** `?masterKeyFile=` from the URL. */
  readonly masterKeyFile?: string;
  /** The environment (`STOWAGE_MASTER_KEY`). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * A key file to use when neither is given, created (mode 0600, 32 random bytes) when `create` allows it.
   * Without it, a missing master key is PERMISSION_DENIED.
   */
  readonly defaultKeyFile?: {
    /** Where the key file is. */
    readonly path: string;
    /** Whether to create it (random, mode 0600) when it does not exist. */
    readonly create: boolean;
  };
  /** Told where a new key file was created. */
  readonly logger: Logger;
  /** Names the store in messages, e.g. the keyring path. */
  readonly what: string;
}

function checkLength(key: Buffer, source: string): Buffer {
  if (key.byteLength < MIN_MASTER_KEY_BYTES) {
    throw new StowageError('INVALID_ARGUMENT', `the master key from ${source} is shorter than ${MIN_MASTER_KEY_BYTES} bytes`);
  }
  return key;
}

async function readKeyFile(path: string, what: string): Promise<Buffer> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const reason = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be read (permission denied)' : `cannot be read (${String(code)})`;
    throw new StowageError(code === 'ENOENT' ? 'NOT_FOUND' : 'PERMISSION_DENIED', `${what}: master key file ${path} ${reason}`);
  }
  return checkLength(Buffer.from(text.trim(), 'utf8'), `file ${path}`);
}

/**
 * Finds the master key: `?masterKeyFile=`, else `STOWAGE_MASTER_KEY`, else the default key file (created
 * with 0600 on first run, with a warning saying where). The key's text is used as given (trailing
 * whitespace of a file trimmed); scrypt does the stretching.
 */
export async function resolveMasterKey(sources: MasterKeySources): Promise<Buffer> {
  if (sources.masterKeyFile !== undefined) return readKeyFile(sources.masterKeyFile, sources.what);
  const fromEnv = sources.env.STOWAGE_MASTER_KEY;
  if (fromEnv !== undefined && fromEnv !== '') return checkLength(Buffer.from(fromEnv, 'utf8'), 'STOWAGE_MASTER_KEY');
  const fallback = sources.defaultKeyFile;
  if (fallback === undefined) {
    throw new StowageError('PERMISSION_DENIED', `${sources.what}: no master key (set STOWAGE_MASTER_KEY or ?masterKeyFile=)`);
  }
  try {
    return await readKeyFile(fallback.path, sources.what);
  } catch (err) {
    if (!StowageError.is(err, 'NOT_FOUND')) throw err;
    if (!fallback.create) {
      throw new StowageError(
        'PERMISSION_DENIED',
        `${sources.what}: no master key: ${fallback.path} is missing and neither STOWAGE_MASTER_KEY nor ?masterKeyFile= is set`,
      );
    }
  }
  // 0700: the folder of the master key (and of the keyring beside it) is nobody else's to write.
  await mkdir(dirname(fallback.path), { recursive: true, mode: 0o700 });
  const key = randomBytes(32).toString('base64');
  let created: boolean;
  try {
    // Complete or absent, never a truncated key (a full disk): and it never replaces a key file another process
    // created in the meantime.
    created = await createFileExclusive(fallback.path, `${key}\n`, { mode: 0o600 });
  } catch (err) {
    throw fileSystemError(err, 'create the master key file', fallback.path);
  }
  if (!created) return readKeyFile(fallback.path, sources.what);
  sources.logger.warn(
    `${sources.what}: created a new master key file ${fallback.path} (mode 0600); back it up: without it the secrets cannot be read. Set STOWAGE_MASTER_KEY or ?masterKeyFile= to use another key.`,
  );
  return Buffer.from(key, 'utf8');
}
