/**
 * `vault://` secrets over HashiCorp Vault's KV version 2 engine, with the node-vault client.
 *
 * Every error leaving this file is a StowageError built here: node-vault's and axios's error objects
 * carry request options and headers (the token), so they are never kept, not even as `cause` — only a
 * copy with name, code and a redacted message.
 *
 * @module
 */
import type NodeVault from 'node-vault';
import { redact, safeCause } from '../../driver/errors.js';
import type { Logger } from '../../driver/index.js';
import { quote } from '../../driver/validate.js';
import type { PingResult } from '../../ports/common.js';
import { StowageError, type StowageErrorCode } from '../../ports/errors.js';
import type { SecretRecord, SecretVersionInfo, SecretsCapability, SecretsDriver, SecretWriteResult } from '../../ports/secrets.js';
import { VaultAuth, type VaultAuthConfig, type VaultRequest } from './auth.js';

const CAPABILITIES: ReadonlySet<SecretsCapability> = new Set(['softDelete', 'undelete', 'destroy']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_NETWORK', 'ERR_SOCKET_CONNECTION_TIMEOUT']);
/** How long one HTTP request may take before the client gives up (the call's own deadline usually ends it sooner). */
const REQUEST_TIMEOUT_MS = 30_000;
/** How many metadata reads `list` runs at once to drop fully destroyed names. */
const LIST_CONCURRENCY = 8;

/** What the scheme gives the driver. */
export interface VaultDriverOptions {
  /** `http(s)://host:port`. */
  readonly endpoint: string;
  /** The KV v2 mount, e.g. `secret`. */
  readonly mount: string;
  /** A prefix for every name inside the mount (`''` or ending with `/`). */
  readonly prefix: string;
  /** `?namespace=` (Vault Enterprise). */
  readonly namespace?: string;
  /** How to authenticate. */
  readonly auth: VaultAuthConfig;
  /** Where renewal problems and request traces (method and path only) go. */
  readonly logger: Logger;
}

interface KvMetadata {
  current_version?: number;
  versions?: Record<string, { created_time?: string; deletion_time?: string; destroyed?: boolean }>;
}

interface KvRead {
  data?: { data?: Record<string, unknown> | null; metadata?: { version?: number; created_time?: string; destroyed?: boolean; deletion_time?: string } };
}

type VaultResponse = Record<string, unknown>;

function segmentPath(path: string): string {
  return path
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
}

/** Stored as `{ value }` when the bytes are UTF-8 text (readable by other Vault tools), else `{ value_base64 }`. */
function encodeValue(bytes: Uint8Array): Record<string, string> {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  return Buffer.from(text, 'utf8').equals(Buffer.from(bytes)) ? { value: text } : { value_base64: Buffer.from(bytes).toString('base64') };
}

function decodeValue(data: Record<string, unknown>): Uint8Array {
  if (typeof data.value === 'string' && Object.keys(data).length === 1) return new TextEncoder().encode(data.value);
  if (typeof data.value_base64 === 'string' && Object.keys(data).length === 1) return new Uint8Array(Buffer.from(data.value_base64, 'base64'));
  // Written by another tool with several fields: the whole object, as JSON.
  return new TextEncoder().encode(JSON.stringify(data));
}

/** The secrets driver over Vault KV v2. */
export class VaultSecretsDriver implements SecretsDriver {
  /** Always `vault`. */
  readonly backend = 'vault';
  /** Soft delete, undelete and destroy. */
  readonly capabilities = CAPABILITIES;
  readonly #client: NodeVault.client;
  readonly #options: VaultDriverOptions;
  readonly #auth: VaultAuth;

  /**
   * @param client - a node-vault client made with a silent `debug` (see the scheme)
   * @param options - endpoint, mount, prefix, namespace and auth
   */
  constructor(client: NodeVault.client, options: VaultDriverOptions) {
    this.#client = client;
    this.#options = options;
    this.#auth = new VaultAuth(
      options.auth,
      async (req) => (await this.#send(req.method, req.path, req.json, req.token, req.path.startsWith('/auth/token') ? 'token lookup' : 'login', [])) as Awaited<ReturnType<VaultRequest>>,
      options.logger,
    );
  }

  /** Reads a version; undefined when absent, soft-deleted or destroyed. */
  async get(name: string, version: number | undefined): Promise<SecretRecord | undefined> {
    const query = version === undefined ? '' : `?version=${version}`;
    const read = (await this.#kv('GET', 'data', name, undefined, 'get', [], { absentOk: true, query })) as KvRead | undefined;
    const data = read?.data?.data;
    const meta = read?.data?.metadata;
    if (data === undefined || data === null || meta === undefined || meta.destroyed === true || (meta.deletion_time ?? '') !== '') return undefined;
    return { version: Number(meta.version), value: decodeValue(data), createdAt: new Date(meta.created_time ?? 0) };
  }

  /** Writes a new version; `ifVersion` becomes Vault's `cas`. */
  async put(name: string, value: Uint8Array, ifVersion: number | undefined): Promise<SecretWriteResult> {
    const data = encodeValue(value);
    const body = ifVersion === undefined ? { data } : { data, options: { cas: ifVersion } };
    const secrets = Object.values(data);
    const res = (await this.#kv('POST', 'data', name, body, 'put', secrets)) as { data?: { version?: number } } | undefined;
    const version = res?.data?.version;
    if (typeof version !== 'number') throw new StowageError('INTERNAL', `vault: put ${quote(name)}: the answer has no version`);
    return { version };
  }

  /** Soft-deletes versions (the latest by default). */
  async delete(name: string, versions: readonly number[] | undefined): Promise<void> {
    await this.#requireMetadata(name, 'delete');
    if (versions === undefined) await this.#kv('DELETE', 'data', name, undefined, 'delete', []);
    else await this.#kv('POST', 'delete', name, { versions }, 'delete', []);
  }

  /** Restores soft-deleted versions. */
  async undelete(name: string, versions: readonly number[]): Promise<void> {
    await this.#requireMetadata(name, 'undelete');
    await this.#kv('POST', 'undelete', name, { versions }, 'undelete', []);
  }

  /** Destroys versions, or deletes the metadata and every version. */
  async destroy(name: string, versions: readonly number[] | undefined): Promise<void> {
    if (versions === undefined) {
      await this.#kv('DELETE', 'metadata', name, undefined, 'destroy', []);
      return;
    }
    await this.#requireMetadata(name, 'destroy');
    await this.#kv('POST', 'destroy', name, { versions }, 'destroy', []);
  }

  /** Walks the metadata tree under the prefix's folder; keeps names with a version not destroyed. */
  async list(prefix: string): Promise<string[]> {
    const start = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const candidates: string[] = [];
    const walk = async (folder: string): Promise<void> => {
      const res = (await this.#kv('GET', 'metadata', folder, undefined, 'list', [], { absentOk: true, query: '?list=true' })) as { data?: { keys?: unknown } } | undefined;
      const keys = Array.isArray(res?.data?.keys) ? (res.data.keys as unknown[]).filter((k): k is string => typeof k === 'string') : [];
      for (const key of keys) {
        const full = folder + key;
        if (key.endsWith('/')) {
          if (full.startsWith(prefix) || prefix.startsWith(full)) await walk(full);
        } else if (full.startsWith(prefix)) {
          candidates.push(full);
        }
      }
    };
    await walk(start);
    const live: string[] = [];
    for (let i = 0; i < candidates.length; i += LIST_CONCURRENCY) {
      const batch = candidates.slice(i, i + LIST_CONCURRENCY);
      const infos = await Promise.all(batch.map((n) => this.versions(n)));
      batch.forEach((n, j) => {
        if (infos[j]?.some((v) => !v.destroyed)) live.push(n);
      });
    }
    return live.sort();
  }

  /** Version metadata from `metadata/<name>`, oldest first. */
  async versions(name: string): Promise<SecretVersionInfo[] | undefined> {
    const res = (await this.#kv('GET', 'metadata', name, undefined, 'versions', [], { absentOk: true })) as { data?: KvMetadata } | undefined;
    const versions = res?.data?.versions;
    if (versions === undefined) return undefined;
    return Object.entries(versions)
      .map(([v, m]) => {
        const destroyed = m.destroyed === true;
        return { version: Number(v), createdAt: new Date(m.created_time ?? 0), deleted: !destroyed && (m.deletion_time ?? '') !== '', destroyed };
      })
      .sort((a, b) => a.version - b.version);
  }

  /** `sys/health`: a real round-trip, with the server version. */
  async ping(): Promise<PingResult> {
    // node-vault resolves sys/health whatever its status, so a sealed or uninitialised server is seen here.
    const res = (await this.#send('GET', '/sys/health', undefined, null, 'health', [])) as { version?: unknown; sealed?: unknown; initialized?: unknown };
    if (res.initialized === false) throw new StowageError('UNAVAILABLE', `vault: ${this.#options.endpoint} is not initialised`);
    if (res.sealed === true) throw new StowageError('UNAVAILABLE', `vault: ${this.#options.endpoint} is sealed`);
    return typeof res.version === 'string' ? { serverVersion: res.version } : {};
  }

  /** Stops token renewal. */
  async close(): Promise<void> {
    this.#auth.close();
  }

  /** The node-vault client (its token is set only per request). */
  native(): NodeVault.client {
    return this.#client;
  }

  async #requireMetadata(name: string, operation: string): Promise<void> {
    if ((await this.versions(name)) === undefined) {
      throw new StowageError('NOT_FOUND', `vault: ${operation}: secret ${quote(name)} does not exist`, { details: { name } });
    }
  }

  /**
   * A KV v2 request for `name` under `kind` (`data`, `metadata`, `delete`, …). With `absentOk`, a 404
   * resolves undefined. A refused token is replaced once by a new login when the auth method allows.
   */
  async #kv(
    method: string,
    kind: string,
    name: string,
    json: unknown,
    operation: string,
    secrets: readonly string[],
    { absentOk = false, query = '' } = {},
  ): Promise<unknown> {
    const path = `/${segmentPath(this.#options.mount)}/${kind}/${segmentPath(this.#options.prefix + name)}${query}`;
    for (let attempt = 0; ; attempt++) {
      const token = await this.#auth.token();
      try {
        return await this.#send(method, path, json, token, `${operation} ${quote(name)}`, secrets);
      } catch (err) {
        if (absentOk && StowageError.is(err, 'NOT_FOUND')) return undefined;
        if (attempt === 0 && StowageError.is(err, 'PERMISSION_DENIED') && this.#auth.canRelogin) {
          this.#auth.invalidate();
          continue;
        }
        throw err;
      }
    }
  }

  /** One HTTP request through node-vault; every failure leaves as a StowageError free of credentials. */
  async #send(method: string, path: string, json: unknown, token: string | null | undefined, what: string, secrets: readonly string[]): Promise<VaultResponse> {
    // The client's own token is empty (see the scheme), so a request without a header carries no token.
    const headers: Record<string, string> = token ? { 'X-Vault-Token': token } : {};
    const request: NodeVault.RequestOption = { method, path, headers, timeout: REQUEST_TIMEOUT_MS };
    if (json !== undefined) request.json = json;
    try {
      return (await this.#client.request(request)) as VaultResponse;
    } catch (err) {
      throw this.#error(err, what, [...secrets, ...this.#auth.secrets, ...(token ? [token] : [])]);
    }
  }

  #error(err: unknown, what: string, secrets: readonly string[]): StowageError {
    const e = err as { response?: { statusCode?: unknown; body?: { errors?: unknown } }; code?: unknown; message?: unknown } | null;
    const cause = safeCause(err, secrets);
    const status = typeof e?.response?.statusCode === 'number' ? e.response.statusCode : undefined;
    if (status !== undefined) {
      const errors = Array.isArray(e?.response?.body?.errors) ? (e.response.body.errors as unknown[]).filter((x) => typeof x === 'string').join('; ') : '';
      const said = redact(errors.replace(/\s+/g, ' ').trim(), secrets).slice(0, 300);
      const code = statusCode(status, said);
      const message = `vault: ${what} failed: HTTP ${status}${said === '' ? '' : `: ${said}`}`;
      return new StowageError(code, message, { cause, details: { status } });
    }
    const errno = typeof e?.code === 'string' ? e.code : undefined;
    if (errno !== undefined && NETWORK_CODES.has(errno)) {
      return new StowageError('UNAVAILABLE', `vault: ${what} failed: ${this.#options.endpoint} unreachable (${errno})`, { cause });
    }
    if (StowageError.is(err)) return err;
    const text = typeof e?.message === 'string' ? redact(e.message, secrets).slice(0, 300) : 'unknown error';
    return new StowageError('INTERNAL', `vault: ${what} failed: ${text}`, { cause });
  }
}

function statusCode(status: number, said: string): StowageErrorCode {
  if (status === 400 && /check-and-set|cas/i.test(said)) return 'CONFLICT';
  if (status === 400) return 'INVALID_ARGUMENT';
  if (status === 401 || status === 403) return 'PERMISSION_DENIED';
  if (status === 404) return 'NOT_FOUND';
  if (status === 412) return 'CONFLICT';
  if (status === 413) return 'RESOURCE_EXHAUSTED';
  if (status === 429) return 'RESOURCE_EXHAUSTED';
  if (status >= 500) return 'UNAVAILABLE';
  return 'INTERNAL';
}
