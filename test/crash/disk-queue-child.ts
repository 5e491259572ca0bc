/**
 * The process the SIGKILL crash test kills: it publishes to topic `t` with fsync=batch and consumes it in
 * group `g` with acks, and reports on stdout, one line each, only what was acknowledged to it:
 *
 * - `P <n> <seq>` — the publish of payload `p<n>` resolved with `seq`;
 * - `R <seq>` — a delivery of `seq` arrived (before it is acked);
 * - `A <seq>` — the ack of `seq` resolved.
 *
 * Started ahead of time (loading takes most of a start), it waits for one stdin line `<folder> <first n>`.
 */
import { diskQueueScheme } from '../../src/adapters/disk-queue/index.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { defaultLogger } from '../../src/core/registry.js';
import { parseUrl } from '../../src/driver/url.js';
import { writeStdoutSync as writeOut } from '../support/stdout-sync.js';

const [dir, firstText] = await new Promise<string[]>((resolve) => {
  let text = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    text += chunk;
    if (text.includes('\n')) {
      process.stdin.pause();
      resolve(text.trim().split(' '));
    }
  });
});
if (dir === undefined || firstText === undefined) throw new Error('expected "<folder> <first n>" on stdin');

const out: string[] = [];
let scheduled = false;
// One write per tick keeps reporting cheap; every line is in the pipe before the next tick's work goes on.
function report(line: string): void {
  out.push(line);
  if (!scheduled) {
    scheduled = true;
    queueMicrotask(() => {
      scheduled = false;
      writeOut(`${out.join('\n')}\n`);
      out.length = 0;
    });
  }
}

const driver = await diskQueueScheme.open(parseUrl(`disk://${dir}?fsync=batch`), {
  dataDir: dir,
  env: {},
  logger: defaultLogger,
  openDriver: () => Promise.reject(new Error('not used')),
});
const queue = createQueue(driver);
writeOut('ready\n');

let n = Number(firstText);
async function publisher(): Promise<void> {
  for (;;) {
    const k = n++;
    const { seq } = await queue.publish('t', `p${k}`, { id: `m${k}` });
    report(`P ${k} ${seq}`);
  }
}

async function consumer(): Promise<void> {
  for await (const d of queue.consume('t', 'g', { prefetch: 8, ackWaitMs: 60_000 })) {
    report(`R ${d.seq}`);
    // Acks finish out of order: some wait a little.
    const delay = d.seq % 3 === 0 ? 1 : 0;
    setTimeout(() => {
      void d.ack().then(() => report(`A ${d.seq}`));
    }, delay);
  }
}

// Eight publishers in flight share group commits.
for (let i = 0; i < 8; i++) void publisher();
void consumer();
