/**
 * The processes of a service-registry test: each runs a registry child (test/adapters/fixtures/registry-child.ts
 * or a backend's own) that registers itself under a service and prints its view of the service, the sorted
 * ids, as a JSON line on every change.
 */
import { startChild, type Child } from './child-process.js';

/** Nodes started by {@link startRegistryNodes}. */
export interface RegistryNodes {
  /** Whether each node of `ids` last printed exactly `view` (sorted ids). */
  see(ids: readonly string[], view: readonly string[]): boolean;
  /** SIGKILLs one node, without waiting: its registration must expire on its own. */
  kill(id: string): void;
  /** SIGKILLs every node and waits until they have exited. */
  stop(): Promise<void>;
}

/** Where and how the nodes register. */
export interface RegistryNodesOptions {
  /** The config store's URL, given to every child. */
  readonly url: string;
  readonly service: string;
  readonly ids: readonly string[];
  /** The registrations' TTL. */
  readonly ttlMs: number;
}

/** Starts one child of `script` (run with tsx) per id; their stderr goes to this process's. */
export function startRegistryNodes(script: URL, { url, service, ids, ttlMs }: RegistryNodesOptions): RegistryNodes {
  const views = new Map<string, string>();
  const children = new Map<string, Child>();
  for (const id of ids) {
    const onLine = (line: string): void => {
      if (line.trim() !== '') views.set(id, (JSON.parse(line) as string[]).join());
    };
    children.set(id, startChild(script, { args: [url, service, id, String(ttlMs)], onLine, inheritStderr: true }));
  }
  return {
    see: (which, view) => which.every((id) => views.get(id) === view.join()),
    kill: (id) => children.get(id)?.process.kill('SIGKILL'),
    stop: async () => {
      await Promise.all([...children.values()].map((c) => c.kill()));
    },
  };
}
