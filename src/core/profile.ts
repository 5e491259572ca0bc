/**
 * Profiles: which URL stands behind each port.
 *
 * Precedence, highest first, port by port:
 * 1. code — the fields of the {@link Profile} passed to `createStowage()`;
 * 2. environment — `STOWAGE_CONFIG_URL`, `STOWAGE_SECRETS_URL`, `STOWAGE_QUEUE_URL`, `STOWAGE_CACHE_URL`,
 *    `STOWAGE_DOCUMENTS_URL`, `STOWAGE_DATA_DIR`, `STOWAGE_TIMEOUT_MS`;
 * 3. a profile file — `profileFile` in code, else `STOWAGE_PROFILE`, else `./stowage.yaml`, `./stowage.yml`
 *    or `./stowage.json` when present: `{ dataDir, timeoutMs, config, secrets, queue, cache, documents }`;
 * 4. the standalone defaults: every port under the data folder (`./.stowage` unless set).
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { StowageError } from '../ports/errors.js';
import type { PortName } from '../ports/common.js';
import { pathUrl } from '../driver/url.js';

/** The ports, in the order they are opened. */
export const PORTS: readonly PortName[] = Object.freeze(['config', 'secrets', 'queue', 'cache', 'documents']);

/** A profile: a URL per port plus shared settings. Every field is optional. */
export interface Profile {
  /** The config port's URL, e.g. `etcd://10.0.0.1:2379/myapp` or `file:///var/lib/app/config.json`. */
  config?: string;
  /** The secrets port's URL, e.g. `vault://vault:8200/secret` or `etcd+sealed://10.0.0.1:2379/myapp`. */
  secrets?: string;
  /** The queue port's URL, e.g. `nats://n1:4222?stream=jobs` or `disk:///var/lib/app/queue`. */
  queue?: string;
  /** The cache port's URL, e.g. `redis://cache:6379/0` or `mem://`. */
  cache?: string;
  /** The documents port's URL, e.g. `mysql://app@db:3306/app` or `sqlite:///var/lib/app/docs.db`. */
  documents?: string;
  /** The standalone data folder (default `./.stowage`). */
  dataDir?: string;
  /** Default deadline of every call, in milliseconds (default 10 000). */
  timeoutMs?: number;
  /** A `stowage.yaml` / `stowage.json` file to read (instead of looking in the working folder). */
  profileFile?: string;
}

/** Where a resolved URL came from. */
export type ProfileSource = 'code' | 'environment' | 'file' | 'default';

/** A profile with every port decided. */
export interface ResolvedProfile {
  /** The URL of each port. */
  readonly urls: Readonly<Record<PortName, string>>;
  /** Where each URL came from. */
  readonly sources: Readonly<Record<PortName, ProfileSource>>;
  /** The absolute data folder. */
  readonly dataDir: string;
  /** The default call deadline. */
  readonly timeoutMs: number | undefined;
  /** The profile file that was read, if any. */
  readonly file: string | undefined;
}

const ENV_NAMES: Readonly<Record<PortName, string>> = {
  config: 'STOWAGE_CONFIG_URL',
  secrets: 'STOWAGE_SECRETS_URL',
  queue: 'STOWAGE_QUEUE_URL',
  cache: 'STOWAGE_CACHE_URL',
  documents: 'STOWAGE_DOCUMENTS_URL',
};

/** The environment variable that names each port's URL. */
export function envNameOf(port: PortName): string {
  return ENV_NAMES[port];
}

/**
 * The standalone URL of each port for a data folder: everything embedded, no service to run. Paths are
 * percent-encoded, so a folder named with `?`, `#`, `%` or a literal `%2e%2e` stays that folder.
 */
export function standaloneUrls(dataDir: string): Record<PortName, string> {
  return {
    config: pathUrl('file', join(dataDir, 'config.json')),
    secrets: pathUrl('file', join(dataDir, 'secrets.keyring')),
    queue: pathUrl('disk', join(dataDir, 'queue')),
    cache: 'mem://',
    documents: pathUrl('sqlite', join(dataDir, 'documents.db')),
  };
}

const FILE_KEYS = new Set(['config', 'secrets', 'queue', 'cache', 'documents', 'dataDir', 'timeoutMs']);

