/**
 * Clustered stateless mode end to end: three processes of the example service on real servers, while nodes
 * die and backends freeze and restart. Nothing acknowledged may be lost. Two profiles:
 * - Debian's servers: etcd 3.4 (config and sealed secrets), NATS JetStream 2.9 (queue), Redis (tiered cache)
 *   and MariaDB (documents), 10,000 jobs, every server frozen, killed and restarted;
 * - the current servers built from the Go module proxy: etcd 3.6 (config), Vault (secrets), NATS 2.15 (queue),
 *   Redis (cache) and MariaDB (documents; why not FerretDB is said at the profile), 3,000 jobs, the servers this
 *   profile adds frozen, killed and restarted — except Vault, which the harness runs in dev mode (in memory: a
 *   restart would forget every secret), so it is frozen only;
 * - PostgreSQL alone behind config, sealed secrets, queue and documents (cache in memory), 3,000 jobs, the
 *   server frozen, killed and restarted.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createStowage, StowageError, type Stowage } from '../../src/index.js';
import { createServiceRegistry } from '../../src/core/config/service-registry.js';
import { JOBS_TOPIC, RESULTS_COLLECTION, SERVICE_NAME, SETTINGS_KEY, TOKEN_SECRET, WORKERS_GROUP } from '../../examples/service/service.js';
import { requiredServices, ServiceUnavailable, startService, type Service, type ServiceKind } from '../support/servers.js';
import { ServiceNode } from './node-harness.js';

/** Which servers stand behind the ports of one cluster run. */
interface ClusterProfile {
  readonly title: string;
  readonly kinds: readonly ServiceKind[];
  /** Jobs in the split test. */
  readonly jobs: number;
  /** Jobs published before each fault. */
  readonly faultJobs: number;
  /** Servers frozen (SIGSTOP/SIGCONT); `restart`: also killed and restarted. */
  readonly faults: readonly { kind: ServiceKind; restart: boolean }[];
  /** The nodes' environment, given the started servers and a run id (it creates what the URLs name). */
  env(services: ReadonlyMap<ServiceKind, Service>, run: string): Promise<Record<string, string>>;
}

