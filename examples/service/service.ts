/**
 * The example service: a worker written once against the five ports, run unchanged on a laptop (files under
 * one data folder) or as identical stateless processes in a cluster (etcd, Vault or sealed etcd, NATS, Redis,
 * MySQL/MongoDB).
 *
 * What it does, port by port:
 * - **config** — reads `service/settings` (`{ concurrency, lookupTtlMs, greeting }`) and watches it: a change
 *   written anywhere is applied live (a new concurrency restarts the handler loop, the rest applies to the
 *   next job);
 * - **secrets** — reads `service/api-token` and signs every result with an HMAC keyed by it (the token is
 *   never printed);
 * - **queue** — consumes topic `jobs` in group `workers`, acking only after the result is stored; with
 *   `audit: true` a second group `audit` counts every job independently;
 * - **cache** — looks up each job's customer with `cache.getOrSet` (hits and misses are counted);
 * - **documents** — writes each result to collection `results` with the job id as document id, as a
 *   create-only `put`: a redelivered job is stored once and counted as a duplicate.
 *
 * @module
 */
import { createHmac } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { createServiceRegistry } from '../../src/core/config/service-registry.js';
import type { Cache } from '../../src/ports/cache.js';
import type { ConfigStore } from '../../src/ports/config.js';
import type { Collection, DocumentStore } from '../../src/ports/documents.js';
import { StowageError } from '../../src/ports/errors.js';
import type { Delivery, Processor, Queue } from '../../src/ports/queue.js';
import type { SecretStore, SecretValue } from '../../src/ports/secrets.js';

/** The config key holding the service's settings. */
export const SETTINGS_KEY = 'service/settings';
/** The secret the service signs its results with. */
export const TOKEN_SECRET = 'service/api-token';
/** The topic jobs are published to. */
export const JOBS_TOPIC = 'jobs';
/** The consumer group that processes jobs. */
export const WORKERS_GROUP = 'workers';
/** The consumer group that only counts jobs. */
export const AUDIT_GROUP = 'audit';
/** The collection results are written to. */
export const RESULTS_COLLECTION = 'results';
/** The name nodes register under in the service registry (`createServiceRegistry(config).list(SERVICE_NAME)`). */
export const SERVICE_NAME = 'example-service';
/** How long a node that stopped keeping its lease alive stays listed, in milliseconds. */
export const NODE_TTL_MS = 5000;

/** The service's settings, as stored under {@link SETTINGS_KEY}. */
export type ServiceSettings = {
  /** How many jobs a node handles at once. */
  concurrency: number;
  /** How long a customer lookup stays cached, in milliseconds. */
  lookupTtlMs: number;
  /** Put at the start of every result's message. */
  greeting: string;
};

/** The settings used while none are stored. */
export const DEFAULT_SETTINGS: Readonly<ServiceSettings> = Object.freeze({ concurrency: 8, lookupTtlMs: 60_000, greeting: 'Hello' });

/** A job, as published to {@link JOBS_TOPIC} (JSON). */
export interface Job {
  /** The job id; also the id of its result document. */
  id: string;
  /** The customer the job is for (looked up through the cache). */
  customer: string;
  /** A number to work on. */
  n: number;
  /** Free label, e.g. the run that published it. */
  batch?: string;
}

/** A result, as stored in {@link RESULTS_COLLECTION}. */
export interface JobResult {
  [key: string]: string | number;
  /** The job id. */
  jobId: string;
  /** The job's batch label (`''` when none). */
  batch: string;
  /** The customer. */
  customer: string;
  /** The customer's tier, from the lookup. */
  tier: string;
  /** The job's number. */
  n: number;
  /** `n * n`: the "work". */
  square: number;
  /** `<greeting>, <customer name>`. */
  message: string;
  /** The node that stored the result. */
  nodeId: string;
  /** HMAC-SHA256 of the other fields, keyed by the API token (hex). */
  signature: string;
  /** When it was stored (ISO 8601). */
  storedAt: string;
}

