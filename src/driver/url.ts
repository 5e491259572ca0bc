/**
 * Parsing backend URLs: `scheme://[user[:password]@]host[:port][,host[:port]…][/path][?query]`, with
 * several hosts allowed (WHATWG `URL` refuses them) and credentials kept out of every printable form.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { StowageError } from '../ports/errors.js';
import { invalid, safeCause } from './errors.js';
import { quote } from './validate.js';

/** One host of a URL. */
export interface UrlHost {
  /** Host name or address (IPv6 without brackets). */
  readonly host: string;
  /** Port, when given. */
  readonly port: number | undefined;
}

/** A parsed backend URL. */
export interface StowageUrl {
  /** The scheme without `://`, lower-cased: `etcd`, `file`, `etcd+sealed`. */
  readonly scheme: string;
  /** Hosts in the order given; empty for `file:///…` and `mem://`. */
  readonly hosts: readonly UrlHost[];
  /** The percent-decoded path, with its leading `/` (`''` when absent). */
  readonly path: string;
  /** Query parameters (last value wins). Adapters read them; core has already refused unknown names. */
  readonly params: ReadonlyMap<string, string>;
  /** The user name from the URL, if any. */
  readonly username: string | undefined;
  /** The password from the URL, if any. Never printed: see {@link StowageUrl.redacted}. */
  readonly password: string | undefined;
  /** The URL with any password replaced by `[redacted]`: safe for logs and errors. */
  readonly redacted: string;
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/is;
/** Query parameters refused outright: a secret never goes in a URL's query. */
const SECRET_PARAMS =
  /^(token|password|passwd|pwd|pass|secret|key|masterkey|auth_token|access_token|accesstoken|api_key|apikey|client_secret|secret_key|private_key|credentials?)$/i;
/**
 * Query parameters whose value is never printed (a wider net than {@link SECRET_PARAMS}, which refuses
 * them): anything that may name a secret. `…File` parameters hold a path, which is shown.
 */
const SECRET_LOOKING = /pass|pwd|secret|token|key|auth|cred|sig|session|cookie|private/i;

/** What {@link redactUrlText} prints for text that is not `scheme://…`: such text is never echoed. */
const UNPARSED = '[unparsable URL, not shown]';

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw invalid(`URL ${what} has a bad percent-encoding`);
  }
}

/** A URL cut into its raw (still percent-encoded) parts, before any validation. */
interface UrlParts {
  readonly scheme: string;
  /** The user info before the last `@` of the authority, if any. */
  readonly userinfo: string | undefined;
  readonly hostPart: string;
  readonly path: string;
  readonly query: string | undefined;
  /**
   * An `@` follows the authority (in the path, query or fragment, before any nested `scheme://`): the
   * user info most likely holds a raw `/`, `?` or `#`, so where the password ends cannot be told.
   */
  readonly ambiguous: boolean;
}

/** Cuts `text` into its parts, or `undefined` when it is not `scheme://…` at all. Never throws. */
function splitUrl(text: string): UrlParts | undefined {
  const m = SCHEME.exec(text.trim());
  if (!m) return undefined;
  const scheme = (m[1] ?? '').toLowerCase();
  const rest = m[2] ?? '';
  const end = rest.search(/[/?#]/);
  const authority = end >= 0 ? rest.slice(0, end) : rest;
  const tail = end >= 0 ? rest.slice(end) : '';
  const nested = tail.indexOf('://');
  const ambiguous = authority !== '' && (nested >= 0 ? tail.slice(0, nested) : tail).includes('@');
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at) : undefined;
  const hostPart = at >= 0 ? authority.slice(at + 1) : authority;
  const hash = tail.indexOf('#');
  const beforeHash = hash >= 0 ? tail.slice(0, hash) : tail;
  const q = beforeHash.indexOf('?');
  return {
    scheme,
    userinfo,
    hostPart,
    path: q >= 0 ? beforeHash.slice(0, q) : beforeHash,
    query: q >= 0 ? beforeHash.slice(q + 1) : undefined,
    ambiguous,
  };
}

function parseHost(text: string, scheme: string): UrlHost {
  let host = text;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) throw invalid(`${scheme}:// URL has an unclosed "[" in a host`);
    host = text.slice(1, end);
    const rest = text.slice(end + 1);
    if (rest.startsWith(':')) portText = rest.slice(1);
    else if (rest !== '') throw invalid(`${scheme}:// URL has text after "]" in a host`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon >= 0) {
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    }
  }
  if (host === '') throw invalid(`${scheme}:// URL has an empty host`);
  let port: number | undefined;
  if (portText !== undefined) {
    port = Number(portText);
    // The port text is not echoed: in `scheme://user:password` (the "@host" forgotten) it is the password.
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
      throw invalid(`${scheme}:// URL has an invalid port (a number from 1 to 65535 expected after the host's ":")`);
    }
  }
  return { host: decode(host, 'host'), port };
}

