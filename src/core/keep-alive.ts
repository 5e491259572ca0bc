/**
 * Keeping the process alive while a consumer, processor or watch runs.
 *
 * The embedded adapters do their work with timers and file events, and their background timers (sweeps,
 * syncs, ack deadlines) are `unref()`ed so that a process with nothing to do exits. A script whose only work
 * is `queue.process(…)` or `for await (… of config.watch(…))` then exits at once — with code 13 when it
 * awaits the loop at top level — although it is waiting for work. Network adapters hid this: their sockets
 * hold the event loop. So core holds it instead, the same way for every adapter: one ref'd timer while at
 * least one consumer or watch runs, none once they all stopped.
 *
 * @module
 */

/** The longest timer period Node accepts; the timer never needs to fire, only to exist. */
const FOREVER_MS = 2_147_483_647;

let holders = 0;
let timer: NodeJS.Timeout | undefined;

const nothing = (): void => undefined;

/**
 * Holds the event loop open until the returned function is called (idempotent). Holds nest: the loop is
 * released when the last holder lets go.
 *
 * @example
 * ```ts
 * const release = holdEventLoop();
 * try { for await (const ev of events) handle(ev); } finally { release(); }
 * ```
 */
export function holdEventLoop(): () => void {
  if (holders++ === 0) timer = setInterval(nothing, FOREVER_MS);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    if (--holders === 0) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}
