/**
 * One consumer process of the ordering-key and rate-limit test across processes: opens config (etcd) and
 * queue (NATS) from the environment and runs one processor of group `workers`, printing a line per handler
 * start and end with the wall-clock time (the parent compares the lines of every process).
 *
 * - `MODE=keys`: topic `jobs`, concurrency 4, prefetch 36 (room for messages waiting for their key's turn,
 *   as the README advises), ackWait 2 s; each handler takes 30 ms.
 * - `MODE=rate`: topic `limited`, concurrency 8, `rateLimit: { max: 10, perMs: 1000 }`.
 *
 * Prints `ready` once the processor runs.
 */
import { createStowage } from '../../src/index.js';
import { sleep } from '../../src/testing/harness.js';

const stowage = await createStowage({}, { ports: ['config', 'queue'] });
const say = (line: string): void => void process.stdout.write(`${line}\n`);
if (process.env.MODE === 'rate') {
  stowage.queue.process('limited', 'workers', async (d) => say(`rate ${d.text()} ${Date.now()}`), {
    concurrency: 8,
    rateLimit: { max: 10, perMs: 1_000 },
  });
} else {
  stowage.queue.process(
    'jobs',
    'workers',
    async (d) => {
      say(`start ${d.text()} ${Date.now()}`);
      await sleep(30);
      say(`end ${d.text()} ${Date.now()}`);
    },
    { concurrency: 4, prefetch: 36, ackWaitMs: 2_000 },
  );
}
say('ready');