/** Counters of one node, since it started. */
export interface ServiceStats {
  /** Jobs whose result this node stored. */
  stored: number;
  /** Jobs this node found already stored (redeliveries, or another node got there first). */
  duplicates: number;
  /** Jobs that failed (nak'ed, to be retried). */
  failed: number;
  /** Jobs counted by the audit group. */
  audited: number;
  /** Customer lookups served from the cache. */
  cacheHits: number;
  /** Customer lookups that called the loader. */
  cacheMisses: number;
  /** Settings changes applied. */
  settingsChanges: number;
}

/** What the service reports while running (one JSON line each in `main.ts`). */
export type ServiceEvent =
  | { type: 'started'; nodeId: string; settings: ServiceSettings; backends: Record<string, string> }
  | { type: 'settings'; nodeId: string; settings: ServiceSettings; revision: number }
  | { type: 'job'; nodeId: string; jobId: string; duplicate: boolean; deliveryCount: number }
  | { type: 'progress'; nodeId: string; stats: ServiceStats }
  | { type: 'warning'; nodeId: string; message: string; code?: string }
  | { type: 'stopped'; nodeId: string; stats: ServiceStats };

/** The ports the service needs: any object with these five (an opened `Stowage` is one). */
export interface ServicePorts {
  /** Settings. */
  readonly config: ConfigStore;
  /** The API token. */
  readonly secrets: SecretStore;
  /** Jobs. */
  readonly queue: Queue;
  /** Customer lookups. */
  readonly cache: Cache;
  /** Results. */
  readonly documents: DocumentStore;
}

/** Options of {@link runService}. */
export interface RunServiceOptions {
  /** This node's name, in results and events. */
  nodeId: string;
  /** Stops the service: running jobs finish and are acked, then `runService` resolves. */
  signal: AbortSignal;
  /** Receives progress events. */
  onEvent?: (event: ServiceEvent) => void;
  /** Also consume as group `audit`, counting jobs (default true). */
  audit?: boolean;
  /** How often a `progress` event is sent, in milliseconds (default 1000). */
  progressEveryMs?: number;
  /** Emit a `job` event per job (default false: too chatty beyond a few jobs). */
  jobEvents?: boolean;
  /** Redelivery delay of a job not acked, passed to the queue (default 30 000). */
  ackWaitMs?: number;
}

/** Validates settings read from config; anything missing or malformed falls back to the default. */
export function parseSettings(value: unknown): ServiceSettings {
  const v = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  const concurrency = Number.isInteger(v.concurrency) && (v.concurrency as number) >= 1 && (v.concurrency as number) <= 256 ? (v.concurrency as number) : DEFAULT_SETTINGS.concurrency;
  const lookupTtlMs = Number.isInteger(v.lookupTtlMs) && (v.lookupTtlMs as number) >= 1 ? (v.lookupTtlMs as number) : DEFAULT_SETTINGS.lookupTtlMs;
  const greeting = typeof v.greeting === 'string' && v.greeting.length <= 200 ? v.greeting : DEFAULT_SETTINGS.greeting;
  return { concurrency, lookupTtlMs, greeting };
}

/** The fields a result's signature covers, in a fixed order (so any node can verify any result). */
export function signResult(token: SecretValue, result: Omit<JobResult, 'signature' | 'storedAt' | 'nodeId'>): string {
  const canonical = JSON.stringify([result.jobId, result.batch, result.customer, result.tier, result.n, result.square, result.message]);
  return createHmac('sha256', token.bytes()).update(canonical).digest('hex');
}

/** The (pretend) customer database behind the cache: deterministic, and slow enough for caching to matter. */
async function loadCustomer(customer: string, signal: AbortSignal): Promise<{ name: string; tier: string }> {
  // A 2 ms "query"; too short to be worth a listener on the (shared) abort signal, so checked after.
  await delay(2);
  signal.throwIfAborted();
  let h = 0;
  for (const c of customer) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  const tiers = ['bronze', 'silver', 'gold'];
  return { name: customer.replace(/^\w/, (c) => c.toUpperCase()), tier: tiers[h % tiers.length] ?? 'bronze' };
}

function parseJob(delivery: Delivery): Job {
  const job = delivery.json<Partial<Job>>();
  if (typeof job?.id !== 'string' || typeof job.customer !== 'string' || typeof job.n !== 'number') {
    throw new StowageError('INVALID_ARGUMENT', `job at seq ${delivery.seq} is not { id, customer, n }`);
  }
  return { id: job.id, customer: job.customer, n: job.n, batch: typeof job.batch === 'string' ? job.batch : '' };
}