const PROFILES: ClusterProfile[] = [
  {
    title: "Debian's etcd 3.4, NATS 2.9, Redis and MariaDB",
    kinds: ['etcd', 'nats', 'redis', 'mariadb'],
    jobs: 10_000,
    faultJobs: 1000,
    faults: [
      { kind: 'etcd', restart: true },
      { kind: 'nats', restart: true },
      { kind: 'redis', restart: true },
      { kind: 'mariadb', restart: true },
    ],
    async env(services, run) {
      const mysql = await import('mysql2/promise');
      const db = services.get('mariadb')!;
      const conn = await mysql.createConnection({ host: '127.0.0.1', port: db.port, user: 'root' });
      await conn.query(`CREATE DATABASE cluster_${run}`);
      await conn.end();
      const etcd = services.get('etcd')!;
      return {
        STOWAGE_CONFIG_URL: `etcd://127.0.0.1:${etcd.port}/cluster-${run}`,
        STOWAGE_SECRETS_URL: `etcd+sealed://127.0.0.1:${etcd.port}/cluster-${run}-secrets`,
        STOWAGE_MASTER_KEY: randomBytes(32).toString('base64'),
        STOWAGE_QUEUE_URL: `nats://127.0.0.1:${services.get('nats')!.port}?stream=cluster_${run}`,
        STOWAGE_CACHE_URL: `tiered://?remote=${encodeURIComponent(`redis://127.0.0.1:${services.get('redis')!.port}/0`)}`,
        STOWAGE_DOCUMENTS_URL: `mysql://root@127.0.0.1:${db.port}/cluster_${run}`,
      };
    },
  },
  {
    // Documents on MariaDB, not FerretDB: under this test's load (three nodes, 16 handlers each) FerretDB 1.24
    // stopped answering — after a freeze, or a SIGKILL and restart, every call (a new client's too) timed out
    // for minutes, while one client alone recovers within a second (test/adapters/mongo-restart). Not
    // root-caused; see issue 18's note.
    title: 'current etcd 3.6, Vault, NATS 2.15, Redis and MariaDB',
    kinds: ['etcd-current', 'vault', 'nats-current', 'redis', 'mariadb'],
    jobs: 3_000,
    faultJobs: 1000,
    faults: [
      // Frozen only: the harness runs Vault in dev mode, in memory — a restart would forget every secret.
      { kind: 'vault', restart: false },
      { kind: 'nats-current', restart: true },
      { kind: 'etcd-current', restart: true },
    ],
    async env(services, run) {
      const vault = services.get('vault')!;
      const [vaultBase = '', vaultQuery = ''] = vault.url.split('?');
      const mysql = await import('mysql2/promise');
      const db = services.get('mariadb')!;
      const conn = await mysql.createConnection({ host: '127.0.0.1', port: db.port, user: 'root' });
      await conn.query(`CREATE DATABASE cluster_${run}`);
      await conn.end();
      return {
        STOWAGE_CONFIG_URL: `etcd://127.0.0.1:${services.get('etcd-current')!.port}/cluster-${run}`,
        STOWAGE_SECRETS_URL: `${vaultBase.replace(/\/$/, '')}/cluster-${run}${vaultQuery === '' ? '' : `?${vaultQuery}`}`,
        ...vault.env,
        STOWAGE_QUEUE_URL: `nats://127.0.0.1:${services.get('nats-current')!.port}?stream=cluster_${run}`,
        STOWAGE_CACHE_URL: `redis://127.0.0.1:${services.get('redis')!.port}/0`,
        STOWAGE_DOCUMENTS_URL: `mysql://root@127.0.0.1:${db.port}/cluster_${run}`,
      };
    },
  },
  {
    // One database runs the whole cluster: config, sealed secrets, queue and documents on PostgreSQL; the
    // cache in each node's memory (there is no postgres:// cache: the README says why).
    title: 'PostgreSQL alone',
    kinds: ['postgres'],
    jobs: 3_000,
    faultJobs: 1000,
    faults: [{ kind: 'postgres', restart: true }],
    async env(services, run) {
      const pg = services.get('postgres')!;
      const { default: postgres } = await import('pg');
      const admin = new postgres.Client({ host: '127.0.0.1', port: pg.port, user: 'postgres', database: 'postgres' });
      await admin.connect();
      await admin.query(`CREATE DATABASE cluster_${run}`);
      await admin.end();
      const db = `postgres://postgres@127.0.0.1:${pg.port}/cluster_${run}`;
      return {
        STOWAGE_CONFIG_URL: db,
        STOWAGE_SECRETS_URL: db.replace('postgres://', 'postgres+sealed://') + '?tablePrefix=secrets_',
        STOWAGE_MASTER_KEY: randomBytes(32).toString('base64'),
        STOWAGE_QUEUE_URL: db,
        STOWAGE_CACHE_URL: 'mem://',
        STOWAGE_DOCUMENTS_URL: db,
      };
    },
  },
];

for (const profile of PROFILES) clusterSuite(profile);

