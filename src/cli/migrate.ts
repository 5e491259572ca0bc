/**
 * `stowage migrate --from <profile> --to <profile>`: copies config, every secret version and documents with
 * their indexes from one profile to another, resumably, then verifies counts and content hashes per port.
 *
 * Queues: for each topic, the stored messages after the lowest group ack floor (every stored message when the
 * topic has no group) are republished in order with their ids and reserved headers, each group is positioned
 * on the target at the copy of the first message after its ack floor, and dead letters are copied as they are.
 *
 * What the ports do not let it carry is reported, not worked around:
 * - queue: messages a group acked out of order above its ack floor are delivered to it again on the target
 *   (at-least-once); delivery counts restart; sequence numbers are the target's (dead letters keep the
 *   source's `originalSeq`);
 * - soft-deleted secret versions: the port cannot read them; they arrive destroyed, so numbering matches;
 * - document versions restart at 1 and migration versions are not exposed (the port's migrations are
 *   written to be safe to re-run);
 * - the cache: its contents are rebuildable by definition and are not copied.
 *
 * One file (~600 lines) for one command: the copy of each port is short and they share the checkpoint,
 * the progress report and the verification pass; split per port, each file would mostly import the others.
 *
 * @module
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { JsonValue, PortName } from '../ports/common.js';
import { fileSystemError, writeFileAtomic } from '../driver/durable-file.js';
import { StowageError } from '../ports/errors.js';
import type { IndexSpec } from '../ports/documents.js';
import type { Queue, StoredMessage } from '../ports/queue.js';
import { HEADER_ORIGINAL_ID, queueTransfer } from '../core/queue/queue.js';
import { openStowage, type Stowage } from '../core/stowage.js';
import type { SchemeRegistry } from '../core/registry.js';
import { UsageError, int, str, type Command, type CommandContext } from './context.js';
import { ProgressBars, renderTable, type Palette } from './output.js';

/** One line of the verification table. */
export interface VerificationRow {
  /** The port. */
  readonly port: PortName;
  /** What was compared: `keys`, `versions`, a collection, a topic. */
  readonly item: string;
  /** The count on the source. */
  readonly source: number;
  /** The count on the target. */
  readonly target: number;
  /** A digest of the source's content (HMAC with a per-run key for secrets). */
  readonly sourceHash: string;
  /** The same digest of the target. */
  readonly targetHash: string;
  /** `match` or `MISMATCH`. */
  readonly status: 'match' | 'MISMATCH';
}

/** What a migration did. */
export interface MigrationReport {
  /** Whether every copied port verified and nothing was left behind. */
  readonly ok: boolean;
  /** Items copied in this invocation, per port. */
  readonly copied: Readonly<Record<string, number>>;
  /** The verification table. */
  readonly verification: readonly VerificationRow[];
  /** What could not be carried, and why. */
  readonly notes: readonly string[];
}

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /** The source profile file. */
  from: string;
  /** The target profile file. */
  to: string;
  /** Where progress is kept so an interrupted run resumes (default `.stowage-migrate-<hash>.json` in cwd). */
  checkpoint?: string;
  /** Ignore an existing checkpoint and start over. */
  restart?: boolean;
  /** Only verify; copy nothing. */
  verifyOnly?: boolean;
  /** Only these topics (default: every topic the source lists). */
  topics?: readonly string[];
  /** Documents per page (default 500). */
  batchSize?: number;
  /** The environment (credentials such as `STOWAGE_MASTER_KEY`; `STOWAGE_*_URL` are ignored: the files decide). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Where relative paths start (default `process.cwd()`). */
  cwd?: string;
  /** Progress bars (draw on a TTY only). */
  progress?: ProgressBars;
  /** The scheme registry (default every built-in scheme). */
  registry?: SchemeRegistry;
}

interface Checkpoint {
  version: 1;
  from: string;
  to: string;
  configDone: boolean;
  secretsDone: string[];
  collections: Record<string, { after?: string; copied: number; done: boolean }>;
  /** Per topic (absent in checkpoints written before queues were copied). */
  topics?: Record<string, TopicCheckpoint>;
}

