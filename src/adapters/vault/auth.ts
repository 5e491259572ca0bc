/**
 * Vault authentication for the `vault://` adapter: where the token comes from (a token, AppRole or
 * Kubernetes login), renewing it before it expires, and logging in again before its maximum TTL.
 * Tokens, role ids, secret ids and JWTs are read from files or the environment and never appear in a
 * message.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from '../../driver/index.js';
import { StowageError } from '../../ports/errors.js';

/** The default Kubernetes service-account token file. */
export const KUBERNETES_JWT_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** How the adapter authenticates (`?auth=`). */
export type VaultAuthMethod = 'token' | 'approle' | 'kubernetes';

/** Where the credentials come from. */
export interface VaultAuthConfig {
  /** `?auth=`, default `token`. */
  readonly method: VaultAuthMethod;
  /** `?tokenFile=`: a Vault token (token auth) or a Kubernetes JWT (kubernetes auth). */
  readonly tokenFile?: string;
  /** `?roleIdFile=` (approle). */
  readonly roleIdFile?: string;
  /** `?secretIdFile=` (approle). */
  readonly secretIdFile?: string;
  /** `?role=` (kubernetes). */
  readonly role?: string;
  /**
   * `?authMount=`: the path the AppRole or Kubernetes auth method is mounted at, when not its default
   * (`approle`, `kubernetes`) — e.g. one Kubernetes mount per cluster.
   */
  readonly authMount?: string;
  /** `VAULT_TOKEN` and friends. */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** A raw request to Vault, as the driver sends it: the auth layer only says which token to use. */
export type VaultRequest = (request: { method: string; path: string; json?: unknown; token?: string | null }) => Promise<VaultAuthResponse>;

/** The parts of a Vault login or token-lookup response that authentication reads. */
export interface VaultAuthResponse {
  /** Present on logins and renewals. */
  auth?: {
    /** The token issued. */
    client_token?: string;
    /** Its lifetime in seconds. */
    lease_duration?: number;
    /** Whether it can be renewed. */
    renewable?: boolean;
  };
  /** Present on token lookups. */
  data?: {
    /** Seconds left. */
    ttl?: number;
    /** Whether it can be renewed. */
    renewable?: boolean;
  };
}

interface Session {
  readonly token: string;
  /** Seconds the token lives after it was obtained or last renewed; 0 = never expires. */
  readonly ttl: number;
  readonly renewable: boolean;
}

/** Reads a credential file; its content is never quoted in errors, only its path. */
async function readCredential(path: string, what: string): Promise<string> {
  try {
    const text = (await readFile(path, 'utf8')).trim();
    if (text === '') throw new StowageError('PERMISSION_DENIED', `vault: ${what} file ${path} is empty`);
    return text;
  } catch (err) {
    if (StowageError.is(err)) throw err;
    const code = (err as { code?: unknown }).code;
    throw new StowageError('PERMISSION_DENIED', `vault: cannot read ${what} file ${path} (${String(code ?? 'error')})`);
  }
}

/**
 * Holds the current token and keeps it valid: renewal at two thirds of its TTL, and a fresh login (or a
 * fresh read of the token file) when renewal no longer extends it — that is, when the maximum TTL nears.
 */
export class VaultAuth {
  readonly #config: VaultAuthConfig;
  readonly #request: VaultRequest;
  readonly #logger: Logger;
  #session: Promise<Session> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Every credential seen so far, for redaction of messages. */
  readonly #secrets = new Set<string>();

  /**
   * @throws StowageError INVALID_ARGUMENT when the method's parameters are missing; PERMISSION_DENIED for
   *   token auth with neither `VAULT_TOKEN` nor `?tokenFile=`.
   */
  constructor(config: VaultAuthConfig, request: VaultRequest, logger: Logger) {
    this.#config = config;
    this.#request = request;
    this.#logger = logger;
    if (config.method === 'approle' && (config.roleIdFile === undefined || config.secretIdFile === undefined)) {
      throw new StowageError('INVALID_ARGUMENT', 'vault: ?auth=approle needs ?roleIdFile= and ?secretIdFile=');
    }
    if (config.method === 'kubernetes' && config.role === undefined) {
      throw new StowageError('INVALID_ARGUMENT', 'vault: ?auth=kubernetes needs ?role=');
    }
    if (config.method === 'token' && config.tokenFile === undefined && !config.env.VAULT_TOKEN) {
      throw new StowageError('PERMISSION_DENIED', 'vault: no token (set VAULT_TOKEN or ?tokenFile=, or use ?auth=approle or ?auth=kubernetes)');
    }
    if (config.env.VAULT_TOKEN) this.#secrets.add(config.env.VAULT_TOKEN);
  }

