/**
 * Creating and checking the JetStream stream and durable consumers the queue driver uses: create when
 * absent, update what JetStream can change in place, refuse (CONFLICT) what it cannot, never silently.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { nanos } from '@nats-io/nats-core';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { StowageError } from '../../ports/errors.js';

/** The stream settings that come from the URL. */
export interface StreamSettings {
  /** Stream name; subjects are `<name>.<topic>`. */
  readonly name: string;
  /** Number of replicas (1 on a single server). */
  readonly replicas: number;
  /** `file` or `memory`. */
  readonly storage: 'file' | 'memory';
  /** Messages older than this are removed (0: kept until purged). */
  readonly maxAgeMs: number;
  /** How long a message id is remembered for dedupe. */
  readonly dedupeWindowMs: number;
}

/** The consumer settings that come from `consume` options. */
export interface GroupSettings {
  /** ackWait in milliseconds. */
  readonly ackWaitMs: number;
  /** Stowage's maxDeliver; JetStream's max_deliver is one more so that core sees the last one and dead-letters it. */
  readonly maxDeliver: number;
}

const GROUP_DESCRIPTION = /^stowage group (\S+) of topic (\S+)$/;

function conflict(message: string): StowageError {
  return new StowageError('CONFLICT', message);
}

/** Whether `err` is a JetStream API error with `code`. */
export function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

/**
 * The durable consumer name of a group: readable prefixes plus a hash, because `topic_group` alone would
 * let `a_b`/`c` and `a`/`b_c` collide.
 */
export function consumerName(topic: string, group: string): string {
  const hash = createHash('sha256').update(`${topic}\n${group}`).digest('hex').slice(0, 12);
  return `${topic.slice(0, 40)}_${group.slice(0, 40)}_${hash}`;
}

/** The group a consumer belongs to, read back from its description; undefined for consumers not ours. */
export function groupOf(info: ConsumerInfo): string | undefined {
  return GROUP_DESCRIPTION.exec(info.config.description ?? '')?.[1];
}

/** Makes sure the stream exists with compatible settings; updates what may change in place. */
export async function ensureStream(jsm: JetStreamManager, s: StreamSettings): Promise<void> {
  const subject = `${s.name}.>`;
  const storage = s.storage === 'memory' ? StorageType.Memory : StorageType.File;
  // JetStream refuses a dedupe window longer than max_age.
  const dedupeMs = s.maxAgeMs > 0 ? Math.min(s.dedupeWindowMs, s.maxAgeMs) : s.dedupeWindowMs;
  const wanted: Partial<StreamConfig> & { name: string } = {
    name: s.name,
    subjects: [subject],
    retention: RetentionPolicy.Limits,
    storage,
    num_replicas: s.replicas,
    max_age: nanos(s.maxAgeMs),
    duplicate_window: nanos(dedupeMs),
    discard: DiscardPolicy.Old,
    allow_direct: true,
    deny_delete: false,
    deny_purge: false,
  };
  for (let attempt = 0; ; attempt++) {
    let current: StreamConfig;
    try {
      current = (await jsm.streams.info(s.name)).config;
    } catch (err) {
      if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
      try {
        await jsm.streams.add(wanted);
        return;
      } catch (addErr) {
        // Another node created it between our info and add: check what it created.
        if (attempt < 2) continue;
        throw addErr;
      }
    }
    const where = `JetStream stream "${s.name}"`;
    if (current.retention !== RetentionPolicy.Limits) {
      throw conflict(`${where} exists with retention "${current.retention}"; Stowage needs "limits" (every group reads every message). Refusing to change it: use another ?stream= or delete the stream`);
    }
    if (current.storage !== storage) {
      throw conflict(`${where} exists with storage "${current.storage}", the URL asks for "${s.storage}"; JetStream cannot change storage in place`);
    }
    if (!(current.subjects ?? []).includes(subject)) {
      throw conflict(`${where} exists with subjects ${JSON.stringify(current.subjects ?? [])}, not "${subject}"; refusing to change them`);
    }
    if (current.deny_delete === true) {
      throw conflict(`${where} denies message deletes, which replaying dead letters needs`);
    }
    const changes: Partial<StreamConfig> = {};
    if (current.num_replicas !== s.replicas) changes.num_replicas = s.replicas;
    if (current.max_age !== wanted.max_age) changes.max_age = wanted.max_age;
    if (current.duplicate_window !== wanted.duplicate_window) changes.duplicate_window = wanted.duplicate_window;
    if (current.allow_direct !== true) changes.allow_direct = true;
    if (Object.keys(changes).length > 0) await jsm.streams.update(s.name, { ...current, ...changes });
    return;
  }
}