/** Where the copy of one topic stands. */
interface TopicCheckpoint {
  /** Each source group's ack floor when the copy began (a resumed run keeps these positions). */
  floors: Record<string, number>;
  /** The next source sequence to copy. */
  next: number;
  /** The last target sequence written for this topic (0: none yet). */
  targetLast: number;
  /** Per group, the target sequence of the copy of the first message after its floor. */
  starts: Record<string, number>;
  /** Messages copied. */
  copied: number;
  /** Whether the messages are all copied. */
  messagesDone: boolean;
  /** Whether the dead letters are all copied. */
  deadLettersDone: boolean;
  /** Whether the groups are positioned (the topic is done). */
  done: boolean;
}

/** JSON with object keys sorted, so equal values hash equally whatever the backend's key order. */
function canonical(value: JsonValue | undefined): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  return `{${Object.keys(value)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
    .join(',')}}`;
}

function digest(parts: readonly string[], key?: Buffer): string {
  const h = key ? createHmac('sha256', key) : createHash('sha256');
  for (const p of parts) h.update(p).update('\u0000');
  return h.digest('hex').slice(0, 16);
}

/** Replaces the checkpoint durably: a crash leaves the previous one or this one, whole. */
async function saveCheckpoint(path: string, cp: Checkpoint): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFileAtomic(path, JSON.stringify(cp), { mode: 0o600 });
  } catch (err) {
    throw fileSystemError(err, 'write the migration checkpoint', path);
  }
}

async function loadCheckpoint(path: string, from: string, to: string): Promise<Checkpoint | undefined> {
  // The default checkpoint sits in the working folder, which may be shared (/tmp): a checkpoint planted there
  // by another user, or a link, would steer what is copied and what is skipped.
  const info = await lstat(path).catch(() => undefined);
  if (info === undefined) return undefined;
  if (!info.isFile() || (process.getuid !== undefined && info.uid !== process.getuid()) || (info.mode & 0o022) !== 0) {
    throw new StowageError('PERMISSION_DENIED', `checkpoint ${path} is not a file of this user writable only by them; remove it or pass --checkpoint elsewhere`);
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  let cp: Checkpoint;
  try {
    cp = JSON.parse(text) as Checkpoint;
  } catch {
    throw new StowageError('CORRUPTED', `checkpoint ${path} is not valid JSON; remove it or pass --restart`);
  }
  if (cp.version !== 1 || cp.from !== from || cp.to !== to) {
    throw new StowageError('INVALID_ARGUMENT', `checkpoint ${path} belongs to another migration (${cp.from} → ${cp.to}); remove it or pass --restart`);
  }
  return cp;
}

/** The environment without `STOWAGE_*_URL` / `STOWAGE_DATA_DIR` / `STOWAGE_PROFILE`: the profile files decide. */
function credentialsOnly(env: Readonly<Record<string, string | undefined>>): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !/^STOWAGE_(\w+_URL|DATA_DIR|PROFILE)$/.test(k)));
}

async function openSide(registry: SchemeRegistry, file: string, ports: readonly PortName[], env: Record<string, string | undefined>): Promise<Stowage> {
  // Relative paths in a profile file (dataDir, file URLs) are relative to the file.
  return openStowage(registry, { profileFile: file }, { ports, env, cwd: dirname(file) });
}

async function configRows(s: Stowage): Promise<{ count: number; hash: string }> {
  const { entries } = await s.config.list('');
  const kept = entries.filter((e) => e.lease === undefined);
  return { count: kept.length, hash: digest(kept.map((e) => `${e.key}=${canonical(e.value)}`)) };
}

async function secretRows(s: Stowage, key: Buffer): Promise<{ names: number; versions: number; hash: string }> {
  const parts: string[] = [];
  let versions = 0;
  const names = await s.secrets.list('');
  for (const name of names) {
    for (const v of await s.secrets.versions(name)) {
      if (v.deleted || v.destroyed) {
        parts.push(`${name}#${v.version}:gone`);
        continue;
      }
      versions++;
      const value = (await s.secrets.get(name, { version: v.version })).value;
      parts.push(`${name}#${v.version}:${createHmac('sha256', key).update(value.bytes()).digest('hex')}`);
    }
  }
  return { names: names.length, versions, hash: digest(parts, key) };
}

