/**
 * `kafka://` — the queue port on Apache Kafka, with `@platformatic/kafka` (pure JavaScript).
 *
 * `kafka://host:port[,host:port…]?prefix=&replicas=&dedupeWindowMs=&timeoutMs=&sessionTimeoutMs=`
 *
 * - `prefix` (default `stowage`): the prefix of every Kafka topic (`<prefix>.<topic>`, `<prefix>.<topic>.dlq`)
 *   and consumer group (`<prefix>.<topic>.<group>`) the queue uses; 1–64 characters of `A-Z a-z 0-9 _ -`.
 * - `replicas` (default -1: the broker's `default.replication.factor`): replication factor of created topics.
 * - `dedupeWindowMs` (default 120 000): how long a publish id is remembered.
 * - `timeoutMs` (default 5 000): connect and request timeout.
 * - `sessionTimeoutMs` (default 10 000): a consumer that stops heartbeating for this long loses its
 *   partition to another member of its group (the broker bounds it: 6 s to 30 min by default).
 *
 * See {@link KafkaQueueDriver} for how groups, acks, dedupe and dead letters map onto Kafka.
 *
 * @module
 */
import type { SchemeDefinition } from '../../driver/index.js';
import { intParam } from '../../driver/url.js';
import { StowageError } from '../../ports/errors.js';
import { KafkaQueueDriver } from './queue-driver.js';

export { KafkaQueueDriver, type KafkaNativeClients, type KafkaQueueOptions } from './queue-driver.js';

/** The `kafka://` queue scheme. */
export const kafkaQueueScheme: SchemeDefinition<'queue'> = {
  port: 'queue',
  scheme: 'kafka',
  params: ['prefix', 'replicas', 'dedupeWindowMs', 'timeoutMs', 'sessionTimeoutMs'],
  open: async (url, context) => {
    const prefix = url.params.get('prefix') ?? 'stowage';
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(prefix)) {
      throw new StowageError('INVALID_ARGUMENT', `query parameter "prefix" must be 1 to 64 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify(prefix)}`);
    }
    if (url.hosts.length === 0) throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: a kafka:// URL needs at least one broker`);
    if (url.username !== undefined || url.password !== undefined) {
      throw new StowageError('UNSUPPORTED', `${url.redacted}: kafka:// does not support SASL credentials yet`);
    }
    return KafkaQueueDriver.connect({
      brokers: url.hosts.map((h) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port ?? 9092}`),
      prefix,
      replicas: intParam(url, 'replicas', -1, { min: -1, max: 32 }),
      dedupeWindowMs: intParam(url, 'dedupeWindowMs', 120_000, { min: 1 }),
      requestTimeoutMs: intParam(url, 'timeoutMs', 5_000, { min: 1 }),
      sessionTimeoutMs: intParam(url, 'sessionTimeoutMs', 10_000, { min: 1_000 }),
      logger: context.logger,
    });
  },
};
