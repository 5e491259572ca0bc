/**
 * A crash in the middle of writing the last record: the segment ends inside it. For every byte offset at
 * which the last record can be cut, recovery keeps exactly the earlier records and new appends continue.
 */
import { cp, mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiskQueueDriver } from '../../src/adapters/disk-queue/index.js';
import { recordOffsets, segmentFile, writeLog } from './disk-queue-files.js';

const PAYLOADS = ['first', 'second', 'third', 'fourth', 'the last record, which the crash cuts short'];
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'stowage-disk-queue-torn-'));
  await writeLog(join(work, 'original'), PAYLOADS);
});

afterAll(() => rm(work, { recursive: true, force: true }));

describe('disk queue recovery from a torn tail', () => {
  it('keeps exactly the earlier records and appends after them, for a cut at every byte of the last record', async () => {
    const { offsets, size } = await recordOffsets(segmentFile(join(work, 'original')));
    const lastStart = offsets[PAYLOADS.length - 1] as number;
    expect(offsets.length).toBe(PAYLOADS.length);
    const signal = AbortSignal.timeout(60_000);
    const started = Date.now();
    let recovered = 0;
    for (let cut = lastStart; cut < size; cut++) {
      const dir = join(work, `cut-${cut}`);
      await cp(join(work, 'original'), dir, { recursive: true });
      await truncate(segmentFile(dir), cut);
      const driver = await DiskQueueDriver.open(dir);
      try {
        const kept = await driver.read('t', 1, 100, signal);
        expect(kept.map((m) => Buffer.from(m.payload).toString()), `cut at ${cut}`).toEqual(PAYLOADS.slice(0, -1));
        expect(kept.map((m) => m.headers.n)).toEqual(['0', '1', '2', '3']);
        // The cut record's id was never acknowledged, so it is not a duplicate.
        const again = await driver.publish('t', Buffer.from('after recovery'), {}, `id-${PAYLOADS.length - 1}`, signal);
        expect(again).toEqual({ seq: PAYLOADS.length, duplicate: false });
        const all = await driver.read('t', 1, 100, signal);
        expect(all.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
        expect(Buffer.from((all[4] as { payload: Uint8Array }).payload).toString()).toBe('after recovery');
      } finally {
        await driver.close();
      }
      // Reopening after the append sees the same five records.
      const reopened = await DiskQueueDriver.open(dir);
      try {
        expect((await reopened.read('t', 1, 100, signal)).length).toBe(5);
      } finally {
        await reopened.close();
      }
      await rm(dir, { recursive: true, force: true });
      recovered++;
    }
    // One line to compare runs by.
    console.log(`disk queue torn tail: ${size - lastStart} cuts, ${recovered} recovered with exactly the ${PAYLOADS.length - 1} earlier records; ${Date.now() - started} ms`);
  }, 60_000);
});
