/**
 * The README stays true: its TypeScript examples run as they are.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

async function readmeBlocks(): Promise<string[]> {
  const text = await readFile(join(process.cwd(), 'README.md'), 'utf8');
  return [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
}

function runModule(dir: string, file: string): { status: number | null; out: string } {
  const res = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), file], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, STOWAGE_DATA_DIR: join(dir, '.stowage') } });
  return { status: res.status, out: `${res.stdout}\n${res.stderr}` };
}

describe('README', () => {
  it('its short example runs on the standalone profile and prints the secret as [redacted]', async () => {
    const [example] = await readmeBlocks();
    expect(example).toContain("from 'stowage'");
    const dir = await mkdtemp(join(tmpdir(), 'stowage-readme-'));
    const source = example!.replaceAll("from 'stowage'", `from ${JSON.stringify(join(process.cwd(), 'src/index.ts'))}`);
    await writeFile(join(dir, 'example.mts'), source);
    const { status, out } = runModule(dir, 'example.mts');
    expect(status, out).toBe(0);
    expect(out).toContain('[redacted]');
    expect(out).not.toContain('s3cr3t');
  }, 90_000);
});

describe('README inversify example', () => {
  it('binds the ports to tokens and injects them into a class', async () => {
    const blocks = await readmeBlocks();
    const example = blocks.find((b) => b.includes('stowageContainerModule'));
    expect(example).toBeDefined();
    const dir = await mkdtemp(join(tmpdir(), 'stowage-readme-'));
    const source = `${example!
      .replaceAll("from 'stowage'", `from ${JSON.stringify(join(process.cwd(), 'src/index.ts'))}`)
      .replaceAll("from 'inversify'", `from ${JSON.stringify(import.meta.resolve('inversify'))}`)}
const settings = container.get(Settings);
console.log(typeof (settings as unknown as { config: { get: unknown } }).config.get);
await (container.get(TOKENS.Stowage) as { close(): Promise<void> }).close();
`;
    await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { experimentalDecorators: true, target: 'ES2022', module: 'NodeNext' } }));
    await writeFile(join(dir, 'example.mts'), source);
    const { status, out } = runModule(dir, 'example.mts');
    expect(status, out).toBe(0);
    expect(out).toContain('function');
  }, 90_000);
});