/** The durable consumer configuration of a group that starts at the oldest stored message. */
function groupConfig(stream: string, topic: string, group: string, g: GroupSettings): Partial<ConsumerConfig> {
  return {
    durable_name: consumerName(topic, group),
    description: `stowage group ${group} of topic ${topic}`,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    replay_policy: ReplayPolicy.Instant,
    filter_subject: `${stream}.${topic}`,
    ack_wait: nanos(g.ackWaitMs),
    max_deliver: g.maxDeliver + 1,
  };
}

/**
 * Creates a group's durable consumer, or re-creates an idle one, so that it starts at stream sequence `seq`
 * (JetStream cannot change a consumer's start in place). An existing consumer keeps its ackWait and
 * maxDeliver; its delivery counts and redelivery statistics restart. CONFLICT when it has unsettled
 * deliveries or waiting pull requests (a running consumer; a closed one's last pull lingers until it expires,
 * up to 5 s). Should the re-creation fail after the delete, the next consumer re-creates the group at the
 * oldest stored message: messages come again, none is skipped.
 */
export async function seekConsumer(jsm: JetStreamManager, stream: string, topic: string, group: string, seq: number): Promise<void> {
  const name = consumerName(topic, group);
  let current: ConsumerInfo | undefined;
  try {
    current = await jsm.consumers.info(stream, name);
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.ConsumerNotFound)) throw err;
  }
  const config = groupConfig(stream, topic, group, { ackWaitMs: 30_000, maxDeliver: 5 });
  if (current !== undefined) {
    if (current.num_ack_pending > 0 || current.num_waiting > 0) {
      throw conflict(
        `JetStream consumer "${name}" (group "${group}" of topic "${topic}") has ${current.num_ack_pending} unsettled deliveries and ${current.num_waiting} waiting pulls; stop its consumers before moving it`,
      );
    }
    config.ack_wait = current.config.ack_wait;
    config.max_deliver = current.config.max_deliver;
    await jsm.consumers.delete(stream, name);
  }
  await jsm.consumers.add(stream, { ...config, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: seq });
}

/** Makes sure the durable pull consumer of a group exists with the given ackWait and maxDeliver. */
export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  topic: string,
  group: string,
  g: GroupSettings,
): Promise<string> {
  const name = consumerName(topic, group);
  const filter = `${stream}.${topic}`;
  const wanted = groupConfig(stream, topic, group, g);
  for (let attempt = 0; ; attempt++) {
    let current: ConsumerConfig;
    try {
      current = (await jsm.consumers.info(stream, name)).config;
    } catch (err) {
      if (!isApiError(err, JetStreamApiCodes.ConsumerNotFound)) throw err;
      try {
        await jsm.consumers.add(stream, wanted);
        return name;
      } catch (addErr) {
        if (attempt < 2) continue;
        throw addErr;
      }
    }
    const where = `JetStream consumer "${name}" of stream "${stream}"`;
    if (current.filter_subject !== filter) {
      throw conflict(`${where} filters "${current.filter_subject ?? ''}", not "${filter}"; refusing to change it`);
    }
    if (current.ack_policy !== AckPolicy.Explicit) {
      throw conflict(`${where} has ack policy "${current.ack_policy}"; Stowage needs "explicit"`);
    }
    if (current.ack_wait !== wanted.ack_wait || current.max_deliver !== wanted.max_deliver) {
      // The latest consumer of a group decides its ackWait and maxDeliver (JetStream keeps one per group).
      await jsm.consumers.update(stream, name, { ...current, ack_wait: wanted.ack_wait, max_deliver: wanted.max_deliver });
    }
    return name;
  }
}
