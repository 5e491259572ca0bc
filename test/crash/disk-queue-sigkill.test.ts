/**
 * SIGKILL crash test of the disk queue: a child publishes (fsync=batch) and consumes with acks, and is killed
 * at random moments (during recovery, mid-publish, mid-ack). After every kill, every publish the child saw
 * acknowledged is in the log exactly once and in order; no message whose ack the child saw resolve is ever
 * delivered to the group again.
 *
 * The child is bundled once ({@link bundleChild}): `node --import tsx` is too slow to start for 200 restarts
 * within the time bound.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiskQueueDriver } from '../../src/adapters/disk-queue/index.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { bundleChild, startChild, type Child } from '../support/child-process.js';

const KILLS = 200;
const LANES = 4;

let work: string;
let childScript: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'stowage-disk-queue-crash-'));
  childScript = await bundleChild(new URL('./disk-queue-child.ts', import.meta.url), work);
});

afterAll(() => rm(work, { recursive: true, force: true }));

/** What one folder's children have reported so far. */
interface Lane {
  dir: string;
  /** n → seq of every acknowledged publish. */
  published: Map<number, number>;
  /** Seqs whose ack resolved in a child. */
  acked: Set<number>;
  /** Seqs delivered at least once. */
  delivered: Set<number>;
  /** Acknowledged publishes found missing or misplaced, by any check. */
  lost: Set<number>;
  /** Payloads found stored more than once. */
  duplicated: Set<string>;
  /** Deliveries of a seq whose ack had resolved. */
  redeliveredAfterAck: number;
  violations: string[];
}

/** A child that loads and then waits for its folder on stdin; its reports go to whichever lane it is given. */
interface Spare {
  readonly child: Child;
  /** Where its reports go, once {@link life} gives it a lane. */
  report?: (line: string) => void;
}

function spawnChild(): Spare {
  const spare: Spare = { child: startChild(childScript, { onLine: (line) => spare.report?.(line) }) };
  return spare;
}

/** Runs one child life: lets it go, kills it with SIGKILL at a random moment, and records its reports. */
async function life(lane: Lane, first: number, spare: Spare): Promise<void> {
  const { child } = spare;
  let timer: NodeJS.Timeout | undefined;
  const kill = (): void => {
    child.process.kill('SIGKILL');
  };
  // One life in ten dies at a random moment of its start (often inside recovery), the rest at a random
  // moment after their first acknowledged publish.
  if (Math.random() < 0.1) timer = setTimeout(kill, Math.random() * 100);
  spare.report = (line) => {
    const [kind, a, b] = line.split(' ');
    if (kind === 'P') {
      lane.published.set(Number(a), Number(b));
      timer ??= setTimeout(kill, Math.random() * 60);
    }
    else if (kind === 'A') lane.acked.add(Number(a));
    else if (kind === 'R') {
      const seq = Number(a);
      if (lane.acked.has(seq)) {
        lane.redeliveredAfterAck++;
        lane.violations.push(`seq ${seq} was delivered again after its ack resolved`);
      }
      lane.delivered.add(seq);
    }
  };
  child.send(`${lane.dir} ${first}`);
  const { code, signal } = await child.exited;
  clearTimeout(timer);
  if (signal !== 'SIGKILL') throw new Error(`child exited with ${code ?? signal}: ${child.stderr}`);
}

