/**
 * One bit flipped in an earlier record (bit rot, a bad sector): opening or reading the log reports
 * CORRUPTED naming the segment file and the record's byte offset, never a silently shorter log.
 */
import { cp, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiskQueueDriver } from '../../src/adapters/disk-queue/index.js';
import { StowageError } from '../../src/ports/errors.js';
import { recordOffsets, segmentFile, writeLog } from './disk-queue-files.js';

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'stowage-disk-queue-flip-'));
});

afterAll(() => rm(work, { recursive: true, force: true }));

async function flipBit(file: string, byte: number, bit: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, byte);
    b[0] = (b[0] as number) ^ (1 << bit);
    await fh.write(b, 0, 1, byte);
  } finally {
    await fh.close();
  }
}

async function corruptedError(fn: () => Promise<unknown>): Promise<StowageError> {
  try {
    await fn();
  } catch (err) {
    if (StowageError.is(err, 'CORRUPTED')) return err;
    throw err;
  }
  throw new Error('expected CORRUPTED, but the call succeeded');
}

describe('disk queue with a flipped bit', () => {
  it('reports CORRUPTED at the damaged record when a topic whose recent segment is damaged is opened', async () => {
    const dir = join(work, 'recent-sealed');
    await writeLog(dir, Array.from({ length: 80 }, (_, i) => `message ${i} `.padEnd(100, '.')), { segmentBytes: 4096 });
    const { offsets } = await recordOffsets(segmentFile(dir));
    await flipBit(segmentFile(dir), (offsets[7] as number) + 12, 0);
    const driver = await DiskQueueDriver.open(dir);
    try {
      const err = await corruptedError(() => driver.stats('t', AbortSignal.timeout(30_000)));
      expect(err.details).toEqual({ file: segmentFile(dir), offset: offsets[7] });
    } finally {
      await driver.close();
    }
  });

  it('reports CORRUPTED at the damaged record of the active segment when the topic is opened, for a flip in every byte', async () => {
    const original = join(work, 'active');
    await writeLog(original, ['one', 'two: the record that gets damaged', 'three', 'four', 'five']);
    const { offsets } = await recordOffsets(segmentFile(original));
    const [start, end] = [offsets[1] as number, offsets[2] as number];
    const signal = AbortSignal.timeout(60_000);
    const started = Date.now();
    let reported = 0;
    for (let byte = start; byte < end; byte++) {
      const dir = join(work, `active-${byte}`);
      await cp(original, dir, { recursive: true });
      await flipBit(segmentFile(dir), byte, byte % 8);
      const driver = await DiskQueueDriver.open(dir);
      try {
        const err = await corruptedError(() => driver.read('t', 1, 100, signal));
        expect(err.details, `flip in byte ${byte}`).toEqual({ file: segmentFile(dir), offset: start });
        expect(err.message).toContain(segmentFile(dir));
        expect(err.message).toContain(`byte offset ${start}`);
        // Publishing is refused too: the log is not silently cut and appended to.
        await corruptedError(() => driver.publish('t', Buffer.from('x'), {}, undefined, signal));
      } finally {
        await driver.close();
      }
      await rm(dir, { recursive: true, force: true });
      reported++;
    }
    // One line to compare runs by.
    console.log(`disk queue bit flips: ${end - start} flips, ${reported} reported CORRUPTED at the damaged record; ${Date.now() - started} ms`);
  }, 60_000);

  it('reports CORRUPTED at the damaged record of a sealed segment when it is read', async () => {
    // Opening scans only the segments inside the dedupe window; with a 1 ms window the damaged one is
    // first read, and reported, by the read.
    const dir = join(work, 'sealed');
    const payloads = Array.from({ length: 80 }, (_, i) => `message ${i} `.padEnd(100, '.'));
    await writeLog(dir, payloads, { segmentBytes: 4096 });
    const { offsets } = await recordOffsets(segmentFile(dir));
    const victim = offsets[5] as number;
    await flipBit(segmentFile(dir), victim + 40, 3);
    const signal = AbortSignal.timeout(30_000);
    const driver = await DiskQueueDriver.open(dir, { dedupeWindowMs: 1 });
    try {
      // The newest records, in the active segment, are still readable.
      const stats = await driver.stats('t', signal);
      expect(stats.lastSeq).toBe(80);
      expect((await driver.read('t', 80, 1, signal)).map((m) => m.seq)).toEqual([80]);
      const err = await corruptedError(() => driver.read('t', 1, 100, signal));
      expect(err.details).toEqual({ file: segmentFile(dir), offset: victim });
    } finally {
      await driver.close();
    }
  });
});