function indexKey(i: IndexSpec): string {
  return `${i.name ?? ''}(${i.fields.join(',')})${i.unique ? '!' : ''}`;
}

async function collectionRows(s: Stowage, name: string, batch: number): Promise<{ count: number; hash: string; indexes: string }> {
  const names = await s.documents.collections();
  if (!names.includes(name)) return { count: 0, hash: digest([]), indexes: '' };
  const col = await s.documents.collection(name);
  const parts: string[] = [];
  let after: string | undefined;
  do {
    const page = await col.find({}, { limit: batch, after });
    for (const d of page.items) parts.push(`${d.id}=${canonical(d.data)}`);
    after = page.next;
  } while (after !== undefined);
  const indexes = (await col.indexes()).map(indexKey).sort().join(' ');
  return { count: parts.length, hash: digest(parts), indexes };
}

/** The id a message is known by: the publisher's (kept in a reserved header for replayed and re-keyed ones). */
function effectiveId(m: StoredMessage): string {
  return m.headers[HEADER_ORIGINAL_ID] ?? m.id ?? '';
}

/** A digest of what a consumer sees of a message: id, headers (the original-id one folded into the id), payload. */
function messageDigest(m: StoredMessage): string {
  const headers = Object.entries(m.headers)
    .filter(([k]) => k !== HEADER_ORIGINAL_ID)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}:${v}`);
  return createHash('sha256').update(effectiveId(m)).update('\u0000').update(headers.join('\u0000')).update('\u0000').update(m.payload).digest('hex');
}

/** Every stored message of a topic from `fromSeq`, page by page. */
async function* browseAll(queue: Queue, topic: string, fromSeq: number, batch: number): AsyncGenerator<StoredMessage> {
  let from = fromSeq;
  for (;;) {
    const page = await queue.browse(topic, { fromSeq: from, limit: batch });
    if (page.length === 0) return;
    yield* page;
    from = (page.at(-1) as StoredMessage).seq + 1;
  }
}

/** Each group's ack floor, and the lowest (the copy starts after it; 0 without groups: every message). */
async function groupFloors(queue: Queue, topic: string): Promise<{ floors: Record<string, number>; lowest: number }> {
  const stats = await queue.stats(topic);
  const floors = Object.fromEntries(stats.groups.map((g) => [g.group, g.ackFloor]));
  return { floors, lowest: stats.groups.length === 0 ? 0 : Math.min(...stats.groups.map((g) => g.ackFloor)) };
}

/** Verification of one side of a topic: the messages after the lowest ack floor, per group after its own, and dead letters. */
async function topicRows(queue: Queue, topic: string, batch: number): Promise<{ count: number; hash: string; groups: Map<string, { count: number; hash: string }>; dead: { count: number; hash: string } }> {
  const { floors, lowest } = await groupFloors(queue, topic);
  const digests: { seq: number; d: string }[] = [];
  for await (const m of browseAll(queue, topic, lowest + 1, batch)) digests.push({ seq: m.seq, d: messageDigest(m) });
  const groups = new Map<string, { count: number; hash: string }>();
  for (const [group, floor] of Object.entries(floors)) {
    const after = digests.filter((x) => x.seq > floor).map((x) => x.d);
    groups.set(group, { count: after.length, hash: digest(after) });
  }
  const transfer = queueTransfer(queue);
  const dead: string[] = [];
  for (let from = 1; ; ) {
    const page = await transfer.readDeadLetters(topic, from, batch);
    if (page.length === 0) break;
    for (const m of page) dead.push(messageDigest(m));
    from = (page.at(-1) as StoredMessage).seq + 1;
  }
  return { count: digests.length, hash: digest(digests.map((x) => x.d)), groups, dead: { count: dead.length, hash: digest(dead) } };
}

/** Whether two sides of a topic verify alike: messages, each group's backlog, dead letters. */
function sameTopic(a: Awaited<ReturnType<typeof topicRows>>, b: Awaited<ReturnType<typeof topicRows>>): boolean {
  const same = (x: { count: number; hash: string } | undefined, y: { count: number; hash: string } | undefined): boolean => x?.count === y?.count && x?.hash === y?.hash;
  return same(a, b) && same(a.dead, b.dead) && a.groups.size === b.groups.size && [...a.groups].every(([g, x]) => same(x, b.groups.get(g)));
}

/**
 * Copies one topic: messages after the lowest ack floor in order (checkpointed per page; a resumed run first
 * pairs what the interrupted one wrote after its checkpoint with the source messages it came from), then the
 * dead letters, then each group's position.
 */
async function copyTopic(
  source: Queue,
  target: Queue,
  topic: string,
  cp: Checkpoint,
  save: () => Promise<void>,
  batch: number,
  progress: (copied: number) => void,
): Promise<number> {
  const topics = (cp.topics ??= {});
  let state = topics[topic];
  if (state === undefined) {
    const t = await target.stats(topic);
    if (t.messages > 0 || t.groups.length > 0 || t.deadLetters > 0) {
      // A run repeated after a finished one finds its own copy: nothing to do when both sides verify alike.
      if (sameTopic(await topicRows(source, topic, batch), await topicRows(target, topic, batch))) return 0;
      throw new StowageError(
        'CONFLICT',
        `queue topic "${topic}" already has messages, groups or dead letters on the target that differ from the source; migrate copies a topic only into an empty one (leave it out with --topics, or use a fresh stream or folder)`,
      );
    }
    const { floors, lowest } = await groupFloors(source, topic);
    state = { floors, next: lowest + 1, targetLast: 0, starts: {}, copied: 0, messagesDone: false, deadLettersDone: false, done: false };
    topics[topic] = state;
    await save();
  }
  const s = state;
  const transfer = queueTransfer(target);
  let copied = 0;
  if (!s.messagesDone) {
    // What an interrupted run wrote after its last checkpoint: the same source messages, in the same order.
    const written: StoredMessage[] = [];
    for await (const m of browseAll(target, topic, s.targetLast + 1, batch)) written.push(m);
    for await (const m of browseAll(source, topic, s.next, batch)) {
      let targetSeq: number;
      const already = written.shift();
      if (already !== undefined) {
        if (effectiveId(already) !== effectiveId(m) || messageDigest(already) !== messageDigest(m)) {
          throw new StowageError('CONFLICT', `queue topic "${topic}": target message ${already.seq} is not the copy of source message ${m.seq}; something else writes to the target topic`);
        }
        targetSeq = already.seq;
      } else {
        let r = await transfer.restore(topic, m);
        if (r.duplicate) {
          // The id was published again on the source after its dedupe window; the target still remembers the
          // first copy. Store this one under a migration id, keeping the publisher's id where consumers see it.
          r = await transfer.restore(topic, { payload: m.payload, id: `migrate:${topic}:${m.seq}`, headers: { ...m.headers, [HEADER_ORIGINAL_ID]: effectiveId(m) } });
        }
        targetSeq = r.seq;
        copied++;
      }
      for (const [group, floor] of Object.entries(s.floors)) if (s.starts[group] === undefined && m.seq > floor) s.starts[group] = targetSeq;
      s.next = m.seq + 1;
      s.targetLast = targetSeq;
      s.copied++;
      if (s.copied % batch === 0) {
        await save();
        progress(s.copied);
      }
    }
    s.messagesDone = true;
    await save();
    progress(s.copied);
  }
  if (!s.deadLettersDone) {
    // Dead letters keep their stored ids (`dlq:<topic>:<group>:<seq>`), so the target's count says how many
    // an interrupted run already copied.
    let skip = (await target.stats(topic)).deadLetters;
    const from = queueTransfer(source);
    for (let seq = 1; ; ) {
      const page = await from.readDeadLetters(topic, seq, batch);
      if (page.length === 0) break;
      for (const m of page) {
        if (skip > 0) {
          skip--;
          continue;
        }
        await transfer.restore(topic, m, { deadLetter: true });
        copied++;
      }
      seq = (page.at(-1) as StoredMessage).seq + 1;
    }
    s.deadLettersDone = true;
    await save();
  }
  if (!s.done) {
    // A group with nothing after its floor starts after the last message (sequences only grow).
    const end = (await target.stats(topic)).lastSeq + 1;
    for (const group of Object.keys(s.floors).sort()) await target.seekGroup(topic, group, s.starts[group] ?? end);
    s.done = true;
    await save();
  }
  return copied;
}

/**
 * Copies config, secrets, documents and queues from the `from` profile to the `to` profile and verifies them.
 * Resumes from its checkpoint after an interruption; removes the checkpoint once verification matches.
 */
export async function migrate(options: MigrateOptions): Promise<MigrationReport> {
  const cwd = options.cwd ?? process.cwd();
  const from = resolve(cwd, options.from);
  const to = resolve(cwd, options.to);
  if (from === to) throw new StowageError('INVALID_ARGUMENT', `--from and --to are the same profile file (${from})`);
  const registry = options.registry ?? (await import('../schemes.js')).createDefaultRegistry();
  const env = credentialsOnly(options.env ?? process.env);
  const checkpointPath = resolve(cwd, options.checkpoint ?? `.stowage-migrate-${digest([from, to]).slice(0, 8)}.json`);
  const batch = options.batchSize ?? 500;
  const ports: PortName[] = ['config', 'secrets', 'documents', 'queue'];
  const bars = options.progress;
  const notes: string[] = [];
  const copied: Record<string, number> = { config: 0, secrets: 0, documents: 0, queue: 0 };

  let cp: Checkpoint = { version: 1, from, to, configDone: false, secretsDone: [], collections: {} };
  if (options.restart) await rm(checkpointPath, { force: true });
  else cp = (await loadCheckpoint(checkpointPath, from, to)) ?? cp;

  const source = await openSide(registry, from, ports, env);
  let target: Stowage;
  try {
    target = await openSide(registry, to, ports, env);
  } catch (err) {
    await source.close();
    throw err;
  }
  try {
    const topics = options.topics ?? (await source.queue.topics());
    if (!options.verifyOnly) {
      // config: idempotent puts, so a resumed run simply writes again.
      if (!cp.configDone) {
        const { entries } = await source.config.list('');
        const kept = entries.filter((e) => e.lease === undefined);
        if (kept.length < entries.length) notes.push(`config: ${entries.length - kept.length} keys bound to leases (ephemeral) were not copied`);
        for (const [i, e] of kept.entries()) {
          await target.config.put(e.key, e.value);
          copied.config = (copied.config ?? 0) + 1;
          bars?.update('config', i + 1, kept.length);
        }
        cp.configDone = true;
        await saveCheckpoint(checkpointPath, cp);
      }
      bars?.update('config', 1, 1, 'done');

      // secrets: version by version with compare-and-set, so numbering matches and a resumed run skips what is there.
      const names = await source.secrets.list('');
      const done = new Set(cp.secretsDone);
      let unreadable = 0;
      for (const [i, name] of names.entries()) {
        bars?.update('secrets', i, names.length, name);
        if (done.has(name)) continue;
        const have = await target.secrets.versions(name).catch((err: unknown) => {
          if (StowageError.is(err, 'NOT_FOUND')) return [];
          throw err;
        });
        const destroys = target.secrets.capabilities.has('destroy');
        for (const v of await source.secrets.versions(name)) {
          const gone = v.deleted || v.destroyed;
          const there = have[v.version - 1];
          if (there === undefined) {
            const value = gone ? randomBytes(16) : (await source.secrets.get(name, { version: v.version })).value;
            try {
              await target.secrets.put(name, value, { ifVersion: v.version - 1 });
            } catch (err) {
              if (StowageError.is(err, 'CONFLICT')) {
                throw new StowageError('CONFLICT', `secret "${name}" on the target already has versions that do not line up with the source's version ${v.version}; destroy it on the target first`, { cause: err });
              }
              throw err;
            }
            copied.secrets = (copied.secrets ?? 0) + 1;
          }
          // Also for a version the target already has: an interrupted run may have copied it and died before
          // it destroyed it.
          if (gone && !(there?.destroyed || (!destroys && there?.deleted))) {
            if (v.deleted && !v.destroyed && there === undefined) unreadable++;
            if (destroys) await target.secrets.destroy(name, { versions: [v.version] });
            else await target.secrets.delete(name, { versions: [v.version] });
          }
        }
        cp.secretsDone.push(name);
        await saveCheckpoint(checkpointPath, cp);
      }
      if (unreadable > 0) notes.push(`secrets: ${unreadable} soft-deleted versions cannot be read through the port; they were carried as destroyed so version numbers match`);
      bars?.update('secrets', names.length, names.length, 'done');

      // documents: page by page by id; the cursor is checkpointed after each page.
      for (const name of await source.documents.collections()) {
        const state = (cp.collections[name] ??= { copied: 0, done: false });
        if (state.done) continue;
        const src = await source.documents.collection(name);
        const indexes = await src.indexes();
        const dst = await target.documents.collection(name, { indexes });
        const total = await src.count();
        let after = state.after;
        do {
          const page = await src.find({}, { limit: batch, after });
          for (let i = 0; i < page.items.length; i += 25) {
            await Promise.all(page.items.slice(i, i + 25).map((d) => dst.put(d.id, d.data)));
          }
          state.copied += page.items.length;
          copied.documents = (copied.documents ?? 0) + page.items.length;
          after = page.next;
          state.after = after;
          await saveCheckpoint(checkpointPath, cp);
          bars?.update(`docs ${name}`.slice(0, 16), state.copied, total);
        } while (after !== undefined);
        state.done = true;
        await saveCheckpoint(checkpointPath, cp);
      }
      notes.push('documents: versions restart at 1 on the target, and migration versions are not exposed by the port (migrations re-run; they must be safe to)');

      // queues: topic by topic, messages checkpointed per page.
      for (const topic of topics) {
        const total = (await source.queue.stats(topic)).messages;
        const label = `queue ${topic}`.slice(0, 16);
        copied.queue = (copied.queue ?? 0) + (await copyTopic(source.queue, target.queue, topic, cp, () => saveCheckpoint(checkpointPath, cp), batch, (n) => bars?.update(label, n, total)));
        bars?.update(label, 1, 1, 'done');
      }
    }
    bars?.finish();

    // Verification: counts and digests of both sides.
    const rows: VerificationRow[] = [];
    const row = (port: PortName, item: string, s: { count: number; hash: string }, t: { count: number; hash: string }): void => {
      rows.push({ port, item, source: s.count, target: t.count, sourceHash: s.hash, targetHash: t.hash, status: s.count === t.count && s.hash === t.hash ? 'match' : 'MISMATCH' });
    };
    row('config', 'keys', await configRows(source), await configRows(target));
    const key = randomBytes(32);
    const [ss, ts] = [await secretRows(source, key), await secretRows(target, key)];
    row('secrets', `names (${ss.names} / ${ts.names})`, { count: ss.versions, hash: ss.hash }, { count: ts.versions, hash: ts.hash });
    const collections = [...new Set([...(await source.documents.collections()), ...(await target.documents.collections())])].sort();
    for (const name of collections) {
      const [s, t] = [await collectionRows(source, name, batch), await collectionRows(target, name, batch)];
      row('documents', name, s, t);
      row('documents', `${name} indexes`, { count: s.indexes ? s.indexes.split(' ').length : 0, hash: digest([s.indexes]) }, { count: t.indexes ? t.indexes.split(' ').length : 0, hash: digest([t.indexes]) });
    }
    for (const topic of topics) {
      const [s, t] = [await topicRows(source.queue, topic, batch), await topicRows(target.queue, topic, batch)];
      row('queue', `${topic} messages`, s, t);
      for (const [group, sg] of s.groups) row('queue', `${topic}/${group} backlog`, sg, t.groups.get(group) ?? { count: 0, hash: digest([]) });
      row('queue', `${topic} dead letters`, s.dead, t.dead);
    }
    if (topics.length > 0) {
      notes.push(
        'queue: messages after the lowest group ack floor are copied; a group resumes on the target after its ack floor, so messages it acked out of order above the floor are delivered again (at-least-once); delivery counts restart, and sequence numbers are the target\'s',
      );
    }
    notes.push('cache: not copied (cached values are rebuilt by their loaders)');
    const ok = rows.every((r) => r.status !== 'MISMATCH');
    if (ok && !options.verifyOnly) await rm(checkpointPath, { force: true });
    return { ok, copied, verification: rows, notes };
  } finally {
    await Promise.allSettled([source.close(), target.close()]);
  }
}

