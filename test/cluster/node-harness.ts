/**
 * Runs nodes of the example service (`examples/service/main.ts`) as child processes and follows their
 * JSON-line events.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** One event line printed by a node. */
export interface NodeEvent {
  type: string;
  nodeId: string;
  [key: string]: unknown;
}

/** A running node of the example service. */
export class ServiceNode {
  readonly events: NodeEvent[] = [];
  readonly output: string[] = [];
  readonly #child: ChildProcess;
  readonly exited: Promise<number | null>;
  #waiters: { check: (e: NodeEvent) => boolean; resolve: (e: NodeEvent) => void }[] = [];

  constructor(
    readonly nodeId: string,
    env: Record<string, string>,
  ) {
    this.#child = spawn(process.execPath, ['--import', 'tsx', join(process.cwd(), 'examples/service/main.ts')], {
      env: { ...process.env, ...env, STOWAGE_NODE_ID: nodeId },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => this.#child.once('exit', (code) => resolve(code)));
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      this.output.push(line);
      let event: NodeEvent;
      try {
        event = JSON.parse(line) as NodeEvent;
      } catch {
        return;
      }
      this.events.push(event);
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.check(event)) return true;
        w.resolve(event);
        return false;
      });
    });
    createInterface({ input: this.#child.stderr! }).on('line', (line) => this.output.push(`stderr: ${line}`));
  }

  /** The process id. */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Resolves with the first event (past or future) for which `check` holds. */
  waitFor(check: (e: NodeEvent) => boolean, what: string, timeoutMs = 60_000): Promise<NodeEvent> {
    const seen = this.events.find(check);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.nodeId}: timed out waiting for ${what}; last output:\n${this.output.slice(-8).join('\n')}`)),
        timeoutMs,
      );
      this.#waiters.push({
        check,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  /** The latest stats the node reported. */
  latestStats(): Record<string, number> | undefined {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i];
      if (e && (e.type === 'progress' || e.type === 'stopped')) return e.stats as Record<string, number>;
    }
    return undefined;
  }

  /** SIGTERM, then wait for a clean exit. */
  async stop(): Promise<number | null> {
    this.#child.kill('SIGTERM');
    return this.exited;
  }

  /** SIGKILL. */
  async kill(): Promise<void> {
    this.#child.kill('SIGKILL');
    await this.exited;
  }
}
