/**
 * `rabbitmq://`, `amqp://`, `amqps://` — the queue port on RabbitMQ (quorum queues and streams, 3.9 or later).
 *
 * `rabbitmq://[user:password@]host:port[,host:port…][/vhost]?prefix=&dedupeWindowMs=&deliveryLimit=&timeoutMs=&heartbeat=&passwordFile=`
 *
 * - `rabbitmq://` and `amqp://` connect in plain AMQP (default port 5672), `amqps://` over TLS (5671).
 * - `prefix` (default `stowage`): the topic exchange and the start of every stream and queue name.
 * - `dedupeWindowMs` (default 120 000): how long a publisher remembers an `id` (dedupe is per process).
 * - `deliveryLimit`: the quorum queues' `x-delivery-limit` (unset: RabbitMQ's default, none on 3.x and 20
 *   on 4.x); set it above every `maxDeliver` your consumers use.
 * - `timeoutMs` (default 5 000): connect and request timeout. `heartbeat` (default 5 s): AMQP heartbeat.
 * - `passwordFile`: the password, read from a file instead of the URL.
 *
 * @module
 */
import { Connection } from 'rabbitmq-client';
import type { OpenContext, SchemeDefinition } from '../../driver/index.js';
import { intParam, urlPassword, type StowageUrl } from '../../driver/url.js';
import type { QueueDriver } from '../../ports/queue.js';
import { StowageError } from '../../ports/errors.js';
import { RabbitQueueDriver } from './queue-driver.js';

export { RabbitQueueDriver, type RabbitQueueOptions } from './queue-driver.js';

const PARAMS = ['prefix', 'dedupeWindowMs', 'deliveryLimit', 'timeoutMs', 'heartbeat', 'passwordFile'];

async function open(url: StowageUrl, context: OpenContext): Promise<QueueDriver> {
  const prefix = url.params.get('prefix') ?? 'stowage';
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(prefix)) {
    throw new StowageError('INVALID_ARGUMENT', `query parameter "prefix" must be 1 to 64 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify(prefix)}`);
  }
  if (url.hosts.length === 0) throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: a ${url.scheme}:// URL needs at least one host`);
  const tls = url.scheme === 'amqps';
  const pass = await urlPassword(url);
  const timeoutMs = intParam(url, 'timeoutMs', 5_000, { min: 1 });
  const vhost = url.path === '' || url.path === '/' ? '/' : url.path.slice(1);
  const limit = url.params.get('deliveryLimit') === undefined ? undefined : intParam(url, 'deliveryLimit', 0, { min: 1 });
  const connect = (): Connection => new Connection({
    hosts: url.hosts.map((h) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port ?? (tls ? 5671 : 5672)}`),
    username: url.username ?? 'guest',
    password: pass ?? 'guest',
    vhost,
    tls,
    connectionName: 'stowage-queue',
    connectionTimeout: timeoutMs,
    acquireTimeout: timeoutMs,
    heartbeat: intParam(url, 'heartbeat', 5, { min: 0 }),
    retryLow: 250,
    retryHigh: 2_000,
  });
  return RabbitQueueDriver.connect({
    connection: connect(),
    probe: connect,
    pass,
    prefix,
    dedupeWindowMs: intParam(url, 'dedupeWindowMs', 120_000, { min: 1 }),
    deliveryLimit: limit,
    requestTimeoutMs: timeoutMs,
    logger: context.logger,
  });
}

/** The `rabbitmq://` queue scheme (plain AMQP 0-9-1). */
export const rabbitmqQueueScheme: SchemeDefinition<'queue'> = { port: 'queue', scheme: 'rabbitmq', params: PARAMS, open };
/** The `amqp://` queue scheme: the same as `rabbitmq://`. */
export const amqpQueueScheme: SchemeDefinition<'queue'> = { port: 'queue', scheme: 'amqp', params: PARAMS, open };
/** The `amqps://` queue scheme: AMQP over TLS. */
export const amqpsQueueScheme: SchemeDefinition<'queue'> = { port: 'queue', scheme: 'amqps', params: PARAMS, open };
