/**
 * Runs the example service as a process: ports from the environment profile (`STOWAGE_*_URL`,
 * `STOWAGE_DATA_DIR`, `stowage.yaml`, else standalone under `./.stowage`), one JSON line per event on stdout,
 * stops cleanly on SIGTERM / SIGINT (running jobs finish and are acked).
 *
 * Environment: `STOWAGE_NODE_ID` (default `<hostname>-<pid>`), `SERVICE_PROGRESS_MS` (default 1000),
 * `SERVICE_JOB_EVENTS=1` (a line per job), `SERVICE_AUDIT=0` (no audit group), `SERVICE_ACK_WAIT_MS`.
 *
 * @example
 * ```sh
 * STOWAGE_CONFIG_URL=etcd://127.0.0.1:2379/app … npx tsx examples/service/main.ts
 * ```
 *
 * @module
 */
import { hostname } from 'node:os';
import { createStowage } from '../../src/index.js';
import { StowageError } from '../../src/ports/errors.js';
import { runService, type ServiceEvent } from './service.js';

function line(event: ServiceEvent | { type: 'error'; nodeId: string; code: string; message: string }): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
}

const nodeId = process.env.STOWAGE_NODE_ID ?? `${hostname()}-${process.pid}`;
const envInt = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);
const stop = new AbortController();
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => stop.abort());

try {
  const stowage = await createStowage();
  try {
    await runService(stowage, {
      nodeId,
      signal: stop.signal,
      onEvent: line,
      audit: process.env.SERVICE_AUDIT !== '0',
      jobEvents: process.env.SERVICE_JOB_EVENTS === '1',
      progressEveryMs: envInt('SERVICE_PROGRESS_MS'),
      ackWaitMs: envInt('SERVICE_ACK_WAIT_MS'),
    });
  } finally {
    await stowage.close();
  }
} catch (err) {
  const e = StowageError.is(err) ? err : new StowageError('INTERNAL', String(err));
  line({ type: 'error', nodeId, code: e.code, message: e.message });
  process.exitCode = 1;
}
