/**
 * Helpers of the nats adapter tests.
 *
 * @module
 */
import { readdir, readFile } from 'node:fs/promises';
import { sleep } from '../../src/testing/harness.js';

/** Whether {@link waitUntilStopped} can tell (it reads `/proc`). */
export const canSeeStops = process.platform === 'linux';

/**
 * Waits until every thread of process `pid` is stopped (state `T` in `/proc/<pid>/task/<tid>/stat`).
 *
 * SIGSTOP does not stop a process at once: `kill(2)` returns once the signal is queued, and the threads of
 * the target go on running until the one woken to take the signal gets a CPU — on a busy machine, several
 * milliseconds, in which a nats-server reads, stores and acknowledges what it is sent.
 */
export async function waitUntilStopped(pid: number, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const tasks = await readdir(`/proc/${pid}/task`);
    const states = await Promise.all(
      tasks.map((tid) =>
        readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').then(
          // "<tid> (<comm>) <state> …": the name may hold spaces and parentheses, the state follows the last ")".
          (stat) => stat.charAt(stat.lastIndexOf(')') + 2),
          // A thread that ended meanwhile runs no more.
          () => 'T',
        ),
      ),
    );
    if (states.every((s) => s === 'T' || s === 't')) return;
    if (Date.now() > deadline) throw new Error(`process ${pid} is not stopped after ${timeoutMs} ms (thread states ${states.join('')})`);
    await sleep(2);
  }
}
