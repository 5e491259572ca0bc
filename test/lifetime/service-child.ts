/**
 * A service whose only work is one queue processor or one config watch, for the process-lifetime tests.
 * Nothing else holds its event loop: no server, no interval of its own. It stops on SIGTERM/SIGINT through
 * `stowage.closeOnSignals()`.
 *
 * Environment: the profile (`STOWAGE_*`), plus
 * - `LIFE_MODE` — `process` (topic `jobs`, group `workers`) or `watch` (prefix `w/`);
 * - `LIFE_HANDLER_MS` — how long handling one message or change takes;
 * - `LIFE_SELF_CHANGE_MS` — when set, the child itself publishes `later` (or puts `w/later`) that long after
 *   it is ready, on an unref'd timer (which does not keep the process alive): for backends that only one
 *   process can open.
 *
 * It prints one line per step: `ready`, `start <what>`, `settled <what>` (acked, or handled for a watch; `<what>` is the payload or the key
 * without `w/`),
 * `stopped` (the loop ended).
 */
import type { PortName } from '../../src/ports/common.js';
import { createStowage } from '../../src/index.js';

const mode = process.env.LIFE_MODE;
const handlerMs = Number(process.env.LIFE_HANDLER_MS ?? '0');
const selfChangeMs = process.env.LIFE_SELF_CHANGE_MS === undefined ? undefined : Number(process.env.LIFE_SELF_CHANGE_MS);
const line = (text: string): void => void process.stdout.write(`${text}\n`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const port: PortName = mode === 'watch' ? 'config' : 'queue';
const stowage = await createStowage({}, { ports: [port] });
stowage.closeOnSignals();

if (mode === 'process') {
  const worker = stowage.queue.process(
    'jobs',
    'workers',
    async (d) => {
      line(`start ${d.text()}`);
      await sleep(handlerMs);
      await d.ack();
      line(`settled ${d.text()}`);
    },
    { ackWaitMs: 60_000 },
  );
  if (selfChangeMs !== undefined) setTimeout(() => void stowage.queue.publish('jobs', 'later'), selfChangeMs).unref();
  line('ready');
  await worker.done;
} else if (mode === 'watch') {
  const events = stowage.config.watch('w/', { signal: stowage.closing });
  if (selfChangeMs !== undefined) setTimeout(() => void stowage.config.put('w/later', 1), selfChangeMs).unref();
  line('ready');
  for await (const ev of events) {
    const name = ev.key.slice('w/'.length);
    line(`start ${name}`);
    await sleep(handlerMs);
    line(`settled ${name}`);
  }
} else {
  throw new Error(`LIFE_MODE must be process or watch, got ${String(mode)}`);
}
line('stopped');
