/**
 * Runs the real `stowage` binary (`node bin/stowage.js …`) as a child process, for the CLI tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository's bin/stowage.js. */
export const BIN = fileURLToPath(new URL('../../bin/stowage.js', import.meta.url));

/** What a run printed and how it ended. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment without anything that would point the CLI at another profile. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('STOWAGE_')) env[k] = v;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/** Starts the binary; the caller reads or kills the child. */
export function startCli(args: readonly string[], options: { env: Record<string, string>; cwd?: string }): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { env: options.env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs the binary to completion (killed after `timeoutMs`), feeding `input` on stdin. */
export function runCli(
  args: readonly string[],
  options: { env: Record<string, string>; cwd?: string; input?: string | Buffer; timeoutMs?: number },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = startCli(args, options);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(options.input ?? '');
  });
}

/** Parses the last JSON line of stdout. */
export function lastJson<T = unknown>(result: CliResult): T {
  const lines = result.stdout.trim().split('\n');
  return JSON.parse(lines.at(-1) ?? 'null') as T;
}
