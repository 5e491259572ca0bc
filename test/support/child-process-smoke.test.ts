import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleChild, startChild } from './child-process.js';

describe('crash-test children', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'stowage-child-smoke-'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  /** Writes a child script printing `stdout` (in one write) and `stderr`, then exiting with `code`, or waiting. */
  async function script(name: string, stdout: string, options: { stderr?: string; code?: number } = {}): Promise<string> {
    const path = join(work, name);
    const end = options.code === undefined ? 'setInterval(() => undefined, 1000);' : `process.exitCode = ${options.code};`;
    await writeFile(path, `process.stderr.write(${JSON.stringify(options.stderr ?? '')});\nprocess.stdout.write(${JSON.stringify(stdout)});\n${end}\n`);
    return path;
  }

  it('resolves ready on the ready line and reports the other complete lines in order, not a cut last one', async () => {
    const lines: string[] = [];
    const child = startChild(await script('lines.mjs', 'one\nready\ntwo\nthree\ncut sh', { code: 0 }), { onLine: (line) => lines.push(line) });
    await child.ready;
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(lines).toEqual(['one', 'two', 'three']);
  });

  it('rejects ready with what the child wrote to stderr when it exits first', async () => {
    const child = startChild(await script('dies.mjs', 'one\n', { stderr: 'no such folder', code: 3 }));
    await expect(child.ready).rejects.toThrow(/exited \(3\) before it was ready: no such folder/);
  });

  it('kill() ends a running child with SIGKILL', async () => {
    const child = startChild(await script('waits.mjs', 'ready\n'));
    await child.ready;
    expect(await child.kill()).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('bundles a TypeScript child with its imports into one script that runs, with its arguments', async () => {
    const entry = join(work, 'entry.ts');
    await writeFile(entry, "import { basename } from 'node:path';\nconst name: string = basename(process.argv[2] ?? '');\nconsole.log(`ready`);\nconsole.log(name);\n");
    const lines: string[] = [];
    const child = startChild(await bundleChild(entry, work), { args: ['/a/b/c.txt'], onLine: (line) => lines.push(line) });
    await child.ready;
    await child.exited;
    expect(lines).toEqual(['c.txt']);
  });
});
