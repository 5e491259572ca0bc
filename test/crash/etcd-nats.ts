/**
 * The servers the cross-process crash tests share: a real etcd (config) and NATS JetStream (queue), the
 * environment that points a child process's `createStowage()` at them, and the test's own stowage on both.
 */
import { randomUUID } from 'node:crypto';
import { createStowage, type Stowage } from '../../src/index.js';
import { requiredServices, ServiceUnavailable, startService, type Service } from '../support/servers.js';

/** What {@link startEtcdNats} started, or why the test must be skipped. */
export interface EtcdNats {
  /** The started servers, to dispose of after the test. */
  readonly services: Service[];
  /** Why the servers could not be had (the test skips); undefined when they run. */
  skipReason?: string;
  /** `STOWAGE_CONFIG_URL`, `STOWAGE_QUEUE_URL` and `STOWAGE_TIMEOUT_MS` for the children. */
  env: Record<string, string>;
  /** The test's own stowage on the same config and queue. */
  operator?: Stowage;
}

/**
 * Starts etcd and nats-server for a crash test, under a fresh prefix (`<name>-<run>`, stream `<name>_<run>`).
 * A server that cannot be had skips the test, unless `STOWAGE_TEST_REQUIRE` names it.
 */
export async function startEtcdNats(name: string): Promise<EtcdNats> {
  const cluster: EtcdNats = { services: [], env: {} };
  try {
    cluster.services.push(await startService('etcd'), await startService('nats'));
  } catch (err) {
    if (!(err instanceof ServiceUnavailable)) throw err;
    if (requiredServices().has('etcd') || requiredServices().has('nats')) throw err;
    cluster.skipReason = err.message;
    return cluster;
  }
  const run = randomUUID().slice(0, 8);
  const [etcd, nats] = cluster.services as [Service, Service];
  cluster.env = {
    STOWAGE_CONFIG_URL: `etcd://127.0.0.1:${etcd.port}/${name}-${run}`,
    STOWAGE_QUEUE_URL: `nats://127.0.0.1:${nats.port}?stream=${name}_${run}`,
    STOWAGE_TIMEOUT_MS: '3000',
  };
  cluster.operator = await createStowage({}, { ports: ['config', 'queue'], env: { ...cluster.env } });
  return cluster;
}

/** Closes the operator's stowage and stops the servers. */
export async function stopEtcdNats(cluster: EtcdNats | undefined): Promise<void> {
  await cluster?.operator?.close().catch(() => undefined);
  await Promise.allSettled((cluster?.services ?? []).map((s) => s.dispose()));
}