/**
 * Parses a backend URL. Errors never echo the URL's text beyond its scheme; the parsed URL's
 * {@link StowageUrl.redacted} form is the one to print.
 *
 * @throws StowageError INVALID_ARGUMENT when the text is not `scheme://…`, a port is not a number, the user
 *   info holds a raw `/`, `?`, `#` or `@` that makes the URL ambiguous, a part has a bad percent-encoding, or a
 *   secret-looking query parameter (`token`, `password`, `apiKey`, …) is present: secrets come from files or
 *   the environment, never from a URL's query.
 */
export function parseUrl(text: string): StowageUrl {
  if (typeof text !== 'string') throw invalid(`a backend URL must be a string, got ${typeof text}`);
  const parts = splitUrl(text);
  // The text is not shown: a mistyped URL ("mysql:/user:pw@db", no scheme) may still hold a password.
  if (!parts) throw invalid(`a backend URL must look like scheme://… (the text given, ${text.length} characters, is not shown)`);
  const { scheme } = parts;
  if (parts.ambiguous) {
    throw invalid(
      `${scheme}:// URL has an "@" after its host: percent-encode "/", "?", "#" and "@" in a user name or password (%2F, %3F, %23, %40), and "@" in a path`,
    );
  }
  let username: string | undefined;
  let password: string | undefined;
  if (parts.userinfo !== undefined) {
    const colon = parts.userinfo.indexOf(':');
    username = decode(colon >= 0 ? parts.userinfo.slice(0, colon) : parts.userinfo, 'user name');
    password = colon >= 0 ? decode(parts.userinfo.slice(colon + 1), 'password') : undefined;
  }
  const hosts = parts.hostPart === '' ? [] : parts.hostPart.split(',').map((h) => parseHost(h, scheme));
  const path = decode(parts.path, 'path');
  if (path.includes('\0')) throw invalid(`${scheme}:// URL path holds a NUL character`);

  const params = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(parts.query ?? '')) {
    if (SECRET_PARAMS.test(name)) {
      throw invalid(
        `URL query parameter ${quote(name, 40)} would put a secret in a URL; use a file (e.g. ?${name}File=/path) or an environment variable`,
      );
    }
    params.set(name, value);
  }
  return { scheme, hosts, path, params, username, password, redacted: redactUrlText(text) };
}

function redactHost(text: string): string {
  const colon = text.startsWith('[') ? text.indexOf(':', text.indexOf(']')) : text.lastIndexOf(':');
  if (colon < 0) return text;
  return /^\d+$/.test(text.slice(colon + 1)) ? text : `${text.slice(0, colon)}:[redacted]`;
}

function safeDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/** One `name=value` pair of a query as printed: the raw text, with a secret-looking value replaced. */
function redactQueryPair(pair: string): string {
  const eq = pair.indexOf('=');
  if (eq < 0) return pair;
  const rawName = pair.slice(0, eq);
  const name = safeDecode(rawName);
  if (name === undefined || (SECRET_LOOKING.test(name) && !name.endsWith('File'))) return `${rawName}=[redacted]`;
  const value = safeDecode(pair.slice(eq + 1));
  if (value === undefined) return `${rawName}=[redacted]`;
  return value.includes('://') ? `${rawName}=${redactUrlText(value)}` : pair;
}

/**
 * The printable form of a URL, built from its parsed parts: the user info (user name and password) becomes
 * `[redacted]`, so does every secret-looking query value and any port that is not a number (in
 * `scheme://user:password` the password sits where the port would); URLs nested in query values are
 * redacted the same way. Text that is not `scheme://…`, and a URL whose user info cannot be told apart
 * (a raw `/`, `?`, `#` or `@` in a password), is not shown at all. Never throws.
 */
