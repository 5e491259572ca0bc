/**
 * `stowage ui`: the web console over the profile's ports, on loopback unless told otherwise.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PORTS } from '../../core/profile.js';
import type { Queue } from '../../ports/queue.js';
import { UsageError, int, str, type Command, type CommandContext } from '../context.js';

/** The token from `--token-file` or `STOWAGE_UI_TOKEN` (never from the command line: it would show in `ps`). */
async function tokenOf(ctx: CommandContext): Promise<string | undefined> {
  const file = str(ctx.values, 'token-file');
  if (file !== undefined) {
    const token = (await readFile(resolve(ctx.cwd, file), 'utf8')).trim();
    if (token.length === 0) throw new UsageError(`--token-file: ${file} is empty`);
    return token;
  }
  const fromEnv = ctx.env.STOWAGE_UI_TOKEN;
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}

/**
 * Prometheus metrics for `/metrics` when `@opentelemetry/sdk-metrics` is installed (an optional peer
 * dependency): the console's own calls and the queue gauges. Undefined without it.
 */
async function metricsFor(queue: Queue | undefined): Promise<((req: IncomingMessage, res: ServerResponse) => void) | undefined> {
  try {
    const { metricsHandler, observeQueue } = await import('../../metrics/index.js');
    const handler = metricsHandler();
    if (queue !== undefined) observeQueue(queue);
    return handler;
  } catch {
    return undefined;
  }
}

/** The `ui` command. */
export const uiCommand: Command = {
  path: ['ui'],
  summary: 'serve the web console (doctor, queue, config, secrets, documents, cache, metrics)',
  usage: '',
  args: [0, 0],
  options: { port: { type: 'string' }, host: { type: 'string' }, 'token-file': { type: 'string' } },
  description:
    'Serves a local web console over the profile\'s ports until interrupted: the doctor table, queue topics and groups with dead letters ' +
    '(replay, purge), the config tree with live updates and compare-and-set edits, secret names and versions (never values), documents ' +
    'with filter, sort and pages, cache lookups, and /metrics. Binds 127.0.0.1 by default; any other --host needs a token ' +
    '(STOWAGE_UI_TOKEN or --token-file), sent as a Bearer token or as the Basic-auth password. A standalone data folder is locked by ' +
    'the service using it: mount the console in that service instead (consoleHandler from stowage/console).',
  examples: ['stowage ui', 'stowage ui --port 8099 --profile cluster.yaml', 'STOWAGE_UI_TOKEN=… stowage ui --host 0.0.0.0 --port 8099'],
  async run(ctx) {
    const port = int(ctx.values, 'port', { min: 0 }) ?? 8099;
    if (port > 65535) throw new UsageError('--port must be at most 65535');
    const host = str(ctx.values, 'host') ?? '127.0.0.1';
    const token = await tokenOf(ctx);
    const { serveConsole, isLoopback } = await import('../../console/index.js');
    // Checked before the ports open: a refused bind must not take the standalone data folder's lock.
    if (!isLoopback(host) && token === undefined) {
      throw new UsageError(`the console refuses to listen on ${host} without a token (STOWAGE_UI_TOKEN or --token-file), or bind 127.0.0.1`);
    }
    const stowage = await ctx.open(PORTS);
    try {
      const metrics = await metricsFor(stowage.queue);
      const server = await serveConsole(stowage, { host, port, ...(token === undefined ? {} : { token }), ...(metrics === undefined ? {} : { metrics }) });
      if (ctx.json) ctx.emit({ url: server.url });
      else ctx.out(`stowage console on ${server.url} (Ctrl-C to stop)\n`);
      await new Promise<void>((done) => {
        if (ctx.signal.aborted) done();
        else ctx.signal.addEventListener('abort', () => done(), { once: true });
      });
      await server.close();
      return 0;
    } finally {
      await stowage.close();
    }
  },
};
