/**
 * The Stowage web console, published as `stowage/console`: {@link consoleHandler} to mount its routes in an
 * application's own server (how a standalone service, which holds its data folder locked, shows its data),
 * and {@link serveConsole}, the server `stowage ui` runs.
 *
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { StowageError } from '../ports/errors.js';
import type { Stowage } from '../core/stowage.js';
import { consoleHandler, type ConsoleOptions } from './routes.js';

export { consoleHandler, CONSOLE_WRITE_HEADER, type ConsoleHandler, type ConsoleOptions } from './routes.js';

/** Options of {@link serveConsole}. */
export interface ServeConsoleOptions extends Omit<ConsoleOptions, 'basePath'> {
  /** The address to bind (default `127.0.0.1`). Anything but loopback needs a `token`. */
  host?: string;
  /** The port (default 0: a free one). */
  port?: number;
}

/** A running console server. */
export interface ConsoleServer extends AsyncDisposable {
  /** Its address, e.g. `http://127.0.0.1:4711/`. */
  readonly url: string;
  /** Stops accepting requests and ends the open ones (live config views included). */
  close(): Promise<void>;
}

/** Whether `host` is a loopback address or name. */
export function isLoopback(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare === 'localhost' || bare === '::1') return true;
  return isIP(bare) === 4 && bare.startsWith('127.');
}

/** The host part of a Host header (`name:port`, `[v6]:port`). */
function hostName(header: string): string {
  if (header.startsWith('[')) return header.slice(0, header.indexOf(']') + 1);
  const colon = header.lastIndexOf(':');
  return colon < 0 ? header : header.slice(0, colon);
}

/**
 * Serves the console on `host:port`. Refuses (INVALID_ARGUMENT) a bind that is not loopback without a
 * token: the console shows and changes the data of every port. On loopback it answers only requests whose
 * Host header is a loopback name, so a web page cannot reach it through a DNS name rebound to 127.0.0.1.
 */
export async function serveConsole(stowage: Stowage, options: ServeConsoleOptions = {}): Promise<ConsoleServer> {
  const host = options.host ?? '127.0.0.1';
  const loopback = isLoopback(host);
  if (!loopback && (options.token === undefined || options.token.length === 0)) {
    throw new StowageError(
      'INVALID_ARGUMENT',
      `the console refuses to listen on ${host} without a token: it shows and changes every port's data. Give a token (STOWAGE_UI_TOKEN or --token-file) or bind to 127.0.0.1`,
    );
  }
  const handle = consoleHandler(stowage, options);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (loopback && !isLoopback(hostName(req.headers.host ?? ''))) {
      res.writeHead(421, { 'content-type': 'text/plain' }).end('this console answers only to a loopback host name\n');
      return;
    }
    void handle(req, res).then((handled) => {
      if (!handled) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  };
  return { url: `http://${shown}:${address.port}/`, close, [Symbol.asyncDispose]: close };
}
