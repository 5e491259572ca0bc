/**
 * One of the processes the RabbitMQ several-consumers test runs (and SIGKILLs): it consumes topic `jobs` in
 * group `workers` of the `rabbitmq://` URL given as its argument, and reports on stdout, one line each:
 *
 * - `ready` — the queue is open;
 * - `R <payload>` — a delivery arrived (written before it is handled);
 * - `a <payload>` — its ack is about to be sent: a process killed after this line may have acked it at the
 *   broker without saying so (the broker then never delivers it again);
 * - `A <payload>` — its ack resolved;
 * - `N <payload>` — its nak with a delay resolved (every tenth message, on its first delivery: the message
 *   goes through a wait queue and comes back, maybe to another process).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { rabbitmqQueueScheme } from '../../src/adapters/rabbitmq/index.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { defaultLogger } from '../../src/core/registry.js';
import { parseUrl } from '../../src/driver/url.js';
import type { Delivery } from '../../src/ports/queue.js';
import { writeStdoutSync } from '../support/stdout-sync.js';

const url = process.argv[2];
if (url === undefined) throw new Error('expected the rabbitmq:// URL as argument');

/** One report line, in the pipe before the work it reports goes on ({@link writeStdoutSync}). */
function report(line: string): void {
  writeStdoutSync(`${line}\n`);
}

const queue = createQueue(
  await rabbitmqQueueScheme.open(parseUrl(url), { dataDir: '/nonexistent', env: {}, logger: defaultLogger, openDriver: () => Promise.reject(new Error('not used')) }),
);
report('ready');

async function handle(d: Delivery): Promise<void> {
  // Handlers take a while, so that each process holds several unacked deliveries when it is killed.
  await sleep(5 + Math.random() * 20);
  const text = d.text();
  if (Number(text.slice(1)) % 10 === 0 && d.deliveryCount === 1) {
    await d.nak({ delayMs: 200 });
    report(`N ${text}`);
  } else {
    report(`a ${text}`);
    await d.ack();
    report(`A ${text}`);
  }
}

// ackWait is long: a message comes again only because its process died (or was nak'ed), never by the clock.
for await (const d of queue.consume('jobs', 'workers', { prefetch: 8, ackWaitMs: 60_000 })) {
  report(`R ${d.text()}`);
  void handle(d);
}
