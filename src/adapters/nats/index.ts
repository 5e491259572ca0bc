/**
 * `nats://` — the queue port on NATS JetStream.
 *
 * `nats://[user:password@]host:port[,host:port…]?stream=<name>&replicas=&storage=file|memory&maxAgeMs=&dedupeWindowMs=&credsFile=`
 *
 * - `stream` (default `stowage`): the JetStream stream that holds every topic (`<stream>.<topic>`) and its
 *   dead letters (`<stream>.<topic>.dlq`); created when absent, checked and updated in place otherwise.
 * - `replicas` (default 1), `storage` (default `file`), `maxAgeMs` (default 0 = no limit),
 *   `dedupeWindowMs` (default 120 000): the stream's settings.
 * - `credsFile`: a NATS `.creds` file; user and password may also be given in the URL.
 * - `timeoutMs` (default 5 000): connect and JetStream API request timeout.
 * - `ackConfirm` (default `true`): `ack()` waits for the server's confirmation (one round-trip). `false`
 *   sends acks like the JetStream client's `msg.ack()`, those of one event-loop turn together; a lost ack
 *   then only shows as a redelivery.
 *
 * @module
 */
import type { SchemeDefinition } from '../../driver/index.js';
import { boolParam, enumParam, intParam } from '../../driver/url.js';
import { StowageError } from '../../ports/errors.js';
import { NatsQueueDriver } from './queue-driver.js';

export { NatsQueueDriver, type NatsQueueOptions, type NatsQueueStatus } from './queue-driver.js';
export { consumerName, type StreamSettings, type GroupSettings } from './provisioning.js';

/** The `nats://` queue scheme. */
export const natsQueueScheme: SchemeDefinition<'queue'> = {
  port: 'queue',
  scheme: 'nats',
  params: ['stream', 'replicas', 'storage', 'maxAgeMs', 'dedupeWindowMs', 'credsFile', 'timeoutMs', 'ackConfirm'],
  open: async (url, context) => {
    const stream = url.params.get('stream') ?? 'stowage';
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(stream)) {
      throw new StowageError('INVALID_ARGUMENT', `query parameter "stream" must be 1 to 64 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify(stream)}`);
    }
    if (url.hosts.length === 0) throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: a nats:// URL needs at least one host`);
    return NatsQueueDriver.connect({
      servers: url.hosts.map((h) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port ?? 4222}`),
      user: url.username,
      pass: url.password,
      credsFile: url.params.get('credsFile'),
      name: stream,
      replicas: intParam(url, 'replicas', 1, { min: 1, max: 5 }),
      storage: enumParam(url, 'storage', ['file', 'memory'] as const, 'file'),
      maxAgeMs: intParam(url, 'maxAgeMs', 0, { min: 0 }),
      dedupeWindowMs: intParam(url, 'dedupeWindowMs', 120_000, { min: 1 }),
      requestTimeoutMs: intParam(url, 'timeoutMs', 5_000, { min: 1 }),
      ackConfirm: boolParam(url, 'ackConfirm', true),
      logger: context.logger,
    });
  },
};
