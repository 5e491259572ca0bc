/**
 * The web console's routes over an open {@link Stowage}: a JSON API under `api/` and the static page
 * (plain HTML and JavaScript shipped in `static/`, no build step). Used by `stowage ui` and mountable in
 * an application's own server — the way to reach a standalone service's data folder, which that service
 * holds locked.
 *
 * What the routes never do: send a secret's value (there is no route that reads one), or render anything
 * themselves (the page builds its DOM with `textContent`, so stored data is text, never markup).
 *
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { JsonObject, JsonValue, PortName } from '../ports/common.js';
import { StowageError, type StowageErrorCode } from '../ports/errors.js';
import type { Filter, Sort } from '../ports/documents.js';
import type { Stowage } from '../core/stowage.js';
import { checkOpenPorts } from '../cli/doctor.js';

/** Options of {@link consoleHandler}. */
export interface ConsoleOptions {
  /**
   * A token every request must carry (`Authorization: Bearer <token>`, or Basic auth with the token as
   * password, which a browser prompts for). Without it the routes are open to whoever reaches them: mount
   * them on loopback, or behind the application's own authentication.
   */
  token?: string;
  /** A handler for `/metrics` (see `metricsHandler()` of `stowage/metrics`); 404 without one. */
  metrics?: (req: IncomingMessage, res: ServerResponse) => void;
  /**
   * The path the routes are mounted under (default `/`), e.g. `/stowage/`: requests outside it are not
   * handled (the handler resolves with false).
   */
  basePath?: string;
}

/**
 * Serves one request if it is the console's; resolves with whether it was (false: not under `basePath`,
 * for the application's other routes).
 */
export type ConsoleHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

/** Status of each error code in an API answer. */
const STATUS: Partial<Record<StowageErrorCode, number>> = {
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  CONFLICT: 409,
  INVALID_ARGUMENT: 400,
  PERMISSION_DENIED: 403,
  RESOURCE_EXHAUSTED: 413,
  UNSUPPORTED: 501,
  UNAVAILABLE: 503,
  TIMEOUT: 504,
  CLOSED: 503,
};

const STATIC: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/** The page may load only its own files and talk only to its own origin; nothing may frame it. */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/** The most secret names the secrets page lists. */
const MAX_SECRETS_SHOWN = 200;
/** The biggest request body the API reads (a config value, a list of sequences). */
const MAX_BODY_BYTES = 1024 * 1024;
/** The header every write must carry: a cross-origin page cannot send it without a CORS preflight, which is refused. */
export const CONSOLE_WRITE_HEADER = 'x-stowage-console';

/** Where the page's files are: next to this module in the sources, or under `src/` from `dist/`. */
const STATIC_DIRS = [new URL('./static/', import.meta.url), new URL('../../src/console/static/', import.meta.url)];

