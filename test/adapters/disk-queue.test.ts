/**
 * What the disk queue keeps across a restart (reopening its folder), and its files, URL and retention —
 * things the queue contract cannot see.
 */
import { mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiskQueueDriver, diskQueueScheme, type DiskQueueOptions } from '../../src/adapters/disk-queue/index.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { defaultLogger, type OpenContext } from '../../src/core/registry.js';
import { parseUrl } from '../../src/driver/url.js';
import type { Delivery, Queue } from '../../src/ports/queue.js';
import { StowageError } from '../../src/ports/errors.js';
import { eventually } from '../../src/testing/harness.js';

let work: string;
let n = 0;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'stowage-disk-queue-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

const signal = (): AbortSignal => AbortSignal.timeout(20_000);

async function open(dir: string, options: DiskQueueOptions = {}): Promise<Queue> {
  return createQueue(await DiskQueueDriver.open(dir, options));
}

async function take(q: Queue, count: number, group = 'g', prefetch = 16): Promise<Delivery[]> {
  const out: Delivery[] = [];
  const consumer = q.consume('t', group, { prefetch, ackWaitMs: 60_000 });
  for await (const d of consumer) {
    out.push(d);
    if (out.length === count) break;
  }
  return out;
}

/**
 * Seqs a group gets (acking each): stops 200 ms after `expected` have come (so extras would show), or
 * after 10 s.
 */
async function drainSeqs(q: Queue, expected: number, group = 'g'): Promise<number[]> {
  const seqs: number[] = [];
  const stop = new AbortController();
  const limit = setTimeout(() => stop.abort(), 10_000);
  for await (const d of q.consume('t', group, { prefetch: 64, ackWaitMs: 60_000, signal: stop.signal })) {
    seqs.push(d.seq);
    await d.ack();
    if (seqs.length === expected) setTimeout(() => stop.abort(), 200);
  }
  clearTimeout(limit);
  return seqs;
}