  /** Credentials seen so far (tokens, ids, JWTs), to strip from any text. */
  get secrets(): readonly string[] {
    return [...this.#secrets];
  }

  /** The current token, logging in first when there is none. */
  async token(): Promise<string> {
    if (this.#closed) throw new StowageError('CLOSED', 'vault: the store was closed');
    this.#session ??= this.#start();
    return (await this.#session).token;
  }

  /** Forgets the current token (after Vault refused it) so the next call logs in again. */
  invalidate(): void {
    clearTimeout(this.#timer);
    this.#session = undefined;
  }

  /** Whether a refused token can be replaced by logging in again. */
  get canRelogin(): boolean {
    return this.#config.method !== 'token' || this.#config.tokenFile !== undefined;
  }

  /** Stops renewal. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #start(): Promise<Session> {
    const session = this.#login().then((s) => {
      this.#schedule(s, s.ttl);
      return s;
    });
    // A failed login is not cached: the next call tries again.
    session.catch(() => {
      if (this.#session === session) this.#session = undefined;
    });
    return session;
  }

  async #login(): Promise<Session> {
    const { method } = this.#config;
    if (method === 'token') {
      const token = this.#config.tokenFile !== undefined ? await readCredential(this.#config.tokenFile, 'token') : (this.#config.env.VAULT_TOKEN as string);
      this.#secrets.add(token);
      const info = await this.#request({ method: 'GET', path: '/auth/token/lookup-self', token });
      return { token, ttl: Number(info.data?.ttl ?? 0), renewable: info.data?.renewable === true };
    }
    let body: Record<string, string>;
    let mount: string;
    if (method === 'approle') {
      const roleId = await readCredential(this.#config.roleIdFile as string, 'role id');
      const secretId = await readCredential(this.#config.secretIdFile as string, 'secret id');
      this.#secrets.add(roleId).add(secretId);
      body = { role_id: roleId, secret_id: secretId };
      mount = this.#config.authMount ?? 'approle';
    } else {
      const jwt = await readCredential(this.#config.tokenFile ?? KUBERNETES_JWT_FILE, 'Kubernetes service-account token');
      this.#secrets.add(jwt);
      body = { role: this.#config.role as string, jwt };
      mount = this.#config.authMount ?? 'kubernetes';
    }
    const res = await this.#request({ method: 'POST', path: `/auth/${mount}/login`, json: body, token: null });
    const token = res.auth?.client_token;
    if (typeof token !== 'string' || token === '') throw new StowageError('PERMISSION_DENIED', `vault: ${method} login returned no token`);
    this.#secrets.add(token);
    return { token, ttl: Number(res.auth?.lease_duration ?? 0), renewable: res.auth?.renewable === true };
  }

  /**
   * Plans the next step for a session: renew at two thirds of the TTL while renewal still gives the
   * full TTL; once it gives less (the maximum TTL is near), log in again at two thirds of what is left.
   */
  #schedule(session: Session, requestedTtl: number): void {
    clearTimeout(this.#timer);
    if (this.#closed || session.ttl <= 0) return;
    const delayMs = Math.max(1000, Math.floor((session.ttl * 1000 * 2) / 3));
    const nearMax = session.ttl < requestedTtl * 0.9 || !session.renewable;
    this.#timer = setTimeout(() => void (nearMax ? this.#relogin(session) : this.#renew(session, requestedTtl)), delayMs);
    this.#timer.unref();
  }

  async #renew(session: Session, requestedTtl: number): Promise<void> {
    try {
      const res = await this.#request({ method: 'POST', path: '/auth/token/renew-self', json: { increment: `${requestedTtl}s` }, token: session.token });
      const renewed: Session = { token: session.token, ttl: Number(res.auth?.lease_duration ?? 0), renewable: res.auth?.renewable !== false };
      this.#session = Promise.resolve(renewed);
      this.#schedule(renewed, requestedTtl);
    } catch (err) {
      this.#logger.warn(`vault: token renewal failed (${codeOf(err)}); logging in again`);
      await this.#relogin(session);
    }
  }

  async #relogin(old: Session): Promise<void> {
    if (this.#closed) return;
    if (!this.canRelogin) {
      this.#logger.warn('vault: the token from VAULT_TOKEN nears its maximum TTL and cannot be replaced; use ?tokenFile=, approle or kubernetes auth');
      return;
    }
    try {
      const fresh = await this.#login();
      this.#session = Promise.resolve(fresh);
      this.#schedule(fresh, fresh.ttl);
    } catch (err) {
      this.#logger.warn(`vault: login failed (${codeOf(err)}); retrying`);
      // Keep the old token while it may still work, and try again soon.
      this.#schedule({ ...old, ttl: Math.max(3, Math.floor(old.ttl / 4)), renewable: false }, old.ttl);
    }
  }
}

function codeOf(err: unknown): string {
  if (StowageError.is(err)) return err.code;
  const e = err as { code?: unknown; response?: { statusCode?: unknown } } | null;
  if (typeof e?.response?.statusCode === 'number') return `HTTP ${e.response.statusCode}`;
  return typeof e?.code === 'string' ? e.code : 'error';
}