async function readProfileFile(path: string, { required }: { required: boolean }): Promise<Profile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (!required && (err as { code?: string }).code === 'ENOENT') return undefined;
    throw new StowageError('INVALID_ARGUMENT', `cannot read profile file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new StowageError('INVALID_ARGUMENT', `profile file ${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new StowageError('INVALID_ARGUMENT', `profile file ${path} must hold an object with keys ${[...FILE_KEYS].join(', ')}`);
  }
  for (const [key, value] of Object.entries(parsed)) {
    if (!FILE_KEYS.has(key)) {
      throw new StowageError('INVALID_ARGUMENT', `profile file ${path} has an unknown key "${key}" (known: ${[...FILE_KEYS].join(', ')})`);
    }
    if (key === 'timeoutMs' ? typeof value !== 'number' : typeof value !== 'string') {
      throw new StowageError('INVALID_ARGUMENT', `profile file ${path}: "${key}" must be a ${key === 'timeoutMs' ? 'number' : 'string'}`);
    }
  }
  return parsed as Profile;
}

/**
 * Decides the URL of every port from code, environment, profile file and defaults (in that precedence).
 *
 * @param profile - what the code says
 * @param options.env - the environment (default `process.env`)
 * @param options.cwd - where relative paths and `./stowage.yaml` are looked up (default `process.cwd()`)
 */
export async function resolveProfile(
  profile: Profile = {},
  options: { env?: Readonly<Record<string, string | undefined>>; cwd?: string } = {},
): Promise<ResolvedProfile> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  let file: string | undefined;
  let fromFile: Profile | undefined;
  const named = profile.profileFile ?? env.STOWAGE_PROFILE;
  if (named) {
    file = resolve(cwd, named);
    fromFile = await readProfileFile(file, { required: true });
  } else {
    for (const candidate of ['stowage.yaml', 'stowage.yml', 'stowage.json']) {
      const path = join(cwd, candidate);
      fromFile = await readProfileFile(path, { required: false });
      if (fromFile) {
        file = path;
        break;
      }
    }
  }
  const dataDirText = profile.dataDir ?? env.STOWAGE_DATA_DIR ?? fromFile?.dataDir ?? '.stowage';
  const dataDir = isAbsolute(dataDirText) ? dataDirText : resolve(cwd, dataDirText);
  const defaults = standaloneUrls(dataDir);
  const urls = {} as Record<PortName, string>;
  const sources = {} as Record<PortName, ProfileSource>;
  for (const port of PORTS) {
    const candidates: [string | undefined, ProfileSource][] = [
      [profile[port], 'code'],
      [env[ENV_NAMES[port]], 'environment'],
      [fromFile?.[port], 'file'],
      [defaults[port], 'default'],
    ];
    const [url, source] = candidates.find(([u]) => u !== undefined && u !== '') as [string, ProfileSource];
    urls[port] = url;
    sources[port] = source;
  }
  // Every source given is checked, not only the one that wins: `doctor` sets its own deadline in code, and a
  // malformed variable must still be reported there rather than at the service's first start.
  const fromEnv = env.STOWAGE_TIMEOUT_MS === undefined || env.STOWAGE_TIMEOUT_MS === '' ? undefined : checkTimeout(env.STOWAGE_TIMEOUT_MS, 'STOWAGE_TIMEOUT_MS');
  const timeoutMs =
    (profile.timeoutMs === undefined ? undefined : checkTimeout(profile.timeoutMs, 'timeoutMs')) ??
    fromEnv ??
    (fromFile?.timeoutMs === undefined ? undefined : checkTimeout(fromFile.timeoutMs, `timeoutMs in ${file ?? 'the profile file'}`));
  return { urls, sources, dataDir, timeoutMs, file };
}

/** A deadline in milliseconds: a positive integer (a decimal string from the environment), else INVALID_ARGUMENT naming where it came from. */
function checkTimeout(value: number | string, where: string): number {
  const n = typeof value === 'string' ? (/^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN) : value;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new StowageError('INVALID_ARGUMENT', `${where} must be a positive integer number of milliseconds, got ${JSON.stringify(String(value))}`);
  }
  return n;
}