describe('disk queue across restarts', () => {
  it('remembers out-of-order acks: only the unacked messages come back', async () => {
    const dir = join(work, `q${++n}`);
    let q = await open(dir);
    for (let i = 1; i <= 6; i++) await q.publish('t', `m${i}`);
    const ds = await take(q, 6);
    await ds[1]?.ack();
    await ds[3]?.ack();
    await ds[4]?.ack();
    await q.close();
    q = await open(dir);
    expect(await drainSeqs(q, 3)).toEqual([1, 3, 6]);
    await q.close();
  });

  it('keeps delivery counts, so a message delivered before a restart comes back with a higher count', async () => {
    const dir = join(work, `q${++n}`);
    let q = await open(dir);
    await q.publish('t', 'poison');
    expect((await take(q, 1))[0]?.deliveryCount).toBe(1);
    await q.close();
    q = await open(dir);
    expect((await take(q, 1))[0]?.deliveryCount).toBe(2);
    await q.close();
  });

  it('dedupes a message id published before the restart', async () => {
    const dir = join(work, `q${++n}`);
    let q = await open(dir);
    const first = await q.publish('t', 'once', { id: 'order-17' });
    await q.close();
    q = await open(dir);
    expect(await q.publish('t', 'twice', { id: 'order-17' })).toEqual({ seq: first.seq, duplicate: true });
    expect((await q.stats('t')).messages).toBe(1);
    await q.close();
  });

  it('keeps removed messages removed', async () => {
    const dir = join(work, `q${++n}`);
    let driver = await DiskQueueDriver.open(dir);
    for (const p of ['a', 'b', 'c']) await driver.publish('t', Buffer.from(p), {}, undefined, signal());
    await driver.remove('t', 2, signal());
    await driver.close();
    driver = await DiskQueueDriver.open(dir);
    expect((await driver.read('t', 1, 10, signal())).map((m) => m.seq)).toEqual([1, 3]);
    await driver.close();
  });

  it('continues seqs after a purge and a restart', async () => {
    const dir = join(work, `q${++n}`);
    let q = await open(dir);
    for (let i = 0; i < 3; i++) await q.publish('t', `m${i}`);
    await q.purge('t');
    await q.close();
    q = await open(dir);
    expect((await q.publish('t', 'after')).seq).toBe(4);
    expect(await drainSeqs(q, 1)).toEqual([4]);
    await q.close();
  });

  it('compacts a long ack journal into a snapshot and loses no ack', async () => {
    const dir = join(work, `q${++n}`);
    let q = await open(dir, { cursorCompactBytes: 1024 });
    for (let i = 0; i < 300; i++) await q.publish('t', `m${i}`);
    const ds = await take(q, 300, 'g', 300);
    // Every third message stays unacked; the rest are acked in reverse order.
    for (const d of ds.reverse()) if (d.seq % 3 !== 0) await d.ack();
    await q.close();
    const files = await readdir(join(dir, 'topics', 't', 'groups'));
    expect(files).toContain('g.cursor');
    expect(files.filter((f) => f.endsWith('.journal')).length).toBe(1);
    q = await open(dir, { cursorCompactBytes: 1024 });
    expect(await drainSeqs(q, 100)).toEqual(Array.from({ length: 100 }, (_, i) => (i + 1) * 3));
    await q.close();
  });

  it('deletes a cursor snapshot temporary file a crash left behind, and keeps the snapshot', async () => {
    const dir = join(work, `q${++n}`);
    let q = await open(dir);
    for (let i = 0; i < 3; i++) await q.publish('t', `m${i}`);
    await q.seekGroup('t', 'g', 3);
    await q.close();
    const groups = join(dir, 'topics', 't', 'groups');
    await writeFile(join(groups, `.g.cursor.${process.pid}.0123456789ab.tmp`), '{"v":1,');
    q = await open(dir);
    expect((await q.stats('t')).groups.map((g) => g.ackFloor)).toEqual([2]);
    expect((await readdir(groups)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    await q.close();
  });

  it('refuses to open a folder another live process holds', async () => {
    const dir = join(work, `q${++n}`);
    const q = await open(dir);
    // A lock naming a live process other than this one (the parent of this test process).
    await q.close();
    await writeFile(join(dir, 'stowage.lock'), `${process.ppid}\n`);
    await expect(DiskQueueDriver.open(dir)).rejects.toSatisfy((err: unknown) => StowageError.is(err, 'UNAVAILABLE'));
  });
});

describe('disk queue segments and retention', () => {
  it('deletes sealed segments once every group has acked past them', async () => {
    const dir = join(work, `q${++n}`);
    const q = await open(dir, { segmentBytes: 4096 });
    for (let i = 0; i < 200; i++) await q.publish('t', `message ${i}`.padEnd(100, '.'));
    const segments = async (): Promise<number> => (await readdir(join(dir, 'topics', 't'))).filter((f) => f.endsWith('.log')).length;
    expect(await segments()).toBeGreaterThan(3);
    expect((await drainSeqs(q, 200)).length).toBe(200);
    await eventually(async () => (await segments()) === 1, 'only the active segment is left', 5000, 100);
    await q.close();
  });

  it('keeps only the newest retentionMessages messages', async () => {
    const dir = join(work, `q${++n}`);
    const driver = await DiskQueueDriver.open(dir, { retentionMessages: 10, segmentBytes: 4096 });
    for (let i = 1; i <= 30; i++) await driver.publish('t', Buffer.from(`m${i}`), {}, undefined, signal());
    expect((await driver.read('t', 1, 100, signal())).map((m) => m.seq)).toEqual(Array.from({ length: 10 }, (_, i) => 21 + i));
    expect((await driver.stats('t', signal())).messages).toBe(10);
    await driver.close();
  });

  it('drops messages older than retentionMs', async () => {
    const dir = join(work, `q${++n}`);
    // Retention runs every second: 'new' is at most about a second old when it runs, well inside 2 s.
    const driver = await DiskQueueDriver.open(dir, { retentionMs: 2000 });
    await driver.publish('t', Buffer.from('old'), {}, undefined, signal());
    await new Promise((resolve) => setTimeout(resolve, 2100));
    await driver.publish('t', Buffer.from('new'), {}, undefined, signal());
    await eventually(async () => (await driver.read('t', 1, 10, signal())).length === 1, 'the old message expired', 5000, 100);
    expect((await driver.read('t', 1, 10, signal())).map((m) => Buffer.from(m.payload).toString())).toEqual(['new']);
    await driver.close();
  });
});

describe('disk:// URL', () => {
  const context: OpenContext = { dataDir: '', env: {}, logger: defaultLogger, openDriver: () => Promise.reject(new Error('unused')) };

  it('puts an empty path under the data folder as queue/', async () => {
    const dataDir = join(work, `data${++n}`);
    const driver = await diskQueueScheme.open(parseUrl('disk://'), { ...context, dataDir });
    expect((driver as DiskQueueDriver).root).toBe(join(dataDir, 'queue'));
    await driver.close();
  });

  it('uses an absolute path as given and reads every parameter', async () => {
    const dir = join(work, `q${++n}`);
    const driver = await diskQueueScheme.open(
      parseUrl(`disk://${dir}?fsync=interval:50&segmentBytes=65536&retentionMs=0&retentionBytes=0&retentionMessages=0&dedupeWindowMs=1000`),
      context,
    );
    expect((driver as DiskQueueDriver).root).toBe(dir);
    await driver.close();
  });

  it('refuses a bad fsync policy', async () => {
    await expect(diskQueueScheme.open(parseUrl(`disk://${join(work, 'x')}?fsync=sometimes`), context)).rejects.toSatisfy(
      (err: unknown) => StowageError.is(err, 'INVALID_ARGUMENT'),
    );
  });

  it.runIf(process.platform === 'linux')('writes the active segment through O_DSYNC under fsync=always only, also after a roll', async () => {
    // Under fsync=always each record's write is its sync: the active segment must be opened O_DSYNC.
    const O_DSYNC = 0o10000;
    const segmentFlags = async (dir: string): Promise<number[]> => {
      const out: number[] = [];
      for (const fd of await readdir('/proc/self/fd')) {
        const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
        if (!target.startsWith(join(dir, 'topics', 't')) || !target.endsWith('.log')) continue;
        const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8').catch(() => '');
        const flags = /flags:\s*([0-7]+)/.exec(info)?.[1];
        if (flags !== undefined) out.push(parseInt(flags, 8));
      }
      return out;
    };
    for (const [fsync, dsync] of [['always', true], ['batch', false]] as const) {
      const dir = join(work, `q${++n}`);
      const q = createQueue(await diskQueueScheme.open(parseUrl(`disk://${dir}?fsync=${fsync}&segmentBytes=4096`), context));
      await q.publish('t', 'first');
      const writable = (await segmentFlags(dir)).filter((f) => (f & 3) === 2);
      expect(writable.length).toBe(1);
      expect(writable.every((f) => (f & O_DSYNC) !== 0)).toBe(dsync);
      // Enough to roll to new segments: the new active segment is opened the same way.
      for (let i = 0; i < 40; i++) await q.publish('t', 'x'.repeat(200));
      const rolled = (await segmentFlags(dir)).filter((f) => (f & 3) === 2 && (f & O_DSYNC) !== 0);
      expect(rolled.length > 0).toBe(dsync);
      await q.close();
      const reopened = await open(dir);
      expect(await drainSeqs(reopened, 41)).toHaveLength(41);
      await reopened.close();
    }
  });

  it('acknowledges publishes under fsync=always and fsync=interval', async () => {
    for (const fsync of ['always', 'interval:20']) {
      const dir = join(work, `q${++n}`);
      const q = createQueue(await diskQueueScheme.open(parseUrl(`disk://${dir}?fsync=${fsync}`), context));
      await Promise.all([q.publish('t', 'a'), q.publish('t', 'b'), q.publish('t', 'c')]);
      await q.close();
      const reopened = await open(dir);
      expect(await drainSeqs(reopened, 3)).toEqual([1, 2, 3]);
      await reopened.close();
    }
  });
});