/**
 * Runs the service until `options.signal` aborts, then stops taking jobs, lets running ones finish and be
 * acked, and resolves with the node's counters. Rejects only when it cannot start (no token, bad ports).
 *
 * @example
 * ```ts
 * const stowage = await createStowage();
 * const stop = new AbortController();
 * process.once('SIGTERM', () => stop.abort());
 * const stats = await runService(stowage, { nodeId: 'n1', signal: stop.signal, onEvent: (e) => console.log(JSON.stringify(e)) });
 * ```
 */
export async function runService(ports: ServicePorts, options: RunServiceOptions): Promise<ServiceStats> {
  const { nodeId, signal } = options;
  const emit = options.onEvent ?? (() => undefined);
  const stats: ServiceStats = { stored: 0, duplicates: 0, failed: 0, audited: 0, cacheHits: 0, cacheMisses: 0, settingsChanges: 0 };
  const warn = (err: unknown, context: string): void => {
    const e = StowageError.is(err) ? err : undefined;
    emit({ type: 'warning', nodeId, message: `${context}: ${e?.message ?? String(err)}`, ...(e ? { code: e.code } : {}) });
  };

  const token = (await ports.secrets.get(TOKEN_SECRET)).value;
  const results: Collection<JobResult> = await ports.documents.collection<JobResult>(RESULTS_COLLECTION, {
    indexes: [{ name: 'by_batch_customer', fields: ['batch', 'customer'] }],
  });
  const initial = await ports.config.list(SETTINGS_KEY);
  const stored = initial.entries.find((e) => e.key === SETTINGS_KEY);
  let settings = parseSettings(stored?.value);
  const lookups = ports.cache.withNamespace('customers');
  const processOptions = { ackWaitMs: options.ackWaitMs ?? 30_000, maxDeliver: 10, backoffMs: [100, 500, 2000] };

  const handle = async (delivery: Delivery): Promise<void> => {
    const job = parseJob(delivery);
    const current = settings;
    let missed = false;
    const customer = await lookups.getOrSet(
      job.customer,
      async (s) => {
        missed = true;
        return loadCustomer(job.customer, s);
      },
      { ttlMs: current.lookupTtlMs },
    );
    if (missed) stats.cacheMisses++;
    else stats.cacheHits++;
    const body = {
      jobId: job.id,
      batch: job.batch ?? '',
      customer: job.customer,
      tier: customer.tier,
      n: job.n,
      square: job.n * job.n,
      message: `${current.greeting}, ${customer.name}`,
    };
    const result: JobResult = { ...body, nodeId, signature: signResult(token, body), storedAt: new Date().toISOString() };
    let duplicate = false;
    try {
      // Create-only: the first node to finish a job stores it; a redelivery finds it there.
      await results.put(job.id, result, { ifVersion: 0 });
      stats.stored++;
    } catch (err) {
      if (!StowageError.is(err, 'CONFLICT') && !StowageError.is(err, 'ALREADY_EXISTS')) throw err;
      duplicate = true;
      stats.duplicates++;
    }
    if (options.jobEvents) emit({ type: 'job', nodeId, jobId: job.id, duplicate, deliveryCount: delivery.deliveryCount });
  };

  const onError = (err: unknown, delivery: Delivery): void => {
    stats.failed++;
    warn(err, `job at seq ${delivery.seq} failed (delivery ${delivery.deliveryCount}); it will be retried`);
  };
  let worker: Processor = ports.queue.process(JOBS_TOPIC, WORKERS_GROUP, handle, { ...processOptions, concurrency: settings.concurrency, onError });
  // Restarting the loop is how a new concurrency applies; serialised so two quick changes cannot race.
  let restarting: Promise<void> = Promise.resolve();
  const applySettings = (next: ServiceSettings, revision: number): void => {
    const previous = settings;
    settings = next;
    stats.settingsChanges++;
    emit({ type: 'settings', nodeId, settings: next, revision });
    if (next.concurrency !== previous.concurrency && !signal.aborted) {
      restarting = restarting.then(async () => {
        const old = worker;
        worker = ports.queue.process(JOBS_TOPIC, WORKERS_GROUP, handle, { ...processOptions, concurrency: settings.concurrency, onError });
        await old.stop();
      });
    }
  };

  const auditor = options.audit === false
    ? undefined
    : ports.queue.process(
        JOBS_TOPIC,
        AUDIT_GROUP,
        async (delivery) => {
          parseJob(delivery);
          stats.audited++;
        },
        { ...processOptions, concurrency: 4, onError: (err) => warn(err, 'audit') },
      );

  const watching = watchSettings(ports.config, initial.revision, signal, applySettings, warn);
  const announcing = announce(ports.config, nodeId, signal, warn);
  emit({
    type: 'started',
    nodeId,
    settings,
    backends: {
      config: ports.config.backend,
      secrets: ports.secrets.backend,
      queue: ports.queue.backend,
      cache: ports.cache.backend,
      documents: ports.documents.backend,
    },
  });
  const ticker = setInterval(() => emit({ type: 'progress', nodeId, stats: { ...stats } }), options.progressEveryMs ?? 1000);

  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(ticker);
  await restarting.catch((err: unknown) => warn(err, 'restarting the worker'));
  await Promise.allSettled([worker.stop(), auditor?.stop(), watching, announcing]);
  emit({ type: 'stopped', nodeId, stats: { ...stats } });
  return stats;
}

