/**
 * Every built-in scheme, registered as a lazy loader: a client library is imported only when a URL names
 * its scheme, so `import 'stowage'` stays light.
 *
 * @module
 */
import { SchemeRegistry, type SchemeEntry } from './core/registry.js';

/** The client packages of the clustered adapters, as `npm install` arguments (majors of the peer dependencies). */
const ETCD = ['etcd3@1'];
const NATS = ['@nats-io/transport-node@3', '@nats-io/jetstream@3', '@nats-io/nats-core@3'];
const REDIS = ['ioredis@5'];
const ZOOKEEPER = ['node-zookeeper-client@1'];
const PG = ['pg@8'];
const KAFKA = ['@platformatic/kafka@1'];
const RABBITMQ = ['rabbitmq-client@5'];

/** The built-in schemes of each port. */
export const BUILTIN_SCHEMES: readonly SchemeEntry[] = [
  { port: 'config', scheme: 'mem', load: async () => (await import('./adapters/memory/config-driver.js')).memConfigScheme },
  { port: 'secrets', scheme: 'mem', load: async () => (await import('./adapters/memory/secrets-driver.js')).memSecretsScheme },
  { port: 'queue', scheme: 'mem', load: async () => (await import('./adapters/memory/queue-driver.js')).memQueueScheme },
  { port: 'cache', scheme: 'mem', load: async () => (await import('./adapters/memory/cache-driver.js')).memCacheScheme },
  { port: 'documents', scheme: 'mem', load: async () => (await import('./adapters/memory/documents-driver.js')).memDocumentsScheme },
  { port: 'config', scheme: 'file', load: async () => (await import('./adapters/file/config-driver.js')).fileConfigScheme },
  { port: 'secrets', scheme: 'file', load: async () => (await import('./adapters/file/keyring-driver.js')).fileSecretsScheme },
  { port: 'config', scheme: 'etcd', packages: ETCD, load: async () => (await import('./adapters/etcd/index.js')).etcdConfigScheme },
  { port: 'config', scheme: 'zookeeper', packages: ZOOKEEPER, load: async () => (await import('./adapters/zookeeper/index.js')).zookeeperConfigScheme },
  { port: 'config', scheme: 'postgres', packages: PG, load: async () => (await import('./adapters/postgres/index.js')).postgresConfigScheme },
  { port: 'config', scheme: 'postgresql', packages: PG, load: async () => (await import('./adapters/postgres/index.js')).postgresqlConfigScheme },
  { port: 'secrets', scheme: 'etcd+sealed', packages: ETCD, load: async () => (await import('./adapters/sealed/index.js')).etcdSealedSecretsScheme },
  { port: 'secrets', scheme: 'zookeeper+sealed', packages: ZOOKEEPER, load: async () => (await import('./adapters/sealed/index.js')).zookeeperSealedSecretsScheme },
  { port: 'secrets', scheme: 'postgres+sealed', packages: PG, load: async () => (await import('./adapters/sealed/index.js')).postgresSealedSecretsScheme },
  { port: 'secrets', scheme: 'postgresql+sealed', packages: PG, load: async () => (await import('./adapters/sealed/index.js')).postgresqlSealedSecretsScheme },
  { port: 'secrets', scheme: 'file+sealed', load: async () => (await import('./adapters/sealed/index.js')).fileSealedSecretsScheme },
  { port: 'secrets', scheme: 'mem+sealed', load: async () => (await import('./adapters/sealed/index.js')).memSealedSecretsScheme },
  { port: 'queue', scheme: 'disk', load: async () => (await import('./adapters/disk-queue/index.js')).diskQueueScheme },
  { port: 'queue', scheme: 'nats', packages: NATS, load: async () => (await import('./adapters/nats/index.js')).natsQueueScheme },
  { port: 'queue', scheme: 'kafka', packages: KAFKA, load: async () => (await import('./adapters/kafka/index.js')).kafkaQueueScheme },
  { port: 'queue', scheme: 'rabbitmq', packages: RABBITMQ, load: async () => (await import('./adapters/rabbitmq/index.js')).rabbitmqQueueScheme },
  { port: 'queue', scheme: 'amqp', packages: RABBITMQ, load: async () => (await import('./adapters/rabbitmq/index.js')).amqpQueueScheme },
  { port: 'queue', scheme: 'amqps', packages: RABBITMQ, load: async () => (await import('./adapters/rabbitmq/index.js')).amqpsQueueScheme },
  { port: 'cache', scheme: 'redis', packages: REDIS, load: async () => (await import('./adapters/redis/index.js')).redisCacheScheme },
  { port: 'cache', scheme: 'rediss', packages: REDIS, load: async () => (await import('./adapters/redis/index.js')).redissCacheScheme },
  { port: 'cache', scheme: 'redis+sentinel', packages: REDIS, load: async () => (await import('./adapters/redis/index.js')).redisSentinelCacheScheme },
  { port: 'cache', scheme: 'redis+cluster', packages: REDIS, load: async () => (await import('./adapters/redis/index.js')).redisClusterCacheScheme },
  { port: 'documents', scheme: 'sqlite', load: async () => (await import('./adapters/sqlite/index.js')).sqliteDocumentsScheme },
  { port: 'secrets', scheme: 'vault', packages: ['node-vault@0.12'], load: async () => (await import('./adapters/vault/index.js')).vaultSecretsScheme },
  { port: 'cache', scheme: 'tiered', packages: REDIS, load: async () => (await import('./adapters/tiered/index.js')).tieredCacheScheme },
  { port: 'documents', scheme: 'mysql', packages: ['mysql2@3'], load: async () => (await import('./adapters/mysql/index.js')).mysqlDocumentsScheme },
  { port: 'documents', scheme: 'postgres', packages: PG, load: async () => (await import('./adapters/postgres/index.js')).postgresDocumentsScheme },
  { port: 'documents', scheme: 'postgresql', packages: PG, load: async () => (await import('./adapters/postgres/index.js')).postgresqlDocumentsScheme },
  { port: 'queue', scheme: 'postgres', packages: PG, load: async () => (await import('./adapters/postgres/index.js')).postgresQueueScheme },
  { port: 'queue', scheme: 'postgresql', packages: PG, load: async () => (await import('./adapters/postgres/index.js')).postgresqlQueueScheme },
  { port: 'documents', scheme: 'mongodb', packages: ['mongodb@6'], load: async () => (await import('./adapters/mongo/index.js')).mongoDocumentsScheme },
];

/** A new registry holding every built-in scheme (add your own adapters with `register`). */
export function createDefaultRegistry(): SchemeRegistry {
  const registry = new SchemeRegistry();
  for (const entry of BUILTIN_SCHEMES) registry.register(entry);
  return registry;
}
