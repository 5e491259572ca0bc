/**
 * One node of the schedule crash test: opens config (etcd) and queue (NATS) from the environment, declares
 * the schedule `tick` (every second) and runs until killed. Prints `ready` once the schedule is declared.
 */
import { createStowage } from '../../src/index.js';

const stowage = await createStowage({}, { ports: ['config', 'queue'] });
await stowage.queue.schedule('tick', { everyMs: 1_000, topic: 'ticks', payload: process.env.NODE_NAME ?? '' });
process.stdout.write('ready\n');
// The scheduler's timers are unref'd: this keeps the node running until it is killed.
setInterval(() => undefined, 60_000);