async function readStatic(name: string): Promise<Buffer> {
  let last: unknown;
  for (const dir of STATIC_DIRS) {
    try {
      return await readFile(fileURLToPath(new URL(name, dir)));
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Whether the request carries the token (compared in constant time, on digests so lengths leak nothing). */
function authorized(req: IncomingMessage, expected: Buffer): boolean {
  const header = req.headers.authorization ?? '';
  let given: string | undefined;
  if (header.startsWith('Bearer ')) given = header.slice(7);
  else if (header.startsWith('Basic ')) {
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    given = colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return given !== undefined && timingSafeEqual(digest(given), expected);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function fail(res: ServerResponse, err: unknown): void {
  const e = StowageError.is(err) ? err : new StowageError('INTERNAL', 'the console failed to answer');
  send(res, STATUS[e.code] ?? 500, { error: { code: e.code, message: e.message } });
}

function invalid(message: string): StowageError {
  return new StowageError('INVALID_ARGUMENT', message);
}

async function body(req: IncomingMessage): Promise<JsonObject> {
  if (!(req.headers['content-type'] ?? '').startsWith('application/json')) throw invalid('send a JSON body (content-type: application/json)');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new StowageError('RESOURCE_EXHAUSTED', `the request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw invalid('the request body is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalid('the request body must be a JSON object');
  return parsed as JsonObject;
}

function stringField(from: JsonObject | URLSearchParams, name: string, required = true): string | undefined {
  const value = from instanceof URLSearchParams ? (from.get(name) ?? undefined) : from[name];
  if (value === undefined || value === null || value === '') {
    if (required) throw invalid(`${name} is required`);
    return undefined;
  }
  if (typeof value !== 'string') throw invalid(`${name} must be a string`);
  return value;
}

function intParam(params: URLSearchParams, name: string, fallback: number, max: number): number {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) > max) throw invalid(`${name} must be an integer from 0 to ${max}`);
  return Number(raw);
}

const TEXT = new TextDecoder('utf-8', { fatal: false });

/** A payload as the page shows it: UTF-8 text (bytes that are not become U+FFFD) and its size. */
function payloadView(payload: Uint8Array): { text: string; bytes: number } {
  return { text: TEXT.decode(payload.subarray(0, 64 * 1024)), bytes: payload.byteLength };
}

/** `field:1,other:-1` → a sort. */
function parseSort(raw: string | undefined): Sort | undefined {
  if (raw === undefined) return undefined;
  return raw.split(',').map((part) => {
    const [path = '', dir = '1'] = part.trim().split(':');
    if (path === '' || (dir !== '1' && dir !== '-1')) throw invalid(`sort must look like "field:1,other:-1", got ${JSON.stringify(raw)}`);
    return [path, dir === '1' ? 1 : -1] as const;
  });
}

/**
 * The console's request handler over `stowage`.
 *
 * @example
 * ```ts
 * // In a standalone service, which holds its data folder locked: serve the console from the service.
 * const stowage = await createStowage();
 * const console = consoleHandler(stowage, { basePath: '/stowage/', token: process.env.CONSOLE_TOKEN });
 * createServer(async (req, res) => {
 *   if (await console(req, res)) return;
 *   // … the application's routes
 * }).listen(8080, '127.0.0.1');
 * ```
 */
export function consoleHandler(stowage: Stowage, options: ConsoleOptions = {}): ConsoleHandler {
  let base = options.basePath ?? '/';
  if (!base.startsWith('/')) throw invalid('basePath must start with "/"');
  if (!base.endsWith('/')) base += '/';
  if (options.token !== undefined && options.token.length < 8) throw invalid('the console token must be at least 8 characters');
  const expected = options.token === undefined ? undefined : digest(options.token);
  const opened = new Set<PortName>((['config', 'secrets', 'queue', 'cache', 'documents'] as const).filter((p) => stowage[p] !== undefined));

  const port = <P extends PortName>(name: P): NonNullable<Stowage[P]> => {
    const value = stowage[name];
    if (value === undefined || value === null) throw new StowageError('UNSUPPORTED', `the ${name} port is not open in this process`);
    return value as NonNullable<Stowage[P]>;
  };

  const api = async (req: IncomingMessage, res: ServerResponse, route: string, params: URLSearchParams): Promise<void> => {
    const method = req.method ?? 'GET';
    if (method === 'POST' && req.headers[CONSOLE_WRITE_HEADER] !== '1') {
      throw new StowageError('PERMISSION_DENIED', `writes must carry the ${CONSOLE_WRITE_HEADER} header`);
    }
    const get = method === 'GET';
    switch (`${method} ${route}`) {
      case 'GET doctor':
        return send(res, 200, { ports: await checkOpenPorts(stowage, [...opened]) });
      case 'GET queue/topics': {
        const queue = port('queue');
        const topics = await queue.topics();
        return send(res, 200, { topics: await Promise.all(topics.map((topic) => queue.stats(topic))) });
      }
      case 'GET queue/messages': {
        const topic = stringField(params, 'topic') as string;
        const messages = await port('queue').browse(topic, { fromSeq: intParam(params, 'from', 1, Number.MAX_SAFE_INTEGER) || 1, limit: intParam(params, 'limit', 50, 500) || 50 });
        return send(res, 200, { messages: messages.map((m) => ({ seq: m.seq, id: m.id, headers: m.headers, publishedAt: m.publishedAt, payload: payloadView(m.payload) })) });
      }
      case 'GET queue/dead': {
        const topic = stringField(params, 'topic') as string;
        const letters = await port('queue').deadLetters(topic, { limit: intParam(params, 'limit', 100, 1000) || 100 });
        return send(res, 200, {
          deadLetters: letters.map((l) => ({ seq: l.seq, group: l.group, originalSeq: l.originalSeq, reason: l.reason, error: l.error, deliveryCount: l.deliveryCount, headers: l.headers, deadAt: l.deadAt, payload: payloadView(l.payload) })),
        });
      }
      case 'POST queue/replay': {
        const input = await body(req);
        const topic = stringField(input, 'topic') as string;
        const seqs = input.seqs;
        if (seqs !== undefined && (!Array.isArray(seqs) || !seqs.every((s) => Number.isSafeInteger(s)))) throw invalid('seqs must be a list of sequences');
        const replayed = await port('queue').replay(topic, seqs === undefined ? {} : { seqs: seqs as number[] });
        return send(res, 200, { replayed });
      }
      case 'POST queue/purge': {
        const input = await body(req);
        const topic = stringField(input, 'topic') as string;
        // The page asks for the topic's name again; an API call must say it too (no purge by a stray click or a replayed request).
        if (input.confirm !== topic) throw invalid('purge needs confirm set to the topic name');
        await port('queue').purge(topic);
        return send(res, 200, { purged: topic });
      }
      case 'GET config': {
        const snapshot = await port('config').list(params.get('prefix') ?? '', { limit: intParam(params, 'limit', 1000, 10_000) || 1000 });
        return send(res, 200, snapshot);
      }
      case 'POST config/put': {
        const input = await body(req);
        const key = stringField(input, 'key') as string;
        if (!('value' in input)) throw invalid('value is required');
        const ifRevision = input.ifRevision;
        if (ifRevision !== undefined && !Number.isSafeInteger(ifRevision)) throw invalid('ifRevision must be an integer');
        const result = await port('config').put(key, input.value as JsonValue, ifRevision === undefined ? {} : { ifRevision: ifRevision as number });
        return send(res, 200, result);
      }
      case 'GET config/watch':
        return watchConfig(req, res, stowage, params);
      case 'GET secrets': {
        const secrets = port('secrets');
        const names = await secrets.list(params.get('prefix') ?? '');
        // One versions() call per name: bounded, as a Vault mount may hold thousands.
        const shown = names.slice(0, MAX_SECRETS_SHOWN);
        // Names and version metadata only: this handler has no path that reads a value.
        const rows = await Promise.all(shown.map(async (name) => ({ name, versions: await secrets.versions(name) })));
        return send(res, 200, { secrets: rows, truncated: names.length > shown.length });
      }
      case 'GET documents/collections':
        return send(res, 200, { collections: await port('documents').collections() });
      case 'GET documents': {
        const name = stringField(params, 'collection') as string;
        const rawFilter = stringField(params, 'filter', false);
        let filter: Filter = {};
        if (rawFilter !== undefined) {
          try {
            filter = JSON.parse(rawFilter) as Filter;
          } catch {
            throw invalid('the filter is not JSON');
          }
        }
        const documents = port('documents');
        // Opening a collection creates it: a mistyped name must not leave an empty collection (or a table) behind.
        if (!(await documents.collections()).includes(name)) throw new StowageError('NOT_FOUND', `no collection ${JSON.stringify(name)}`);
        const collection = await documents.collection(name);
        const after = stringField(params, 'after', false);
        const sort = parseSort(stringField(params, 'sort', false));
        const page = await collection.find(filter, { limit: intParam(params, 'limit', 20, 500) || 20, ...(sort === undefined ? {} : { sort }), ...(after === undefined ? {} : { after }) });
        return send(res, 200, { items: page.items, next: page.next, total: await collection.count(filter) });
      }
      case 'GET cache': {
        const cache = port('cache');
        const key = stringField(params, 'key', false);
        // No cache adapter can list its keys through the port: the page looks keys up one at a time.
        if (key === undefined) return send(res, 200, { listable: false, backend: cache.backend });
        const value = await cache.get(key);
        return send(res, 200, { listable: false, backend: cache.backend, key, found: value !== undefined, value: value ?? null });
      }
      default:
        throw new StowageError(get || method === 'POST' ? 'NOT_FOUND' : 'INVALID_ARGUMENT', `no console route ${method} ${route}`);
    }
  };

  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    const path = url.pathname;
    if (path === base.slice(0, -1) && base !== '/') {
      res.writeHead(308, { location: base }).end();
      return true;
    }
    if (!path.startsWith(base)) return false;
    if (expected !== undefined && !authorized(req, expected)) {
      res.writeHead(401, { ...SECURITY_HEADERS, 'www-authenticate': 'Basic realm="stowage console", charset="UTF-8"', 'content-type': 'text/plain' });
      res.end('authentication required\n');
      return true;
    }
    const rest = path.slice(base.length);
    try {
      if (rest.startsWith('api/')) {
        await api(req, res, rest.slice(4), url.searchParams);
      } else if (rest === 'metrics') {
        if (options.metrics === undefined) send(res, 404, { error: { code: 'NOT_FOUND', message: 'metrics are not enabled in this process' } });
        else options.metrics(req, res);
      } else {
        const name = rest === '' ? 'index.html' : rest;
        const type = STATIC[name];
        if (type === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
          send(res, 404, { error: { code: 'NOT_FOUND', message: 'not found' } });
        } else {
          const content = await readStatic(name);
          res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': type });
          res.end(req.method === 'HEAD' ? undefined : content);
        }
      }
    } catch (err) {
      if (!res.headersSent) fail(res, err);
      else res.destroy();
    }
    return true;
  };
}

/** Server-sent events of a config watch: a `snapshot` first, then one `change` per event. */
async function watchConfig(req: IncomingMessage, res: ServerResponse, stowage: Stowage, params: URLSearchParams): Promise<void> {
  const config = stowage.config;
  if (config === undefined) throw new StowageError('UNSUPPORTED', 'the config port is not open in this process');
  const prefix = params.get('prefix') ?? '';
  const stop = new AbortController();
  req.on('close', () => stop.abort());
  const snapshot = await config.list(prefix, { limit: 10_000 });
  res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
  res.write(`event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`);
  try {
    for await (const event of config.watch(prefix, { afterRevision: snapshot.revision, signal: stop.signal })) {
      res.write(`event: change\ndata: ${JSON.stringify(event)}\n\n`);
    }
  } catch (err) {
    const e = StowageError.is(err) ? err : new StowageError('INTERNAL', 'the watch failed');
    res.write(`event: failure\ndata: ${JSON.stringify({ code: e.code, message: e.message })}\n\n`);
  }
  res.end();
}
