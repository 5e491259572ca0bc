/**
 * The disk queue driver (`disk://`): one folder, one append-only segmented log per topic, durable group
 * cursors. See `docs-src/disk-queue-format.md` for the files it writes.
 *
 * @module
 */
import { lstat, mkdir, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { lockDataDir, type DataDirLock } from '../../driver/data-dir-lock.js';
import { syncDirectory } from '../../driver/durable-file.js';
import { StowageError } from '../../ports/errors.js';
import type {
  DriverDelivery,
  DriverMessage,
  DriverSubscription,
  Headers,
  PublishResult,
  QueueCapability,
  QueueDriver,
  StoredMessage,
  TopicStats,
} from '../../ports/queue.js';
import { ConsumerGroup, type GroupSubscription } from './consumer-group.js';
import type { Durability } from './durability.js';
import { GroupCursor } from './group-cursor.js';
import { TopicLog, type TopicLogOptions } from './topic-log.js';
import { closed } from '../../driver/errors.js';

/** The default segment size: 64 MiB. */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** The default dedupe window: two minutes, as JetStream's. */
export const DEFAULT_DISK_DEDUPE_WINDOW_MS = 120_000;

/**
 * Refuses a folder of the queue that is a symbolic link (or not a folder): writes would go wherever it points.
 * Absent is fine: it is created next, 0700.
 */
async function realFolder(path: string): Promise<void> {
  const info = await lstat(path).catch((err: { code?: unknown }) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (info !== undefined && (info.isSymbolicLink() || !info.isDirectory())) {
    throw new StowageError('PERMISSION_DENIED', `disk queue folder ${path} is a symbolic link or not a folder; refusing to write through it`, {
      details: { path },
    });
  }
}

/** Options of {@link DiskQueueDriver}. */
export interface DiskQueueOptions {
  /** When writes reach the disk. @default `{ mode: 'batch' }` */
  durability?: Durability;
  /** Bytes after which a segment is sealed. @default 64 MiB */
  segmentBytes?: number;
  /** Remove messages older than this, in ms (0: keep). @default 0 */
  retentionMs?: number;
  /** Remove the oldest whole segments while a topic is larger than this (0: no limit). @default 0 */
  retentionBytes?: number;
  /** Keep at most this many messages per topic (0: no limit). @default 0 */
  retentionMessages?: number;
  /** How long a message id is remembered for dedupe, in ms. @default 120 000 */
  dedupeWindowMs?: number;
  /** Bytes of a group's ack journal that trigger its compaction into a snapshot. @default 4 MiB */
  cursorCompactBytes?: number;
}

/** What {@link DiskQueueDriver.native} returns. */
export interface DiskQueueNative {
  /** The queue folder. */
  root: string;
  /** The topics opened so far. */
  topics: string[];
}

/** A topic's log and its groups. */
interface Topic {
  log: TopicLog;
  groups: Map<string, ConsumerGroup>;
  groupsDir: string;
  /** Groups being created by `subscribe` (stats wait for them, so a new consumer's group is listed). */
  creating: Set<Promise<unknown>>;
}

/**
 * A {@link QueueDriver} over files in one folder (locked against a second process). Topics open lazily on
 * first use; opening one recovers its log (cutting a torn tail, refusing a damaged middle) and replays
 * its groups' cursors.
 */
export class DiskQueueDriver implements QueueDriver {
  readonly backend = 'disk';
  readonly capabilities: ReadonlySet<QueueCapability> = new Set<QueueCapability>(['purge', 'retention']);
  /** Its groups' consumers all live in this process: core orders keys and limits rates without the config store. */
  readonly singleProcess = true;
  readonly #root: string;
  readonly #opts: TopicLogOptions;
  readonly #compactBytes: number | undefined;
  readonly #topics = new Map<string, Promise<Topic>>();
  /** Topics already open: publishes to them skip an await. */
  readonly #open = new Map<string, Topic>();
  readonly #lock: DataDirLock;
  #closed = false;

  private constructor(root: string, lock: DataDirLock, options: DiskQueueOptions) {
    this.#root = root;
    this.#lock = lock;
    this.#compactBytes = options.cursorCompactBytes;
    this.#opts = {
      durability: options.durability ?? { mode: 'batch' },
      segmentBytes: options.segmentBytes ?? DEFAULT_SEGMENT_BYTES,
      retentionMs: options.retentionMs ?? 0,
      retentionBytes: options.retentionBytes ?? 0,
      retentionMessages: options.retentionMessages ?? 0,
      dedupeWindowMs: options.dedupeWindowMs ?? DEFAULT_DISK_DEDUPE_WINDOW_MS,
    };
  }

  /**
   * Opens a queue folder (created if missing), taking its lock.
   *
   * @throws StowageError UNAVAILABLE when another live process holds the folder.
   */
  static async open(root: string, options: DiskQueueOptions = {}): Promise<DiskQueueDriver> {
    if ((await mkdir(join(root, 'topics'), { recursive: true, mode: 0o700 })) !== undefined) {
      await syncDirectory(root);
      await syncDirectory(dirname(root));
    }
    await realFolder(join(root, 'topics'));
    const lock = await lockDataDir(root);
    return new DiskQueueDriver(root, lock, options);
  }

  /** The folder. */
  get root(): string {
    return this.#root;
  }

  #topic(name: string): Promise<Topic> {
    if (this.#closed) return Promise.reject(closed(`disk queue ${this.#root}`));
    let t = this.#topics.get(name);
    if (!t) {
      t = this.#openTopic(name);
      t.then((opened) => this.#open.set(name, opened), () => undefined);
      // A topic that failed to open (damaged) is retried on next use rather than cached broken.
      t.catch(() => this.#topics.delete(name));
      this.#topics.set(name, t);
    }
    return t;
  }

  async #openTopic(name: string): Promise<Topic> {
    const topics = join(this.#root, 'topics');
    // On a case-insensitive file system (macOS, Windows) "Orders" and "orders" would share one folder.
    const twin = (await readdir(topics)).find((other) => other !== name && other.toLowerCase() === name.toLowerCase());
    if (twin !== undefined) {
      throw new StowageError('ALREADY_EXISTS', `topic ${JSON.stringify(name)} differs only by case from the existing ${JSON.stringify(twin)}`, {
        details: { topic: name, existing: twin },
      });
    }
    const dir = join(topics, name);
    await realFolder(dir);
    const log = await TopicLog.open(name, dir, this.#opts);
    const groupsDir = join(dir, 'groups');
    if ((await mkdir(groupsDir, { recursive: true, mode: 0o700 })) !== undefined) await syncDirectory(dir);
    await realFolder(groupsDir);
    const groups = new Map<string, ConsumerGroup>();
    try {
      for (const g of await GroupCursor.list(groupsDir)) {
        groups.set(g, new ConsumerGroup(log, await GroupCursor.open(groupsDir, g, this.#opts.durability, this.#compactBytes)));
      }
    } catch (err) {
      for (const g of groups.values()) await g.close();
      await log.close();
      throw err;
    }
    log.groupsNeed = () => {
      let need: number | undefined;
      for (const g of groups.values()) need = Math.min(need ?? Infinity, g.cursor.floor + 1);
      return need;
    };
    return { log, groups, groupsDir, creating: new Set() };
  }

  publish(topic: string, payload: Uint8Array, headers: Headers, id: string | undefined, _signal?: AbortSignal): Promise<PublishResult> {
    const open = this.#closed ? undefined : this.#open.get(topic);
    if (open) return open.log.append(payload, headers, id);
    return this.#topic(topic).then((t) => t.log.append(payload, headers, id));
  }

  /**
   * Appends every message at once: appends keep their call order, and the batched `fsync` policy then
   * covers them with one group commit instead of one per message.
   */
  publishMany(topic: string, messages: readonly DriverMessage[], signal?: AbortSignal): Promise<PublishResult[]> {
    return Promise.all(messages.map((m) => this.publish(topic, m.payload, m.headers, m.id, signal)));
  }

  subscribe(topic: string, group: string, options: { ackWaitMs: number; maxDeliver: number; prefetch: number }): DriverSubscription {
    const creating = this.#topic(topic).then(async (t) => {
      const done = this.#joinGroup(t, group, options);
      t.creating.add(done);
      try {
        return await done;
      } finally {
        t.creating.delete(done);
      }
    });
    return new LazySubscription(creating);
  }

  async #joinGroup(t: Topic, group: string, options: { ackWaitMs: number; prefetch: number }): Promise<GroupSubscription> {
    return (await this.#group(t, group)).subscribe({ ackWaitMs: options.ackWaitMs, prefetch: options.prefetch });
  }

  /** The topic's consumer group `group`, opening its cursor (created when new) the first time. */
  async #group(t: Topic, group: string): Promise<ConsumerGroup> {
    let g = t.groups.get(group);
    if (!g) {
      const cursor = await GroupCursor.open(t.groupsDir, group, this.#opts.durability, this.#compactBytes);
      // Another call may have created it while the cursor opened.
      g = t.groups.get(group);
      if (g) await cursor.close();
      else {
        g = new ConsumerGroup(t.log, cursor);
        t.groups.set(group, g);
      }
    }
    return g;
  }

  async topics(_signal?: AbortSignal): Promise<string[]> {
    if (this.#closed) throw closed(`disk queue ${this.#root}`);
    const names = await readdir(join(this.#root, 'topics')).catch((err: unknown) => {
      if ((err as { code?: string }).code === 'ENOENT') return [];
      throw err;
    });
    const out: string[] = [];
    // A topic's folder exists once anything touched it (stats included): list only those holding something.
    for (const name of names.sort()) {
      if (!/^[A-Za-z0-9_-]+(\.dlq)?$/.test(name)) continue;
      const t = await this.#topic(name);
      if (t.log.messageCount > 0 || t.groups.size > 0) out.push(name);
    }
    return out;
  }

  async seekGroup(topic: string, group: string, seq: number, _signal?: AbortSignal): Promise<void> {
    const t = await this.#topic(topic);
    await Promise.allSettled([...t.creating]);
    const g = await this.#group(t, group);
    if (g.busy) {
      throw new StowageError('CONFLICT', `disk queue: group "${group}" of topic "${topic}" has running consumers or unsettled deliveries; stop them before moving it`);
    }
    await g.seek(seq);
  }

  async read(topic: string, fromSeq: number, limit: number, _signal?: AbortSignal): Promise<StoredMessage[]> {
    const t = await this.#topic(topic);
    return t.log.read(fromSeq, limit);
  }

  async remove(topic: string, seq: number, _signal?: AbortSignal): Promise<void> {
    const t = await this.#topic(topic);
    await t.log.remove(seq);
  }

  async stats(topic: string, _signal?: AbortSignal): Promise<Omit<TopicStats, 'deadLetters'>> {
    const t = await this.#topic(topic);
    await Promise.allSettled([...t.creating]);
    return {
      topic,
      messages: t.log.messageCount,
      lastSeq: t.log.lastSeq,
      groups: [...t.groups.values()].map((g) => g.stats()),
    };
  }

  async purge(topic: string, _signal?: AbortSignal): Promise<void> {
    const t = await this.#topic(topic);
    await t.log.purge();
    for (const g of t.groups.values()) g.purged();
  }

  async ping(
    _signal?: AbortSignal,
  ): Promise<{
    /** Never set: a folder has no server version. */
    serverVersion?: string;
  }> {
    await readdir(this.#root);
    return {};
  }

  /** The folder and its open topics, for what the port does not cover. */
  native(): DiskQueueNative {
    return { root: this.#root, topics: [...this.#topics.keys()] };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#topics.values()) {
      let t: Topic;
      try {
        t = await p;
      } catch {
        continue;
      }
      for (const g of t.groups.values()) await g.close();
      await t.log.close();
    }
    this.#topics.clear();
    this.#open.clear();
    await this.#lock.release();
  }
}

/** A subscription whose topic is still opening: `close()` works at once, iteration waits for the open. */
class LazySubscription implements DriverSubscription, AsyncIterator<DriverDelivery> {
  readonly #inner: Promise<GroupSubscription>;
  #sub: GroupSubscription | undefined;
  #closed = false;

  constructor(inner: Promise<GroupSubscription>) {
    this.#inner = inner;
    inner.then(
      (s) => {
        this.#sub = s;
        if (this.#closed) void s.close();
      },
      () => undefined,
    );
  }

  next(): Promise<IteratorResult<DriverDelivery>> {
    if (this.#sub) return this.#sub[Symbol.asyncIterator]().next();
    return this.#inner.then((s) => (this.#closed ? { value: undefined, done: true } : s[Symbol.asyncIterator]().next()));
  }

  async return(): Promise<IteratorResult<DriverDelivery>> {
    await this.close();
    return { value: undefined, done: true };
  }

  async close(): Promise<void> {
    this.#closed = true;
    const s = await this.#inner.catch(() => undefined);
    await s?.close();
  }

  [Symbol.asyncIterator](): AsyncIterator<DriverDelivery> {
    return this;
  }
}