function clusterSuite(profile: ClusterProfile): void {
  const KINDS = profile.kinds;
  const JOBS = profile.jobs;

  describe(`a cluster of three example-service nodes on ${profile.title}`, () => {
    const services = new Map<ServiceKind, Service>();
    let skipReason: string | undefined;
    let env: Record<string, string> = {};
    let operator: Stowage;
    const nodes: ServiceNode[] = [];
    let published = 0;

    async function publishJobs(count: number, batch: string): Promise<string[]> {
      const ids: string[] = [];
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < count; i++) {
        const id = `${batch}-${i}`;
        ids.push(id);
        pending.push(operator.queue.publish(JOBS_TOPIC, JSON.stringify({ id, customer: `customer-${i % 50}`, n: i, batch }), { id }));
        if (pending.length >= 256) await Promise.all(pending.splice(0));
      }
      await Promise.all(pending);
      published += count;
      return ids;
    }

    async function storedCount(batch?: string): Promise<number> {
      const results = await operator.documents.collection(RESULTS_COLLECTION);
      return results.count(batch === undefined ? {} : { batch }, { timeoutMs: 5000 });
    }

    /** Waits until `expected` results are stored (of `batch`, or in all). */
    async function waitForStored(expected: number, timeoutMs: number, batch?: string): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      let last = -1;
      let countError = '';
      while (Date.now() < deadline) {
        last = await storedCount(batch).then(
          (n) => n,
          (err: unknown) => {
            countError = err instanceof Error ? err.message : String(err);
            return last;
          },
        );
        if (last >= expected) return;
        await new Promise((r) => setTimeout(r, 250));
      }
      // What the nodes last complained about says which backend is stuck.
      const warnings = nodes.flatMap((n) => n.events.filter((e) => e.type === 'warning').slice(-2).map((e) => `${n.nodeId}: ${String(e.message)}`));
      throw new Error(
        `only ${last} of ${expected} results stored after ${timeoutMs} ms${countError === '' ? '' : ` (last count error: ${countError})`}; nodes' last warnings: ${warnings.join(' | ') || 'none'}`,
      );
    }

    beforeAll(async () => {
      try {
        for (const kind of KINDS) services.set(kind, await startService(kind, { managed: true }));
      } catch (err) {
        if (!(err instanceof ServiceUnavailable)) throw err;
        skipReason = err.message;
        const needed = KINDS.filter((k) => requiredServices().has(k));
        if (needed.length > 0) throw new Error(`STOWAGE_TEST_REQUIRE names ${needed.join(', ')}, but: ${skipReason}`);
        return;
      }
      const run = randomUUID().slice(0, 8);
      env = {
        ...(await profile.env(services, run)),
        STOWAGE_TIMEOUT_MS: '3000',
        SERVICE_PROGRESS_MS: '300',
        SERVICE_ACK_WAIT_MS: '4000',
        STOWAGE_DATA_DIR: `/tmp/stowage-cluster-${run}`,
      };
      operator = await createStowage({}, { env: { ...env } });
      await operator.config.put(SETTINGS_KEY, { concurrency: 16, lookupTtlMs: 60_000, greeting: 'Hello' });
      await operator.secrets.put(TOKEN_SECRET, randomBytes(24).toString('hex'));
      for (const id of ['node-a', 'node-b', 'node-c']) nodes.push(new ServiceNode(id, env));
      await Promise.all(nodes.map((n) => n.waitFor((e) => e.type === 'started', 'start')));
    }, 240_000);

    afterAll(async () => {
      await Promise.allSettled(nodes.map((n) => n.kill()));
      await operator?.close().catch(() => undefined);
      await Promise.allSettled([...services.values()].map((s) => s.dispose()));
    }, 120_000);

    beforeEach((context) => {
      if (skipReason) context.skip(skipReason);
    });

    it('shows a config change written on one node to every node', async () => {
      const { revision } = await operator.config.put(SETTINGS_KEY, { concurrency: 16, lookupTtlMs: 60_000, greeting: 'Hi there' });
      for (const node of nodes) {
        await node.waitFor((e) => e.type === 'settings' && (e.revision as number) >= revision, `settings revision ${revision}`, 15_000);
      }
    }, 60_000);

    it(`splits ${JOBS.toLocaleString('en')} jobs across the nodes and stores each exactly once`, async () => {
      await publishJobs(JOBS, 'split');
      await waitForStored(JOBS, 180_000, 'split');
      expect(await storedCount('split')).toBe(JOBS);
      await new Promise((r) => setTimeout(r, 700));
      const stored = nodes.map((n) => n.latestStats()?.stored ?? 0);
      for (const s of stored) expect(s).toBeGreaterThan(0);
      const duplicates = nodes.reduce((sum, n) => sum + (n.latestStats()?.duplicates ?? 0), 0);
      console.log(`split: stored per node ${stored.join(' / ')}, duplicates ${duplicates}`);
      expect(stored.reduce((a, b) => a + b, 0)).toBe(JOBS);
    }, 240_000);

    it('finishes the jobs of a node killed with SIGKILL and drops it from the registry within its TTL', async () => {
      const victim = nodes[2]!;
      const ids = await publishJobs(3000, 'kill');
      await victim.waitFor((e) => e.type === 'progress' && ((e.stats as { stored: number }).stored ?? 0) > 0, 'progress', 30_000);
      await victim.kill();
      const killedAt = Date.now();
      const registry = createServiceRegistry(operator.config);
      let gone = false;
      while (Date.now() - killedAt < 20_000) {
        const alive = await registry.list(SERVICE_NAME);
        if (!alive.some((i) => i.id === victim.nodeId)) {
          gone = true;
          break;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(gone).toBe(true);
      console.log(`registry dropped the killed node after ${Date.now() - killedAt} ms`);
      await waitForStored(ids.length, 120_000, 'kill');
      const results = await operator.documents.collection(RESULTS_COLLECTION);
      for (const id of [ids[0]!, ids[ids.length - 1]!]) expect(await results.get(id)).toBeDefined();
      nodes[2] = new ServiceNode('node-c2', env);
      await nodes[2].waitFor((e) => e.type === 'started', 'restart of node-c');
    }, 180_000);

    for (const { kind, restart } of profile.faults) {
      it(`keeps going when ${kind} freezes (SIGSTOP/SIGCONT)${restart ? ' and when it is killed and restarted' : ''}`, async () => {
        const service = services.get(kind)!;
        const batch = `fault-${kind}`;
        const ids = await publishJobs(profile.faultJobs, batch);

        // Resolves once every thread of the server has stopped: before that it may still answer.
        await service.pause();
        const started = Date.now();
        const probe = await probeFor(kind, operator).then(
          () => undefined,
          (err: unknown) => err,
        );
        const elapsed = Date.now() - started;
        service.resume();
        expect(StowageError.is(probe), `a call against frozen ${kind} must fail with a StowageError, got ${String(probe)}`).toBe(true);
        expect(['TIMEOUT', 'UNAVAILABLE']).toContain((probe as StowageError).code);
        expect(elapsed).toBeLessThan(3000 + 2000);

        if (restart) {
          await service.kill();
          await new Promise((r) => setTimeout(r, 1500));
          await service.start();
        }

        await waitForStored(ids.length, 150_000, batch);
        const results = await operator.documents.collection(RESULTS_COLLECTION);
        const page = await results.find({ batch }, { limit: 10_000 });
        expect(new Set(page.items.map((d) => d.id)).size).toBe(ids.length);
        for (const node of nodes) expect(node.events.some((e) => e.type === 'stopped')).toBe(false);
      }, 240_000);
    }

    it('has every published job stored exactly once at the end, and the queue drained', async () => {
      await waitForStored(published, 120_000);
      expect(await storedCount()).toBe(published);
      const stats = await operator.queue.stats(JOBS_TOPIC);
      const workers = stats.groups.find((g) => g.group === WORKERS_GROUP);
      expect(workers?.backlog ?? 0).toBe(0);
    }, 180_000);
  });
}

/** One call to the port backed by `kind`, with a short deadline. */
function probeFor(kind: ServiceKind, stowage: Stowage): Promise<unknown> {
  const options = { timeoutMs: 3000 };
  switch (kind) {
    case 'etcd':
    case 'etcd-current':
      return stowage.config.get(SETTINGS_KEY, options);
    case 'vault':
      return stowage.secrets.get(TOKEN_SECRET, options);
    case 'postgres':
    case 'nats':
    case 'nats-current':
      // A stream request: it needs the server, and unlike a publish it leaves nothing behind for the nodes to
      // process once the server thaws. (A publish right after SIGSTOP once resolved here, really stored:
      // kill(2) returns before the server has stopped; pause() now waits until every thread has.)
      return stowage.queue.stats(JOBS_TOPIC, options);
    case 'redis':
      return stowage.cache.withNamespace('probe').set('k', 1, options);
    default:
      return stowage.documents.collection(RESULTS_COLLECTION, options).then((c) => c.count({}, options));
  }
}
