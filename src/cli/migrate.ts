/**
 * `stowage migrate --from <profile> --to <profile>`: copies config, every secret version and documents with
 * their indexes from one profile to another, resumably, then verifies counts and content hashes per port.
 *
 * What the ports do not let it carry is reported, not worked around:
 * - queue backlogs: the Queue port cannot list topics, read stored messages without joining a group, or set a
 *   group's position on the target; `--topics` compares backlogs so nothing is silently left behind;
 * - soft-deleted secret versions: the port cannot read them; they arrive destroyed, so numbering matches;
 * - document versions restart at 1 and migration versions are not exposed (the port's migrations are
 *   written to be safe to re-run);
 * - the cache: its contents are rebuildable by definition and are not copied.
 *
 * @module
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { JsonValue, PortName } from '../ports/common.js';
import { StowageError } from '../ports/errors.js';
import type { IndexSpec } from '../ports/documents.js';
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
  /** `match`, `MISMATCH`, or `not copied` (queue). */
  readonly status: 'match' | 'MISMATCH' | 'not copied';
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
  /** Topics whose backlogs to compare (the queue port cannot list topics). */
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

async function saveCheckpoint(path: string, cp: Checkpoint): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  await writeFile(tmp, JSON.stringify(cp), { mode: 0o600 });
  await rename(tmp, path);
}

async function loadCheckpoint(path: string, from: string, to: string): Promise<Checkpoint | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  const cp = JSON.parse(text) as Checkpoint;
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

const QUEUE_MISSING =
  'queue backlogs were not copied: the Queue port has no topics() to list topics, no read(topic, fromSeq, limit) to copy stored ' +
  'messages without joining a group (QueueDriver.read exists but is not on the port), and no way to set a group\'s position on the ' +
  'target. Drain every group (stowage queue stats <topic> shows backlog 0) before switching, or extend the port with those three calls.';

/**
 * Copies config, secrets and documents from the `from` profile to the `to` profile and verifies them.
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
  const topics = options.topics ?? [];
  const ports: PortName[] = ['config', 'secrets', 'documents', ...(topics.length > 0 ? (['queue'] as const) : [])];
  const bars = options.progress;
  const notes: string[] = [];
  const copied: Record<string, number> = { config: 0, secrets: 0, documents: 0 };

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
        for (const v of await source.secrets.versions(name)) {
          if (v.version <= have.length) continue;
          const gone = v.deleted || v.destroyed;
          const value = gone ? randomBytes(16) : (await source.secrets.get(name, { version: v.version })).value;
          try {
            await target.secrets.put(name, value, { ifVersion: v.version - 1 });
          } catch (err) {
            if (StowageError.is(err, 'CONFLICT')) {
              throw new StowageError('CONFLICT', `secret "${name}" on the target already has versions that do not line up with the source's version ${v.version}; destroy it on the target first`, { cause: err });
            }
            throw err;
          }
          if (gone) {
            if (v.deleted && !v.destroyed) unreadable++;
            if (target.secrets.capabilities.has('destroy')) await target.secrets.destroy(name, { versions: [v.version] });
            else await target.secrets.delete(name, { versions: [v.version] });
          }
          copied.secrets = (copied.secrets ?? 0) + 1;
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
    let leftBehind = false;
    for (const topic of topics) {
      const [s, t] = [await source.queue.stats(topic), await target.queue.stats(topic)];
      for (const g of s.groups) {
        const tg = t.groups.find((x) => x.group === g.group);
        leftBehind ||= g.backlog + g.pending > 0;
        rows.push({ port: 'queue', item: `${topic}/${g.group} backlog`, source: g.backlog + g.pending, target: (tg?.backlog ?? 0) + (tg?.pending ?? 0), sourceHash: '-', targetHash: '-', status: 'not copied' });
      }
    }
    if (topics.length > 0 || !options.verifyOnly) notes.push(QUEUE_MISSING);
    notes.push('cache: not copied (cached values are rebuilt by their loaders)');
    const ok = rows.every((r) => r.status !== 'MISMATCH') && !leftBehind;
    if (ok && !options.verifyOnly) await rm(checkpointPath, { force: true });
    return { ok, copied, verification: rows, notes };
  } finally {
    await Promise.allSettled([source.close(), target.close()]);
  }
}

/** The verification table. */
export function formatVerification(report: MigrationReport, palette: Palette): string {
  const status = (s: VerificationRow['status']): string => (s === 'match' ? palette.green(s) : s === 'MISMATCH' ? palette.red(s) : palette.yellow(s));
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
  summary: 'copy config, secrets and documents between profiles, then verify',
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
    'Queue backlogs cannot be copied through the Queue port (see the note it prints); --topics compares them so nothing is left behind unnoticed. ' +
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
