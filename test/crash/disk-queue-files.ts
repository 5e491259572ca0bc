/**
 * Helpers of the disk-queue file-damage tests: build a small log, and find where its records start.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DiskQueueDriver, type DiskQueueOptions } from '../../src/adapters/disk-queue/index.js';

/** The segment file holding seq `base` of topic `t`. */
export function segmentFile(dir: string, base = 1): string {
  return join(dir, 'topics', 't', `${String(base).padStart(20, '0')}.log`);
}

/** Publishes `payloads` to topic `t` in a new folder, with an id and a header on each, and closes it. */
export async function writeLog(dir: string, payloads: string[], options: DiskQueueOptions = {}): Promise<void> {
  const driver = await DiskQueueDriver.open(dir, options);
  const signal = AbortSignal.timeout(30_000);
  for (const [i, p] of payloads.entries()) await driver.publish('t', Buffer.from(p), { n: String(i) }, `id-${i}`, signal);
  await driver.close();
}

/** The byte offset where each record of a segment starts, and the file size. */
export async function recordOffsets(file: string): Promise<{ offsets: number[]; size: number }> {
  const buf = await readFile(file);
  const offsets: number[] = [];
  for (let off = 0; off < buf.length; off += 12 + buf.readUInt32LE(off)) offsets.push(off);
  return { offsets, size: buf.length };
}
