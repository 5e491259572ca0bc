/**
 * The fault scenarios every clustered config backend is held to (etcd, PostgreSQL, ZooKeeper): a lease
 * whose server freezes, and a service-registry node killed with SIGKILL. Each runs against the backend's
 * own store or registry child; the caller keeps the setup and the closing.
 */
import assert from 'node:assert/strict';
import type { ConfigStore } from '../../src/ports/config.js';
import { StowageError } from '../../src/ports/errors.js';
import { eventually } from '../../src/testing/harness.js';
import { startChild, type Child } from './child-process.js';
import type { Service } from './servers.js';

/**
 * A lease on `store` is signalled lost (UNAVAILABLE) within one TTL of its last successful keep-alive once
 * `server` freezes, and the key bound to it is gone once the server runs again.
 */
export async function leaseLostWhenFrozen(store: ConfigStore, server: Service, ttlMs = 2000): Promise<void> {
  const lease = await store.lease(ttlMs);
  await store.put('l/key', 1, { lease: lease.id });
  await new Promise((r) => setTimeout(r, 800));
  await server.pause();
  try {
    // The last keep-alive succeeded no later than the pause, so loss must show within the TTL from here.
    await eventually(() => lease.lost.aborted, 'lease.lost aborted within one TTL', ttlMs + 250, 10);
    assert.ok(StowageError.is(lease.lost.reason, 'UNAVAILABLE'), String(lease.lost.reason));
  } finally {
    server.resume();
  }
  await eventually(async () => (await store.get('l/key')) === undefined, 'leased key gone after loss', 15_000, 100);
}

/**
 * Three registry nodes, each a child running `script` (with tsx) with the arguments
 * `<config url> <service> <id> <ttlMs>` that registers itself and prints its view of the service (the
 * sorted ids) as a JSON line on every change (see test/adapters/fixtures/registry-child.ts). Once every node
 * sees all three, one is killed with SIGKILL: it must be gone from the other two views within its TTL and
 * `slackMs`, which covers the store's expiry sweep and the watch reaching two processes on a loaded machine.
 */
export async function killedNodeLeavesRegistry(script: URL, url: string, { ttlMs = 2000, slackMs = 2000 } = {}): Promise<void> {
  const ids = ['n1', 'n2', 'n3'];
  const views = new Map<string, string>();
  const children: Child[] = ids.map((id) =>
    startChild(script, {
      args: [url, 'api', id, String(ttlMs)],
      inheritStderr: true,
      onLine: (line) => {
        if (line.trim() !== '') views.set(id, (JSON.parse(line) as string[]).join());
      },
    }),
  );
  const see = (which: readonly string[], view: readonly string[]): boolean => which.every((id) => views.get(id) === view.join());
  try {
    await eventually(() => see(ids, ids), 'every node sees all three', 90_000, 50);
    children[2]?.process.kill('SIGKILL');
    await eventually(() => see(['n1', 'n2'], ['n1', 'n2']), 'n3 gone from n1 and n2', ttlMs + slackMs, 20);
  } finally {
    await Promise.all(children.map((c) => c.kill()));
  }
}