/** Opens the folder in this process and checks every acknowledged publish is stored once, in order. */
async function checkLog(lane: Lane): Promise<void> {
  const driver = await DiskQueueDriver.open(lane.dir);
  try {
    const stored = await driver.read('t', 1, Number.MAX_SAFE_INTEGER, AbortSignal.timeout(30_000));
    const seqOf = new Map<string, number[]>();
    for (const m of stored) {
      const p = Buffer.from(m.payload).toString();
      seqOf.set(p, [...(seqOf.get(p) ?? []), m.seq]);
    }
    for (const [p, seqs] of seqOf) {
      if (seqs.length <= 1) continue;
      lane.duplicated.add(p);
      lane.violations.push(`${p} stored ${seqs.length} times`);
    }
    let lastSeq = 0;
    for (const [n, seq] of [...lane.published].sort((x, y) => x[0] - y[0])) {
      const seqs = seqOf.get(`p${n}`);
      if (seqs?.length !== 1 || seqs[0] !== seq) {
        lane.lost.add(n);
        lane.violations.push(`acknowledged publish p${n} (seq ${seq}) is stored at ${JSON.stringify(seqs ?? [])}`);
      }
      if (seq <= lastSeq) lane.violations.push(`acknowledged publish p${n} has seq ${seq}, not after ${lastSeq}`);
      lastSeq = seq;
    }
  } finally {
    await driver.close();
  }
}

/** Consumes what is left in the group and checks nothing acknowledged comes back. */
async function drainGroup(lane: Lane): Promise<void> {
  const queue = createQueue(await DiskQueueDriver.open(lane.dir));
  try {
    const consumer = queue.consume('t', 'g', { prefetch: 64, ackWaitMs: 60_000 });
    const itr = consumer[Symbol.asyncIterator]();
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<'idle'>((resolve) => {
        timer = setTimeout(() => resolve('idle'), 300);
      });
      const r = await Promise.race([itr.next(), idle]);
      clearTimeout(timer);
      if (r === 'idle' || r.done) break;
      const d = r.value;
      if (lane.acked.has(d.seq)) {
        lane.redeliveredAfterAck++;
        lane.violations.push(`seq ${d.seq} was delivered again after its ack resolved`);
      }
      lane.delivered.add(d.seq);
      await d.ack();
    }
    await consumer.close();
  } finally {
    await queue.close();
  }
}

describe('disk queue under SIGKILL', () => {
  it(
    `keeps every acknowledged publish exactly once and in order, and never redelivers an acknowledged message, across ${KILLS} kills`,
    async () => {
      const started = Date.now();
      const lanes: Lane[] = [];
      for (let i = 0; i < LANES; i++) {
        lanes.push({
          dir: join(work, `lane${i}`),
          published: new Map(),
          acked: new Set(),
          delivered: new Set(),
          lost: new Set(),
          duplicated: new Set(),
          redeliveredAfterAck: 0,
          violations: [],
        });
      }
      await Promise.all(
        lanes.map(async (lane) => {
          // The next child loads while this one runs and the log is checked.
          let spare = spawnChild();
          for (let k = 0; k < KILLS / LANES; k++) {
            const child = spare;
            spare = spawnChild();
            await life(lane, k * 1_000_000, child);
            await checkLog(lane);
          }
          await spare.child.kill();
          await drainGroup(lane);
        }),
      );
      const sum = (f: (lane: Lane) => number): number => lanes.reduce((n, lane) => n + f(lane), 0);
      const undelivered = sum((lane) => [...lane.published.values()].filter((seq) => !lane.delivered.has(seq)).length);
      // One line to compare runs by.
      console.log(
        `disk queue SIGKILL: ${KILLS} kills in ${LANES} lanes, ${Date.now() - started} ms; ` +
          `${sum((l) => l.published.size)} publishes acknowledged, ${sum((l) => l.lost.size)} lost, ${sum((l) => l.duplicated.size)} duplicated, ` +
          `${undelivered} never delivered; ${sum((l) => l.acked.size)} acks acknowledged, ${sum((l) => l.redeliveredAfterAck)} redelivered after their ack`,
      );
      for (const lane of lanes) {
        expect(lane.violations.slice(0, 10)).toEqual([]);
        // At-least-once: every acknowledged publish reached the group.
        const missing = [...lane.published.values()].filter((seq) => !lane.delivered.has(seq));
        expect(missing.slice(0, 10)).toEqual([]);
        expect(lane.published.size).toBeGreaterThan(0);
        expect(lane.acked.size).toBeGreaterThan(0);
      }
    },
    120_000,
  );
});
