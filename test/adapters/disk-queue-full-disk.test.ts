/**
 * The disk queue on a disk that fills up (a small tmpfs): nothing is acknowledged that is not whole on disk,
 * a refused write is RESOURCE_EXHAUSTED naming the file and leaves the files as they were, and once space is
 * back the same open queue works again — publishes, acks, cursor moves and dead letters alike.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { DiskQueueDriver, type DiskQueueOptions } from '../../src/adapters/disk-queue/index.js';
import { parseDurability } from '../../src/adapters/disk-queue/durability.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { StowageError } from '../../src/ports/errors.js';
import type { Delivery, Queue } from '../../src/ports/queue.js';
import { fullDiskSuite } from '../support/tmpfs.js';

/** Every call's deadline: none may take longer, full disk or not. */
const DEADLINE_MS = 5_000;
const PAYLOAD_BYTES = 3_000;

interface Opened {
  readonly queue: Queue;
  readonly driver: DiskQueueDriver;
}

async function openQueue(dir: string, options: DiskQueueOptions = {}): Promise<Opened> {
  const driver = await DiskQueueDriver.open(dir, options);
  return { driver, queue: createQueue(driver, { defaultTimeoutMs: DEADLINE_MS }) };
}

/** Runs `fn`, failing the test if it took longer than the deadline; returns what it resolved or threw. */
async function timed<T>(what: string, fn: () => Promise<T>): Promise<{ value?: T; error?: unknown }> {
  const started = performance.now();
  let out: { value?: T; error?: unknown };
  try {
    out = { value: await fn() };
  } catch (error) {
    out = { error };
  }
  const ms = performance.now() - started;
  expect(ms, `${what} took ${Math.round(ms)} ms`).toBeLessThan(DEADLINE_MS);
  return out;
}

/** Asserts `error` is a full disk reported against a file whose path contains `file`. */
function expectDiskFull(error: unknown, file: string): void {
  expect(StowageError.is(error), `expected a StowageError, got ${String(error)}`).toBe(true);
  const e = error as StowageError;
  expect({ code: e.code, retryable: e.retryable }, e.message).toEqual({ code: 'RESOURCE_EXHAUSTED', retryable: true });
  expect(e.message).toContain(file);
  expect(e.message).toContain('ENOSPC');
}

function payload(n: number): string {
  return `p${n}:`.padEnd(PAYLOAD_BYTES, String.fromCharCode(97 + (n % 26)));
}

/**
 * Publishes 3,000-byte messages from `lanes` publishers until the disk refuses one; returns the seq of every
 * acknowledged publish by payload number, and the first refusal.
 */
async function publishUntilRefused(queue: Queue, lanes: number, first = 0): Promise<{ acked: Map<number, number>; refusal: unknown }> {
  const acked = new Map<number, number>();
  let refusal: unknown;
  let next = first;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (refusal === undefined && next < first + 10_000) {
        const n = next++;
        const r = await timed(`publish ${n}`, () => queue.publish('t', payload(n)));
        if (r.error !== undefined) refusal ??= r.error;
        else acked.set(n, (r.value as { seq: number }).seq);
      }
    }),
  );
  return { acked, refusal };
}

/** Reads the whole topic through a fresh driver: payload number → seq, in stored order. */
async function storedOn(driver: DiskQueueDriver): Promise<Array<[number, number]>> {
  const stored = await driver.read('t', 1, Number.MAX_SAFE_INTEGER, AbortSignal.timeout(DEADLINE_MS));
  return stored.map((m) => {
    const text = Buffer.from(m.payload).toString();
    expect(text, `seq ${m.seq} is whole`).toBe(payload(Number(text.slice(1, text.indexOf(':')))));
    return [Number(text.slice(1, text.indexOf(':'))), m.seq];
  });
}

/** Every acknowledged publish is stored at its seq, seqs run 1, 2, 3 … without a gap, and nothing else is there. */
function expectExactly(stored: Array<[number, number]>, acked: Map<number, number>): void {
  expect(stored.map(([, seq]) => seq)).toEqual(stored.map((_, i) => i + 1));
  expect(new Map(stored)).toEqual(acked);
}

const variants: Array<{ name: string; options: DiskQueueOptions }> = [
  { name: 'fsync=batch', options: {} },
  { name: 'fsync=always', options: { durability: parseDurability('always') } },
  { name: 'fsync=interval:50', options: { durability: parseDurability('interval:50') } },
  { name: 'fsync=batch, 16 KiB segments (rolls on a full disk)', options: { segmentBytes: 16 * 1024 } },
];