/**
 * Follows `service/settings` from `revision` on. Watches when the backend can, polls otherwise; after a
 * compaction (or a dropped watch) it re-reads and watches again from the revision it read.
 */
async function watchSettings(
  config: ConfigStore,
  revision: number,
  signal: AbortSignal,
  apply: (settings: ServiceSettings, revision: number) => void,
  warn: (err: unknown, context: string) => void,
): Promise<void> {
  let from = revision;
  while (!signal.aborted) {
    try {
      if (config.capabilities.has('watch')) {
        for await (const event of config.watch(SETTINGS_KEY, { afterRevision: from, signal })) {
          from = event.revision;
          if (event.key !== SETTINGS_KEY) continue;
          apply(parseSettings(event.type === 'put' ? event.value : undefined), event.revision);
        }
        if (signal.aborted) return;
      } else {
        await pause(1000, signal);
        const entry = await config.get(SETTINGS_KEY);
        const rev = entry?.revision ?? 0;
        if (rev !== from && entry) apply(parseSettings(entry.value), rev);
        from = rev;
      }
    } catch (err) {
      if (signal.aborted || StowageError.is(err, 'CLOSED')) return;
      if (StowageError.is(err, 'COMPACTED')) {
        const snapshot = await config.list(SETTINGS_KEY).catch(() => undefined);
        const entry = snapshot?.entries.find((e) => e.key === SETTINGS_KEY);
        if (snapshot) {
          if (entry) apply(parseSettings(entry.value), entry.revision);
          from = snapshot.revision;
        }
      } else {
        warn(err, 'watching settings');
        await pause(500, signal);
      }
    }
  }
}

/**
 * Keeps this node registered in the service registry while it runs (when the config backend has leases and
 * watch), so a killed node disappears within the lease's TTL; re-registers after losing the lease.
 */
async function announce(config: ConfigStore, nodeId: string, signal: AbortSignal, warn: (err: unknown, context: string) => void): Promise<void> {
  if (!config.capabilities.has('leases') || !config.capabilities.has('watch')) return;
  const registry = createServiceRegistry(config);
  while (!signal.aborted) {
    try {
      const registration = await registry.register(SERVICE_NAME, { ttlMs: NODE_TTL_MS, id: nodeId, meta: { pid: process.pid } });
      try {
        await new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => resolve(), { once: true });
          registration.lost.addEventListener('abort', () => resolve(), { once: true });
        });
      } finally {
        await registration.deregister().catch(() => undefined);
      }
      if (!signal.aborted) warn(registration.lost.reason, `registration of ${nodeId} lost; registering again`);
    } catch (err) {
      if (signal.aborted || StowageError.is(err, 'CLOSED')) return;
      warn(err, `registering ${nodeId}`);
      await pause(1000, signal);
    }
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
