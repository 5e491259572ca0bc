/**
 * Parsing backend URLs: `scheme://[user[:password]@]host[:port][,host[:port]…][/path][?query]`, with
 * several hosts allowed (WHATWG `URL` refuses them) and credentials kept out of every printable form.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { StowageError } from '../ports/errors.js';
import { safeCause } from './errors.js';
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
const SECRET_PARAMS = /^(token|password|secret|key|masterkey|auth_token|pass)$/i;

function invalid(message: string): StowageError {
  return new StowageError('INVALID_ARGUMENT', message);
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw invalid(`URL ${what} has a bad percent-encoding`);
  }
}

function parseHost(text: string, redacted: string): UrlHost {
  let host = text;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) throw invalid(`URL ${quote(redacted)} has an unclosed "[" in a host`);
    host = text.slice(1, end);
    const rest = text.slice(end + 1);
    if (rest.startsWith(':')) portText = rest.slice(1);
    else if (rest !== '') throw invalid(`URL ${quote(redacted)} has text after "]" in a host`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon >= 0) {
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    }
  }
  if (host === '') throw invalid(`URL ${quote(redacted)} has an empty host`);
  let port: number | undefined;
  if (portText !== undefined) {
    port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
      throw invalid(`URL ${quote(redacted)} has an invalid port ${quote(portText)}`);
    }
  }
  return { host: decode(host, 'host'), port };
}

/**
 * Parses a backend URL.
 *
 * @throws StowageError INVALID_ARGUMENT when the text is not `scheme://…`, a port is not a number, or a
 *   secret-looking query parameter (`token`, `password`, …) is present: secrets come from files or the
 *   environment, never from a URL's query.
 */
export function parseUrl(text: string): StowageUrl {
  if (typeof text !== 'string') throw invalid(`a backend URL must be a string, got ${typeof text}`);
  const m = SCHEME.exec(text.trim());
  if (!m) throw invalid(`${quote(redactUrlText(text))} is not a backend URL (expected scheme://…)`);
  const scheme = (m[1] ?? '').toLowerCase();
  let rest = m[2] ?? '';
  const redacted = redactUrlText(text.trim());

  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  const hash = query.indexOf('#');
  if (hash >= 0) query = query.slice(0, hash);

  const slash = rest.indexOf('/');
  const authority = slash >= 0 ? rest.slice(0, slash) : rest;
  const path = slash >= 0 ? decode(rest.slice(slash), 'path') : '';

  let username: string | undefined;
  let password: string | undefined;
  let hostPart = authority;
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    hostPart = authority.slice(at + 1);
    const colon = userinfo.indexOf(':');
    username = decode(colon >= 0 ? userinfo.slice(0, colon) : userinfo, 'user name');
    password = colon >= 0 ? decode(userinfo.slice(colon + 1), 'password') : undefined;
  }
  const hosts = hostPart === '' ? [] : hostPart.split(',').map((h) => parseHost(h, redacted));

  const params = new Map<string, string>();
  for (const [name, value] of new URLSearchParams(query)) {
    if (SECRET_PARAMS.test(name)) {
      throw invalid(
        `URL query parameter "${name}" would put a secret in a URL; use a file (e.g. ?${name}File=/path) or an environment variable`,
      );
    }
    params.set(name, value);
  }
  return { scheme, hosts, path, params, username, password, redacted };
}

/**
 * Replaces the password of `scheme://user:password@…` in `text` with `[redacted]` — also in URLs nested
 * in query parameters (`tiered://?remote=redis%3A%2F%2F%3Apw%40host`), percent-encoded or not.
 */
export function redactUrlText(text: string): string {
  const q = text.indexOf('?');
  const base = (q >= 0 ? text.slice(0, q) : text).replace(/^([a-z][a-z0-9+.-]*:\/\/[^/?#@:]*):[^/?#@]*@/i, '$1:[redacted]@');
  if (q < 0) return base;
  const query = text
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair;
      let value: string;
      try {
        value = decodeURIComponent(pair.slice(eq + 1).replace(/\+/g, ' '));
      } catch {
        return pair;
      }
      if (!value.includes('://')) return pair;
      const redacted = redactUrlText(value);
      return redacted === value ? pair : `${pair.slice(0, eq + 1)}${encodeURIComponent(redacted)}`;
    })
    .join('&');
  return `${base}?${query}`;
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