fullDiskSuite('disk queue on a full disk', 1024 * 1024, (fs) => {
  it.each(variants)(
    '$name: publishing 3,000-byte messages until one is refused loses no acknowledged one, and the topic reopens clean',
    async ({ options }) => {
      const dir = join(fs().dir, 'queue');
      const { queue, driver } = await openQueue(dir, options);
      const { acked, refusal } = await publishUntilRefused(queue, 8);
      expectDiskFull(refusal, join(dir, 'topics', 't'));
      // The open queue still reads back exactly what it acknowledged.
      expectExactly(await storedOn(driver), acked);
      await queue.close();

      const reopened = await openQueue(dir, options);
      try {
        expectExactly(await storedOn(reopened.driver), acked);
      } finally {
        await reopened.queue.close();
      }
    },
  );

  it.each(variants)(
    '$name: when space comes back between two writes, the same open topic keeps working and reopens clean',
    async ({ options }) => {
      const dir = join(fs().dir, 'queue');
      const { queue, driver } = await openQueue(dir, options);
      const acked = new Map<number, number>();
      for (let n = 0; n < 5; n++) acked.set(n, (await queue.publish('t', payload(n))).seq);
      await fs().fill();
      // A write now fails part way (the segment's last page takes some of it) or at once.
      const full = await publishUntilRefused(queue, 4, 100);
      expectDiskFull(full.refusal, join(dir, 'topics', 't'));
      for (const [n, seq] of full.acked) acked.set(n, seq);
      await fs().free();
      // No reopen: the next publishes land right after the last acknowledged record.
      for (let n = 200; n < 210; n++) {
        const r = await timed(`publish ${n} after space came back`, () => queue.publish('t', payload(n)));
        expect(r.error).toBeUndefined();
        acked.set(n, (r.value as { seq: number }).seq);
      }
      expectExactly(await storedOn(driver), acked);
      await queue.close();

      const reopened = await openQueue(dir, options);
      try {
        expectExactly(await storedOn(reopened.driver), acked);
        expect((await reopened.queue.publish('t', payload(300))).seq).toBe(acked.size + 1);
      } finally {
        await reopened.queue.close();
      }
    },
  );

  it('refuses an ack the journal cannot hold, and takes it back: acked again or redelivered once space is back', async () => {
    const dir = join(fs().dir, 'queue');
    const { queue } = await openQueue(dir);
    const count = 300;
    for (let n = 1; n <= count; n++) await queue.publish('t', `m${n}`);
    const consumer = queue.consume('t', 'g', { prefetch: count, ackWaitMs: 1_500 });
    const it = consumer[Symbol.asyncIterator]();
    const held: Delivery[] = [];
    for (let i = 0; i < count; i++) held.push((await it.next()).value as Delivery);
    await held[0]?.ack();

    await fs().fill();
    // Acks fill what is left of the journal's last page; then one is refused, and the next one too.
    const journal = join(dir, 'topics', 't', 'groups', 'g.0.journal');
    let refused = 0;
    for (; refused < count; refused++) {
      const r = await timed(`ack ${refused + 1}`, () => (held[refused] as Delivery).ack());
      if (r.error !== undefined) {
        expectDiskFull(r.error, journal);
        break;
      }
    }
    expect(refused, 'every ack was taken on a full disk').toBeLessThan(count - 1);
    const [retried, forgotten] = [held[refused] as Delivery, held[refused + 1] as Delivery];
    expectDiskFull((await timed(`ack ${forgotten.seq}`, () => forgotten.ack())).error, journal);

    await fs().free();
    // The same delivery is acked again; every later one too but `forgotten`, whose ackWait brings it back.
    for (const d of [retried, ...held.slice(refused + 2)]) expect((await timed(`ack ${d.seq} again`, () => d.ack())).error).toBeUndefined();
    for (;;) {
      const r = await timed('a redelivery', () => it.next());
      const d = (r.value as IteratorResult<Delivery>).value as Delivery;
      expect((await timed(`ack of redelivered ${d.seq}`, () => d.ack())).error).toBeUndefined();
      if (d.seq === forgotten.seq) break;
    }
    await consumer.close();
    await queue.close();

    const reopened = await openQueue(dir);
    try {
      const stats = await reopened.queue.stats('t');
      expect(stats.groups.map((g) => ({ group: g.group, ackFloor: g.ackFloor, backlog: g.backlog }))).toEqual([{ group: 'g', ackFloor: count, backlog: 0 }]);
    } finally {
      await reopened.queue.close();
    }
  });

  it('loses no ack when the journal compacts on a full disk', async () => {
    const dir = join(fs().dir, 'queue');
    const options = { cursorCompactBytes: 1024 };
    const { queue } = await openQueue(dir, options);
    const count = 200;
    for (let n = 1; n <= count; n++) await queue.publish('t', `m${n}`);
    const consumer = queue.consume('t', 'g', { prefetch: count, ackWaitMs: 60_000 });
    const it = consumer[Symbol.asyncIterator]();
    const held: Delivery[] = [];
    for (let i = 0; i < count; i++) held.push((await it.next()).value as Delivery);
    for (const d of held.slice(0, count / 2)) await d.ack();

    await fs().fill();
    const refused: Delivery[] = [];
    for (const d of held.slice(count / 2)) {
      const r = await timed(`ack ${d.seq}`, () => d.ack());
      if (r.error !== undefined) refused.push(d);
    }
    expect(refused.length, 'acks refused on a full disk').toBeGreaterThan(0);
    await fs().free();
    for (const d of refused) expect((await timed(`ack ${d.seq} again`, () => d.ack())).error).toBeUndefined();
    await consumer.close();
    await queue.close();
    expect((await readdir(join(dir, 'topics', 't', 'groups'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const reopened = await openQueue(dir, options);
    try {
      const stats = await reopened.queue.stats('t');
      expect(stats.groups.map((g) => ({ ackFloor: g.ackFloor, backlog: g.backlog }))).toEqual([{ ackFloor: count, backlog: 0 }]);
    } finally {
      await reopened.queue.close();
    }
  });

  it('refuses a removal whose tombstone the disk cannot hold, and keeps the message until space is back', async () => {
    const dir = join(fs().dir, 'queue');
    const { driver } = await openQueue(dir);
    const signal = (): AbortSignal => AbortSignal.timeout(DEADLINE_MS);
    for (let n = 1; n <= 3; n++) await driver.publish('t', Buffer.from(payload(n)), {}, undefined, signal());
    const seqs = async (d: DiskQueueDriver): Promise<number[]> => (await d.read('t', 1, 10, signal())).map((m) => m.seq);
    await fs().fill();
    expectDiskFull((await timed('remove on a full disk', () => driver.remove('t', 2, signal()))).error, join(dir, 'topics', 't', 'removed.journal'));
    expect(await seqs(driver)).toEqual([1, 2, 3]);
    await fs().free();
    expect((await timed('remove after space came back', () => driver.remove('t', 2, signal()))).error).toBeUndefined();
    expect(await seqs(driver)).toEqual([1, 3]);
    await driver.close();

    const reopened = await DiskQueueDriver.open(dir);
    try {
      expect(await seqs(reopened)).toEqual([1, 3]);
    } finally {
      await reopened.close();
    }
  });

  it('refuses a group move whose cursor snapshot cannot be written, leaving the group where it was until space is back', async () => {
    const dir = join(fs().dir, 'queue');
    const { queue } = await openQueue(dir);
    for (let n = 0; n < 4; n++) await queue.publish('t', payload(n));
    await queue.seekGroup('t', 'g', 2);
    await fs().fill();
    const refused = await timed('seekGroup on a full disk', () => queue.seekGroup('t', 'g', 4));
    expectDiskFull(refused.error, join(dir, 'topics', 't', 'groups', 'g.cursor'));
    const groups = join(dir, 'topics', 't', 'groups');
    expect((await readdir(groups)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect((await queue.stats('t')).groups[0]?.ackFloor).toBe(1);
    await fs().free();
    expect((await timed('seekGroup after space came back', () => queue.seekGroup('t', 'g', 4))).error).toBeUndefined();
    await queue.close();

    const reopened = await openQueue(dir);
    try {
      expect((await reopened.queue.stats('t')).groups[0]?.ackFloor).toBe(3);
    } finally {
      await reopened.queue.close();
    }
  });

  it('refuses a dead letter the disk cannot hold, keeps the message, and dead-letters it once space is back', async () => {
    const dir = join(fs().dir, 'queue');
    const { queue } = await openQueue(dir);
    await queue.publish('t', payload(1));
    const consumer = queue.consume('t', 'g', { prefetch: 1, ackWaitMs: 60_000 });
    const it = consumer[Symbol.asyncIterator]();
    const d = (await it.next()).value as Delivery;
    await fs().fill();
    expectDiskFull((await timed('term on a full disk', () => d.term('poison'))).error, join(dir, 'topics', 't.dlq'));
    await fs().free();
    expect((await timed('term after space came back', () => d.term('poison'))).error).toBeUndefined();
    await consumer.close();
    await queue.close();

    const reopened = await openQueue(dir);
    try {
      const letters = await reopened.queue.deadLetters('t');
      expect(letters.map((l) => ({ seq: l.seq, originalSeq: l.originalSeq, reason: l.reason }))).toEqual([{ seq: 1, originalSeq: 1, reason: 'poison' }]);
      expect(Buffer.from(letters[0]?.payload ?? []).toString()).toBe(payload(1));
      expect((await reopened.queue.stats('t')).groups[0]?.ackFloor).toBe(1);
    } finally {
      await reopened.queue.close();
    }
  });
});