export function redactUrlText(text: string): string {
  if (typeof text !== 'string') return UNPARSED;
  const parts = splitUrl(text);
  if (!parts) return UNPARSED;
  if (parts.ambiguous) return `${parts.scheme}://[redacted]`;
  const userinfo = parts.userinfo === undefined ? '' : '[redacted]@';
  const hosts = parts.hostPart === '' ? '' : parts.hostPart.split(',').map(redactHost).join(',');
  let out = `${parts.scheme}://${userinfo}${hosts}${parts.path}`;
  if (parts.query !== undefined) out += `?${parts.query.split('&').map(redactQueryPair).join('&')}`;
  return out;
}

/**
 * Refuses query parameters not in `allowed`, naming the first unknown one and listing the allowed ones.
 */
export function checkParams(url: StowageUrl, allowed: readonly string[]): void {
  for (const name of url.params.keys()) {
    if (!allowed.includes(name)) {
      const list = allowed.length > 0 ? `known: ${allowed.join(', ')}` : 'this scheme takes none';
      throw invalid(`unknown query parameter "${name}" in ${url.scheme}:// URL (${list})`);
    }
  }
}

/** Reads an optional integer parameter, refusing anything that is not one in range. */
export function intParam(url: StowageUrl, name: string, fallback: number, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number {
  const raw = url.params.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw) || n < min || n > max) {
    throw invalid(`query parameter "${name}" must be an integer from ${min} to ${max}, got ${quote(raw)}`);
  }
  return n;
}

/** Reads an optional boolean parameter (`true`/`false`/`1`/`0`). */
export function boolParam(url: StowageUrl, name: string, fallback: boolean): boolean {
  const raw = url.params.get(name);
  if (raw === undefined) return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw invalid(`query parameter "${name}" must be true or false, got ${quote(raw)}`);
}

/** Reads an optional parameter that must be one of `choices`. */
export function enumParam<T extends string>(url: StowageUrl, name: string, choices: readonly T[], fallback: T): T {
  const raw = url.params.get(name);
  if (raw === undefined) return fallback;
  if (!(choices as readonly string[]).includes(raw)) {
    throw invalid(`query parameter "${name}" must be one of ${choices.join(', ')}, got ${quote(raw)}`);
  }
  return raw as T;
}

/**
 * The password of a URL: from its user info, or read from the file named by `?passwordFile=` (a trailing
 * newline dropped), never both. The file's path may appear in errors; its content never does.
 *
 * @throws StowageError INVALID_ARGUMENT when both are given; PERMISSION_DENIED when the file cannot be read
 */
export async function urlPassword(url: StowageUrl): Promise<string | undefined> {
  const passwordFile = url.params.get('passwordFile');
  if (passwordFile === undefined) return url.password;
  if (url.password !== undefined) {
    throw invalid(`${url.redacted}: give the password in the URL or in passwordFile, not both`);
  }
  try {
    return (await readFile(passwordFile, 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    throw new StowageError('PERMISSION_DENIED', `${url.scheme}: cannot read passwordFile ${quote(passwordFile, 200)}`, { cause: safeCause(err) });
  }
}

/**
 * The file or folder a standalone URL (`disk://`, `sqlite://`) names: `scheme:///abs/path` as given;
 * `scheme://rel/path` under `dataDir`; `scheme://` alone is `dataDir/<fallback>`. The same answer decides
 * whether the port needs the data folder's lock, so the two can never disagree.
 *
 * @throws StowageError INVALID_ARGUMENT for a `..` segment (also percent-encoded, `%2e%2e`), which would lead
 *   out of the data folder or around its lock, and for a host with a port or several hosts.
 */
export function standalonePath(url: StowageUrl, dataDir: string, fallback: string): string {
  if (url.hosts.length > 1 || url.hosts.some((h) => h.port !== undefined)) {
    throw invalid(`${url.scheme}:// takes a path, not hosts: write ${url.scheme}:///absolute/path or ${url.scheme}://relative/path`);
  }
  const host = url.hosts[0]?.host;
  const path = host === undefined ? url.path : `${host}${url.path}`;
  if (path.split(/[/\\]/).includes('..')) {
    throw invalid(`${url.scheme}:// path has a ".." segment: name the folder without one (a relative path stays inside the data folder)`);
  }
  if (path === '' || path === '/') return join(dataDir, fallback);
  return host === undefined && isAbsolute(path) ? path : join(dataDir, path);
}

/**
 * `scheme://` followed by an absolute path, percent-encoded so that any folder name (`?`, `#`, `%`,
 * spaces, a literal `%2e%2e`) parses back to the same path.
 */
export function pathUrl(scheme: string, path: string): string {
  return `${scheme}://${pathToFileURL(path).pathname}`;
}
