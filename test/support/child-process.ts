/**
 * Child processes for the crash tests: a script bundled once (so that hundreds of starts stay fast), started
 * with its stdout read line by line, a promise for the line that says it is ready, and SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/**
 * Bundles the TypeScript file `entry` and its imports into one ES module in `outDir` and gives its path.
 * `node --import tsx` takes over a second to start on a busy machine; a bundle starts in a fraction of it.
 *
 * @example
 * const script = await bundleChild(new URL('./disk-queue-child.ts', import.meta.url), work);
 */
export async function bundleChild(entry: URL | string, outDir: string): Promise<string> {
  const entryPath = entry instanceof URL ? fileURLToPath(entry) : entry;
  const outfile = join(outDir, `${entryPath.replace(/^.*[\\/]/, '').replace(/\.ts$/, '')}.mjs`);
  await build({
    entryPoints: [entryPath],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    logLevel: 'error',
    // Bundled CommonJS dependencies (rabbitmq-client, better-sqlite3, …) call require(), which an ES module
    // must be given; the odd name cannot clash with a bundled one.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  });
  return outfile;
}

/** How a child ended. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Options of {@link startChild}. */
export interface ChildOptions {
  /** Arguments after the script. */
  readonly args?: readonly string[];
  /** Its environment. @defaultValue this process's */
  readonly env?: NodeJS.ProcessEnv;
  /** The stdout line that resolves {@link Child.ready}; it is not passed to `onLine`. @defaultValue `'ready'` */
  readonly readyLine?: string;
  /** Hears every other complete stdout line, in order. */
  readonly onLine?: (line: string) => void;
  /** Lets the child's stderr through to this process's rather than keeping it in {@link Child.stderr}. */
  readonly inheritStderr?: boolean;
}

/** A started child. */
export interface Child {
  readonly process: ChildProcess;
  /** Resolves on the ready line; rejects (with its stderr) if the child exits before printing it. */
  readonly ready: Promise<void>;
  /** Resolves once the child has exited and its stdout and stderr are read to the end. */
  readonly exited: Promise<ChildExit>;
  /** What it wrote to stderr so far (empty with `inheritStderr`). */
  readonly stderr: string;
  /** Writes one line to its stdin. */
  send(line: string): void;
  /** Kills it with SIGKILL and waits until it has exited. */
  kill(): Promise<ChildExit>;
}

/**
 * Starts `script` in a new Node process: a bundle from {@link bundleChild}, or a `.ts` file run with tsx. An
 * unterminated last line (the child was killed while writing it) is dropped, never reported cut short.
 */
export function startChild(script: URL | string, options: ChildOptions = {}): Child {
  const { args = [], env, readyLine = 'ready', onLine, inheritStderr = false } = options;
  const path = script instanceof URL ? fileURLToPath(script) : script;
  const proc = spawn(process.execPath, [...(path.endsWith('.ts') ? ['--import', 'tsx'] : []), path, ...args], {
    env,
    stdio: ['pipe', 'pipe', inheritStderr ? 'inherit' : 'pipe'],
  });
  // Writing to a child that was just killed fails with EPIPE: what it would have read no longer matters.
  proc.stdin?.on('error', () => undefined);
  let stderr = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  let markReady!: () => void;
  let failReady!: (err: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    failReady = reject;
  });
  // A caller that never waits for the ready line must not see an unhandled rejection.
  ready.catch(() => undefined);
  let text = '';
  proc.stdout?.setEncoding('utf8');
  proc.stdout?.on('data', (chunk: string) => {
    text += chunk;
    let nl: number;
    while ((nl = text.indexOf('\n')) >= 0) {
      const line = text.slice(0, nl);
      text = text.slice(nl + 1);
      if (line === readyLine) markReady();
      else onLine?.(line);
    }
  });
  proc.once('error', failReady);
  const exited = new Promise<ChildExit>((resolve) => {
    proc.once('close', (code, signal) => {
      failReady(new Error(`${path} exited (${code ?? signal}) before it was ready: ${stderr}`));
      resolve({ code, signal });
    });
  });
  return {
    process: proc,
    ready,
    exited,
    get stderr() {
      return stderr;
    },
    send: (line) => proc.stdin?.write(`${line}\n`),
    kill: () => {
      proc.kill('SIGKILL');
      return exited;
    },
  };
}