/** The verification table. */
export function formatVerification(report: MigrationReport, palette: Palette): string {
  const status = (s: VerificationRow['status']): string => (s === 'match' ? palette.green(s) : palette.red(s));
  const table = renderTable(
    ['port', 'item', 'source', 'target', 'source hash', 'target hash', 'status'],
    report.verification.map((r) => [r.port, r.item, String(r.source), String(r.target), r.sourceHash, r.targetHash, status(r.status)]),
    palette,
  );
  return `${table}\n${report.notes.map((n) => `${palette.yellow('note:')} ${n}`).join('\n')}\n`;
}

/** `stowage migrate`. */
export const migrateCommand: Command = {
  path: ['migrate'],
  summary: 'copy config, secrets, documents and queues between profiles, then verify',
  usage: '--from <profile-file> --to <profile-file>',
  args: [0, 0],
  options: {
    from: { type: 'string' },
    to: { type: 'string' },
    checkpoint: { type: 'string' },
    restart: { type: 'boolean' },
    'verify-only': { type: 'boolean' },
    topics: { type: 'string' },
    'batch-size': { type: 'string' },
  },
  description:
    'Copies every config key (except lease-bound ones), every secret version (numbering kept) and every document collection with its indexes. ' +
    'Progress is checkpointed (--checkpoint, default .stowage-migrate-<hash>.json): run the same command again after an interruption to resume. ' +
    'Ends with a verification table (counts and content hashes per port) and exits 1 on any mismatch. ' +
    'Queue topics are copied from the lowest group ack floor on, with dead letters, and every group is positioned on the target after its ack floor (messages acked out of order above it come again: at-least-once); --topics a,b limits the copy to those topics. ' +
    'STOWAGE_*_URL variables are ignored: the profile files decide; credentials (STOWAGE_MASTER_KEY, VAULT_TOKEN, …) still come from the environment.',
  examples: [
    'stowage migrate --from standalone.yaml --to cluster.yaml',
    'stowage migrate --from standalone.yaml --to cluster.yaml --topics jobs --json',
    'stowage migrate --from cluster.yaml --to standalone.yaml --verify-only',
  ],
  async run(ctx: CommandContext) {
    const from = str(ctx.values, 'from');
    const to = str(ctx.values, 'to');
    if (!from || !to) throw new UsageError('migrate needs --from <profile-file> and --to <profile-file>');
    const topics = str(ctx.values, 'topics')?.split(',').map((t) => t.trim()).filter((t) => t !== '');
    const progress = new ProgressBars(process.stderr, process.stderr.isTTY === true && !ctx.json);
    const report = await migrate({
      from,
      to,
      checkpoint: str(ctx.values, 'checkpoint') ?? undefined,
      restart: ctx.values.restart === true,
      verifyOnly: ctx.values['verify-only'] === true,
      topics,
      batchSize: int(ctx.values, 'batch-size', { min: 1 }),
      env: ctx.env,
      cwd: ctx.cwd,
      progress,
    });
    if (ctx.json) ctx.emit(report);
    else {
      ctx.out(`copied: ${Object.entries(report.copied).map(([p, n]) => `${p} ${n}`).join(', ')}\n\n`);
      ctx.out(formatVerification(report, ctx.palette));
      ctx.out(`${report.ok ? ctx.palette.green('verification matches') : ctx.palette.red('verification FAILED')}\n`);
    }
    return report.ok ? 0 : 1;
  },
};

/** Where the default checkpoint of a migration lives (for tests and docs). */
export function defaultCheckpointPath(cwd: string, from: string, to: string): string {
  return join(cwd, `.stowage-migrate-${digest([resolve(cwd, from), resolve(cwd, to)]).slice(0, 8)}.json`);
}
