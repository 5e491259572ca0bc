/**
 * The package as a user gets it: `npm pack`, the tarball installed into a fresh project with only what the README
 * says to install (`npm install stowage`, and `typescript` + `@types/node` for TypeScript), a consumer
 * type-checked with the README's tsconfig (strict, nodenext) and run with plain `node` on the compiled JavaScript,
 * every subpath export resolved, and the `stowage` bin run.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/services.js';

const ROOT = process.cwd();
/** Whether this Node runs the default profile with nothing but Stowage installed (node:sqlite with what the adapter uses). */
const BUILTIN_SQLITE = (() => {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 16);
})();

let project: string;
let tarball: string;

function run(cmd: string, args: readonly string[], options: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): { status: number | null; out: string; stdout: string } {
  const res = spawnSync(cmd, args, {
    cwd: options.cwd,
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 120_000,
    env: { ...cleanEnv(), ...options.env },
  });
  return { status: res.status, out: `${res.stdout}\n${res.stderr}`, stdout: res.stdout };
}

/** The environment without STOWAGE_* (the tests' own profile must not leak into the user's project). */
function cleanEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !e[0].startsWith('STOWAGE_')));
}

/** The README's ```ts blocks. */
async function readmeBlocks(): Promise<string[]> {
  const text = await readFile(join(ROOT, 'README.md'), 'utf8');
  return [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
}

beforeAll(async () => {
  const dir = await tempDir('stowage-packed-');
  // Packed from a copy, so the build that prepack runs (as `npm publish` would) leaves no dist/ in the
  // repository: bin/stowage.js prefers dist/ when present, and the CLI tests would then run a stale build.
  const stage = join(dir, 'stage');
  const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { files: string[] };
  for (const entry of [...manifest.files.filter((f) => f !== 'dist'), 'package.json', 'README.md', 'tsconfig.json', 'tsconfig.build.json']) {
    await cp(join(ROOT, entry), join(stage, entry), { recursive: true });
  }
  await symlink(join(ROOT, 'node_modules'), join(stage, 'node_modules'));
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: stage, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as { filename: string }[];
  tarball = join(dir, packed[0]!.filename);
  project = join(dir, 'app');
  await mkdir(project);
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
  const install = (args: string[]): void => {
    const res = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...args], { cwd: project, timeoutMs: 150_000 });
    if (res.status !== 0) throw new Error(`npm install ${args.join(' ')} failed:\n${res.out}`);
  };
  // Exactly the README's lines: the package, then TypeScript's two dev dependencies.
  install([tarball]);
  install(['-D', 'typescript@~5.9', '@types/node@22']);
  // And the one the README names for stowage/metrics (an optional peer: the OpenTelemetry SDK's metrics).
  install(['@opentelemetry/sdk-metrics@2']);
}, 240_000);

afterAll(async () => {
  if (tarball !== undefined) await rm(join(tarball, '..'), { recursive: true, force: true });
});

