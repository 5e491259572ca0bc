/**
 * Opens adapters for benchmarks through their exported `SchemeDefinition`s, found at run time in
 * `src/adapters/<backend>/`. Adapters land while the benchmarks are written, so a missing adapter is a
 * skip with a reason, not a type error or a crash.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { PortName } from '../../src/ports/common.js';
import { SchemeRegistry, type DriverOf, type SchemeDefinition } from '../../src/core/registry.js';
import type { BenchContext } from './benchmark.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** `.ts` when run from the sources (tsx), `.js` when run compiled (`npm run bench`). */
const EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

function isSchemeDefinition(value: unknown): value is SchemeDefinition {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<SchemeDefinition>;
  return typeof v.port === 'string' && typeof v.scheme === 'string' && Array.isArray(v.params) && typeof v.open === 'function';
}

/** Every scheme definition exported by the `.ts` files of `src/adapters/<backend>/` (index and `*-driver.ts`). */
async function schemesOf(ctx: BenchContext, backend: string): Promise<SchemeDefinition[]> {
  const dir = join(ROOT, 'src', 'adapters', backend);
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => f === `index${EXT}` || f.endsWith(`-driver${EXT}`));
  } catch {
    ctx.skip(`adapter src/adapters/${backend}/ has not landed yet`);
  }
  const found: SchemeDefinition[] = [];
  for (const file of files.sort()) {
    const mod = (await import(pathToFileURL(join(dir, file)).href)) as Record<string, unknown>;
    for (const value of Object.values(mod)) if (isSchemeDefinition(value) && !found.includes(value)) found.push(value);
  }
  return found;
}

/**
 * Opens a driver of `port` for `url` from the adapter folder `backend`, as the library's registry would
 * (unknown parameters refused, errors mapped). Skips the benchmark when the adapter or scheme is absent.
 */
export async function openDriver<P extends PortName>(ctx: BenchContext, backend: string, port: P, url: string): Promise<DriverOf<P>> {
  const registry = new SchemeRegistry();
  const scheme = url.slice(0, url.indexOf('://')).toLowerCase();
  const definitions = await schemesOf(ctx, backend);
  if (!definitions.some((d) => d.port === port && d.scheme.toLowerCase() === scheme)) {
    ctx.skip(`src/adapters/${backend}/ exports no ${scheme}:// scheme for the ${port} port yet`);
  }
  for (const definition of definitions) registry.register(definition);
  return registry.open(port, url, {
    dataDir: ctx.dir,
    env: process.env,
    logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
  });
}

/** Imports a repository module by path (e.g. `bench/disk-queue.bench.ts`), or skips when it does not exist. */
export async function importOptional<T>(ctx: BenchContext, path: string, what: string): Promise<T> {
  const href = pathToFileURL(join(ROOT, path.replace(/\.ts$/, EXT))).href;
  try {
    return (await import(href)) as T;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes(path.split('/').pop() ?? path)) {
      ctx.skip(`${what} (${path}) has not landed yet`);
    }
    throw err;
  }
}

/** The repository root (absolute, with a trailing slash). */
export const REPO_ROOT = ROOT;