describe('the packed package', () => {
  it('holds LICENSE, README, the compiled code with its sources for the source maps, and nothing of the tests', async () => {
    const listing = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
    for (const file of ['package/LICENSE', 'package/README.md', 'package/dist/index.js', 'package/dist/index.d.ts', 'package/bin/stowage.js', 'package/src/testing/harness.ts']) {
      expect(listing, file).toContain(file);
    }
    expect(listing.filter((f) => f.startsWith('package/test/') || f.startsWith('package/bench/'))).toEqual([]);
    expect(await readFile(join(project, 'node_modules/stowage/LICENSE'), 'utf8')).toMatch(/^Apache License\s+Version 2\.0/);
    // Every source map names sources that ship.
    const map = JSON.parse(await readFile(join(project, 'node_modules/stowage/dist/testing/harness.js.map'), 'utf8')) as { sources: string[] };
    for (const source of map.sources) expect(existsSync(join(project, 'node_modules/stowage/dist/testing', source)), source).toBe(true);
  });

  it('installs no optional client and one inversify, the peer the README names', async () => {
    const installed = readdirSync(join(project, 'node_modules'));
    for (const client of ['better-sqlite3', 'etcd3', 'ioredis', 'mysql2', 'mongodb', 'node-vault', 'node-zookeeper-client', '@nats-io', '@platformatic/kafka']) expect(installed).not.toContain(client);
    const inversify = JSON.parse(await readFile(join(project, 'node_modules/inversify/package.json'), 'utf8')) as { version: string };
    expect(inversify.version).toMatch(/^7\./);
    expect(existsSync(join(project, 'node_modules/stowage/node_modules/inversify'))).toBe(false);
  });

  it('type-checks the README\'s and the contract suites\' examples with the README\'s tsconfig (strict, nodenext) and runs the short one with plain node', async () => {
    const blocks = await readmeBlocks();
    const tsconfig = /```json\n\s*(\{ "compilerOptions"[\s\S]*?)```/.exec(await readFile(join(ROOT, 'README.md'), 'utf8'))?.[1];
    expect(tsconfig, 'the README gives a tsconfig.json').toBeDefined();
    const options = (JSON.parse(tsconfig!) as { compilerOptions: Record<string, unknown> }).compilerOptions;
    expect(options).toMatchObject({ module: 'nodenext', strict: true });
    // The inversify block needs experimentalDecorators, which the README says; the rest compiles without it.
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain('"experimentalDecorators": true');
    // The inversify a user installs beside Stowage is the major of Stowage's peer dependency (one Container type).
    const peer = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> }).peerDependencies['inversify'];
    expect(readme).toContain(`npm install inversify@${/\d+/.exec(peer ?? '')?.[0] ?? 'none'}`);
    await writeFile(join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions: { ...options, experimentalDecorators: true }, include: ['src'] }));
    await mkdir(join(project, 'src'), { recursive: true });
    const runnable = blocks.find((b) => b.includes('createStowage()'))!;
    await writeFile(join(project, 'src', 'main.ts'), runnable);
    const inversify = blocks.find((b) => b.includes('stowageContainerModule'))!;
    await writeFile(join(project, 'src', 'di.ts'), `${inversify}\nexport { container, Settings };\n`);
    const service = blocks.find((b) => b.includes('closeOnSignals()'))!;
    await writeFile(join(project, 'src', 'service.ts'), service);
    const adapter = blocks.find((b) => b.includes('configContract'))!;
    await writeFile(join(project, 'src', 'my-config.test.ts'), adapter);
    // What the README's adapter example imports: a driver of the author's own.
    await writeFile(
      join(project, 'src', 'my-config-driver.ts'),
      "import { MemoryConfigDriver } from 'stowage/adapters/memory';\nexport class MyConfigDriver extends MemoryConfigDriver {\n  constructor(readonly options: { prefix: string }) {\n    super();\n  }\n}\n",
    );
    const operated = blocks.find((b) => b.includes('consoleHandler'))!;
    await writeFile(join(project, 'src', 'operate.ts'), `${operated}\nexport {};\n`);
    // The queue features block uses an application's own values and handlers: declared here, as the app has them.
    const features = blocks.find((b) => b.includes('publishMany'))!;
    await writeFile(
      join(project, 'src', 'features.ts'),
      [
        "import type { Delivery, Queue } from 'stowage';",
        'declare const queue: Queue;',
        'declare const users: { id: string }[];',
        'declare const body: string;',
        'declare const change: object;',
        'declare const account: { id: string };',
        'declare function apply(d: Delivery): Promise<void>;',
        'declare function send(d: Delivery): Promise<void>;',
        'declare function insertRows(batch: readonly Delivery[]): Promise<void>;',
        features,
        'export {};',
        '',
      ].join('\n'),
    );
    expect(blocks, 'every README TypeScript block is compiled here').toHaveLength(6);
    // The contract suites' TSDoc examples, as a driver author copies them.
    for (const file of ['index', 'config', 'secrets', 'queue', 'cache', 'documents']) {
      const source = await readFile(join(ROOT, 'src/testing', `${file}.ts`), 'utf8');
      const example = /@example\n \* ```ts\n([\s\S]*?) \* ```/.exec(source)?.[1];
      expect(example, `src/testing/${file}.ts has an example`).toBeDefined();
      await writeFile(join(project, 'src', `testing-${file}.ts`), `${example!.replace(/^ \* ?/gm, '')}\nexport {};\n`);
    }
    // Every subpath's types, strict, with no optional client installed (a driver type leaking a client's types would fail here).
    const pkg = JSON.parse(await readFile(join(project, 'node_modules/stowage/package.json'), 'utf8')) as { exports: Record<string, unknown> };
    const typed = Object.keys(pkg.exports).filter((k) => k !== './package.json');
    await writeFile(
      join(project, 'src', 'types.ts'),
      `${typed.filter((k) => CLIENTLESS.has(k)).map((k, i) => `import type * as m${i} from '${join('stowage', k)}';`).join('\n')}\nexport type All = [${typed.filter((k) => CLIENTLESS.has(k)).map((_, i) => `typeof m${i}`).join(', ')}];\n`,
    );
    const tsc = run(process.execPath, [join(project, 'node_modules/typescript/bin/tsc'), '-p', '.'], { cwd: project });
    expect(tsc.status, tsc.out).toBe(0);

    const dataDir = join(project, 'data');
    const main = run(process.execPath, ['dist/main.js'], { cwd: project, env: { STOWAGE_DATA_DIR: dataDir } });
    if (BUILTIN_SQLITE) {
      expect(main.status, main.out).toBe(0);
      expect(main.out).toContain('[redacted]');
      expect(main.out).not.toContain('s3cr3t');
    } else {
      // Below Node 22.16 the default profile needs better-sqlite3: refused with the install line, nothing on disk.
      expect(main.status, main.out).not.toBe(0);
      expect(main.out).toContain('UNSUPPORTED');
      expect(main.out).toContain('npm install better-sqlite3@12');
      expect(existsSync(dataDir)).toBe(false);
    }
  }, 120_000);

  it('resolves every subpath export to a shipped file; each imports, or fails only for want of its optional client', async () => {
    const script = `
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const pkg = (await import('stowage/package.json', { with: { type: 'json' } })).default;
const out = {};
for (const key of Object.keys(pkg.exports)) {
  const id = key === '.' ? 'stowage' : 'stowage' + key.slice(1);
  const url = import.meta.resolve(id);
  let loaded;
  try { await (key === './package.json' ? import(id, { with: { type: 'json' } }) : import(id)); loaded = 'ok'; } catch (err) { loaded = err.code + ' ' + (/'([^']+)'/.exec(err.message)?.[1] ?? ''); }
  out[key] = { exists: existsSync(fileURLToPath(url)), loaded };
}
console.log(JSON.stringify(out));`;
    await writeFile(join(project, 'resolve.mjs'), script);
    const res = run(process.execPath, ['resolve.mjs'], { cwd: project });
    expect(res.status, res.out).toBe(0);
    const found = JSON.parse(res.stdout) as Record<string, { exists: boolean; loaded: string }>;
    for (const [key, { exists, loaded }] of Object.entries(found)) {
      expect(exists, `${key} resolves to a file that ships`).toBe(true);
      if (CLIENTLESS.has(key) || key === './package.json') expect(loaded, key).toBe('ok');
      else expect(loaded, `${key} loads, or fails only for want of its client`).toMatch(/^(ok|ERR_MODULE_NOT_FOUND (etcd3|ioredis|mysql2|mongodb|node-vault|node-zookeeper-client|pg|rabbitmq-client|@nats-io\/|@platformatic\/kafka))/);
    }
  }, 60_000);

  it('runs the stowage bin: --help, doctor on the standalone ports, and the npm install line for a missing client', async () => {
    const bin = join(project, 'node_modules/.bin/stowage');
    const env = { STOWAGE_DATA_DIR: join(project, 'bin-data') };
    const help = run(bin, ['--help'], { cwd: project, env });
    expect(help.status, help.out).toBe(0);
    expect(help.out).toContain('doctor');
    // The console's page ships as plain files beside the compiled code.
    for (const file of ['index.html', 'app.js', 'app.css']) expect(existsSync(join(project, 'node_modules/stowage/src/console/static', file)), file).toBe(true);
    const doctor = run(bin, ['doctor', '--ports', 'config,secrets,queue,cache'], { cwd: project, env });
    expect(doctor.status, doctor.out).toBe(0);
    const nats = run(bin, ['doctor', '--ports', 'queue', '--queue-url', 'nats://127.0.0.1:4222'], { cwd: project, env });
    expect(nats.status).toBe(1);
    expect(nats.out).toContain('UNSUPPORTED');
    expect(nats.out).toContain('npm install @nats-io/transport-node@3 @nats-io/jetstream@3 @nats-io/nats-core@3');
  }, 60_000);
});

/** The subpaths that load with no optional client installed. */
const CLIENTLESS = new Set(['.', './testing', './adapters/memory', './adapters/file', './adapters/sealed', './adapters/disk-queue', './adapters/sqlite', './console']);
